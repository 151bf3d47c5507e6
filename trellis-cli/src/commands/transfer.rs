//! `trellis upload` / `trellis download`: drive any contract's send-transfer
//! operation or receive grant from its manifest, with JSON input and a
//! progress bar (bytes, rate, ETA).
//!
//! Both go through the runtime's generic clients with `serde_json::Value`
//! for every schema, so there is no second protocol here: uploads resume
//! however the runtime's send transfer does, downloads resume from the
//! byte they reached (on their own after a dropped connection, and from
//! `<out>.part` with `--resume`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use trellis_runtime::__private::{RpcClient, SendOperationClient, ServiceRuntime, connect_client};
use trellis_runtime::{Body, ConnectOptions, Download, ReceiveGrant};

use crate::cli::{ConnArgs, DownloadArgs, UploadArgs};
use crate::commands::read_text;
use crate::outcome::Outcome;

/// A contract surface found in a manifest: its contract id, name and
/// manifest subject.
#[derive(Debug)]
struct Surface {
    contract: String,
    name: &'static str,
    subject: &'static str,
}

/// The `kind` (`rpc` or `operations`) entry `name` of the manifest at
/// `path`, checked to declare a transfer in `direction`.
fn surface(path: &Path, kind: &str, name: &str, direction: &str) -> anyhow::Result<Surface> {
    let text = read_text(path)?;
    let manifest: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON manifest", path.display()))?;
    let contract = manifest
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{}: the manifest has no contract `id`", path.display()))?
        .to_owned();
    let what = if kind == "rpc" { "RPC" } else { "operation" };
    let entries = manifest.get(kind).and_then(Value::as_object);
    let Some(entry) = entries.and_then(|e| e.get(name)) else {
        let known: Vec<&str> = entries
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let known = if known.is_empty() {
            "it declares none".to_owned()
        } else {
            format!("it declares {}", known.join(", "))
        };
        bail!("contract `{contract}` has no {what} `{name}` ({known})");
    };
    let declared = entry.pointer("/transfer/direction").and_then(Value::as_str);
    if declared != Some(direction) {
        bail!(
            "{what} `{name}` of `{contract}` is not a {direction} transfer surface \
             (its manifest entry has no `transfer.direction: \"{direction}\"`)"
        );
    }
    let subject = entry
        .get("subject")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{what} `{name}` of `{contract}` has no subject"))?;
    // The runtime's clients take the names generated code bakes in; this
    // process makes one client, once.
    Ok(Surface {
        contract,
        name: Box::leak(name.to_owned().into_boxed_str()),
        subject: Box::leak(subject.to_owned().into_boxed_str()),
    })
}

/// Parses `--input`.
fn input(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow!("--input is not valid JSON: {e}"))
}

/// Connects a caller of `contract` with the CLI's connection flags.
async fn connect(conn: &ConnArgs, contract: &str) -> anyhow::Result<ServiceRuntime> {
    let mut options = ConnectOptions::new(conn.url.clone())
        .deployment(conn.deployment.clone())
        .name(format!("trellis cli ({contract})"))
        // A service waits longer for NATS (its authority may be
        // restarting); a command gives up sooner.
        .ready_deadline(Duration::from_secs(5));
    if let Some(path) = &conn.credentials {
        options = options.credentials_file(path);
    }
    let mut tls = trellis_runtime::Tls::new();
    if let Some(ca) = &conn.tls_ca {
        tls = tls.ca_file(ca);
    }
    if let (Some(cert), Some(key)) = (&conn.tls_cert, &conn.tls_key) {
        tls = tls.client_certificate(cert, key);
    }
    if tls.is_set() {
        options = options.tls(tls);
    }
    connect_client(options, contract)
        .await
        .with_context(|| format!("connecting to {} as a caller of `{contract}`", conn.url))
}

/// A byte progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `trellis upload`.
pub async fn upload(args: UploadArgs) -> anyhow::Result<Outcome> {
    let surface = surface(&args.manifest, "operations", &args.operation, "send")?;
    let input = input(&args.input)?;
    let size = tokio::fs::metadata(&args.file)
        .await
        .with_context(|| format!("--file {}: cannot read it", args.file.display()))?
        .len();
    let body = Body::file(&args.file)
        .await
        .with_context(|| format!("--file {}: cannot open it", args.file.display()))?;
    let runtime = connect(&args.conn, &surface.contract).await?;
    let client = SendOperationClient::<Value, Value, Value>::new(
        runtime.rpc_client(),
        surface.name,
        surface.subject,
    );
    let bar = progress_bar(size);
    let shown = bar.clone();
    let op = client
        .input(input)
        .transfer(body)
        .on_started(|id| tracing::debug!(operation = id, "upload started"))
        .on_progress(move |sent, _| shown.set_position(sent))
        .start()
        .await;
    let op = match op {
        Ok(op) => {
            bar.finish_with_message("uploaded; waiting for the outcome");
            op
        }
        Err(e) => {
            bar.abandon();
            return Err(e).with_context(|| format!("uploading {}", args.file.display()));
        }
    };
    let outcome = op
        .wait()
        .await
        .with_context(|| format!("waiting for operation {}", op.id()))?;
    let (json, ok) = match outcome {
        trellis_runtime::Outcome::Completed(output) => (
            serde_json::json!({ "id": op.id(), "status": "completed", "output": output }),
            true,
        ),
        trellis_runtime::Outcome::Failed(message) => (
            serde_json::json!({ "id": op.id(), "status": "failed", "error": message }),
            false,
        ),
        trellis_runtime::Outcome::Cancelled => (
            serde_json::json!({ "id": op.id(), "status": "cancelled" }),
            false,
        ),
    };
    println!("{}", serde_json::to_string_pretty(&json)?);
    if !ok {
        bail!("operation {} did not complete", op.id());
    }
    Ok(Outcome::Ok)
}

/// The receive grant somewhere in `value` (an object with `id`, `size`,
/// `digest` and `expiresAtMs`), searched breadth-first and boundedly.
fn find_grant(value: &Value) -> Option<ReceiveGrant> {
    let mut queue = std::collections::VecDeque::from([value]);
    // Bounded: every value of the (finite) output is visited at most once,
    // and the search stops after 100 000 of them.
    for _ in 0..100_000 {
        let value = queue.pop_front()?;
        match value {
            Value::Object(map) => {
                let looks_like = ["id", "size", "digest", "expiresAtMs"]
                    .iter()
                    .all(|k| map.contains_key(*k));
                if looks_like
                    && let Ok(grant) = serde_json::from_value::<ReceiveGrant>(value.clone())
                {
                    return Some(grant);
                }
                queue.extend(map.values());
            }
            Value::Array(items) => queue.extend(items.iter()),
            _ => {}
        }
    }
    None
}

/// `trellis download`.
pub async fn download(args: DownloadArgs) -> anyhow::Result<Outcome> {
    let surface = surface(&args.manifest, "rpc", &args.rpc, "receive")?;
    let input = input(&args.input)?;
    let runtime = connect(&args.conn, &surface.contract).await?;
    let rpc: RpcClient = runtime.rpc_client();
    let output = rpc
        .call_identified::<Value, Value, Value>(surface.name, surface.subject, &input)
        .await
        .with_context(|| format!("calling {}", surface.name))?
        .map_err(|error| anyhow!("{} answered with an error: {error}", surface.name))?;
    let grant = find_grant(&output).ok_or_else(|| {
        anyhow!(
            "the output of {} holds no receive grant (an object with id, size, digest \
             and expiresAtMs): {output}",
            surface.name
        )
    })?;
    let bar = progress_bar(grant.size);
    let (shown, resumed) = (bar.clone(), bar.clone());
    let download = Download::new(runtime, &grant)
        .on_progress(move |bytes| shown.set_position(bytes))
        .on_resume(move |offset| resumed.set_message(format!("(resumed at byte {offset})")));
    let result = if args.resume {
        download.resume_to_file(&args.out).await
    } else {
        download.to_file(&args.out).await
    };
    let size = match result {
        Ok(size) => {
            bar.finish();
            size
        }
        Err(e) => {
            bar.abandon();
            let hint = if matches!(
                e,
                trellis_runtime::TransferError::Idle(_)
                    | trellis_runtime::TransferError::Interrupted(_)
                    | trellis_runtime::TransferError::Nats(_)
            ) {
                " (the bytes so far are kept in <out>.part: call again with --resume while the \
                 grant is valid)"
            } else {
                ""
            };
            return Err(e).with_context(|| format!("downloading to {}{hint}", args.out.display()));
        }
    };
    let json = serde_json::json!({
        "path": args.out.display().to_string(),
        "size": size,
        "digest": grant.digest,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(Outcome::Ok)
}
