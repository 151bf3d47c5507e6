//! Developer tasks for the trellis-rs workspace, run as `cargo xtask <task>`.
//!
//! * `setup` — make sure a `nats-server` >= 2.10 is available.
//! * `test [ARGS...]` — setup, `cargo fmt --check`, the module cycle check,
//!   then `cargo test --workspace ARGS...`.
//! * `lint` — `cargo fmt --check` and `cargo clippy -D warnings`.
//! * `links` — check what each role crate links (see [`links`]).
//! * `modules [--dot]` — print each crate's module import graph and layers;
//!   fails on import cycles between the top-level modules of a crate, or
//!   between the children of one folder module (see [`modules`]).
//! * `demo` — build the examples and check/digest their contract manifests.

mod cmd;
mod links;
mod modules;
mod nats;

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::cmd::{CommandFailed, cargo, run, step};

/// Usage text printed for `help` and on bad invocations.
const USAGE: &str = "\
usage: cargo xtask <task> [args...]

tasks:
  setup           ensure nats-server >= 2.10 is available (installs into .tools/nats)
  test [ARGS...]  setup, cargo fmt --check, modules, links, cargo test --workspace ARGS...
  lint            cargo fmt --check and cargo clippy --workspace --all-targets -D warnings
  links           check what each role crate links (no parser in the runtime, no harness in
                  an operator CLI)
  modules [--dot] print each crate's module import graph and layers (--dot: Graphviz);
                  fails on a cycle between the top-level modules of a crate,
                  or between the children of one folder module
  demo            build the examples and run `trellis contract check/digest` on their manifests";

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nerror: {err:#}");
            let code = err
                .chain()
                .find_map(|cause| cause.downcast_ref::<CommandFailed>())
                .and_then(|failed| failed.code)
                .and_then(|code| u8::try_from(code).ok())
                .filter(|&code| code != 0)
                .unwrap_or(1);
            ExitCode::from(code)
        }
    }
}

/// Parses the command line and dispatches to a task.
fn try_main() -> Result<()> {
    let mut args = env::args_os().skip(1);
    let task = args.next();
    let rest: Vec<OsString> = args.collect();
    let root = repo_root()?;

    match task.as_ref().and_then(|t| t.to_str()) {
        Some("setup") => no_extra_args("setup", &rest).and_then(|()| nats::setup(&root).map(drop)),
        Some("test") => test(&root, &rest),
        Some("lint") => no_extra_args("lint", &rest).and_then(|()| lint(&root)),
        Some("demo") => no_extra_args("demo", &rest).and_then(|()| demo(&root)),
        Some("modules") => modules_task(&root, &rest),
        Some("links") => no_extra_args("links", &rest).and_then(|()| links::check(&root)),
        None | Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(_) => bail!(
            "unknown task `{}`\n\n{USAGE}",
            task.as_deref().unwrap_or_default().to_string_lossy()
        ),
    }
}

/// Rejects stray arguments for tasks that take none.
fn no_extra_args(task: &str, rest: &[OsString]) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        bail!("`{task}` takes no arguments\n\n{USAGE}")
    }
}

/// `cargo xtask modules [--dot]`: the module import graphs, failing on cycles.
fn modules_task(root: &Path, rest: &[OsString]) -> Result<()> {
    let output = match rest {
        [] => modules::Output::Graph,
        [flag] if flag == "--dot" => modules::Output::Dot,
        _ => bail!("`modules` takes only `--dot`\n\n{USAGE}"),
    };
    modules::check(root, output)
}

/// The workspace root: the parent of this crate's manifest directory.
fn repo_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask manifest directory has no parent")
}

/// `cargo xtask test`: setup, format check, module cycle check, then the
/// workspace test suite.
fn test(root: &Path, extra: &[OsString]) -> Result<()> {
    let server = nats::setup(root)?;
    fmt_check(root)?;
    step("cargo xtask modules (no import cycles between layers or sibling modules)");
    modules::check(root, modules::Output::Summary)?;
    step("cargo xtask links (what each role crate links)");
    links::check(root)?;

    step("cargo test --workspace");
    let mut path = vec![server.bin_dir().to_path_buf()];
    if let Some(existing) = env::var_os("PATH") {
        path.extend(env::split_paths(&existing));
    }
    let path = env::join_paths(path).context("cannot build PATH for the test run")?;
    // One clean build, no incremental caches: they would roughly double
    // the target directory on a fresh CI machine (CI once ran out of disk).
    run(cargo(root)
        .args(["test", "--workspace"])
        .args(extra)
        .env("CARGO_INCREMENTAL", "0")
        .env(nats::ENV_VAR, &server.path)
        .env("PATH", path))?;
    manifests_committed(root)
}

/// Fails when the build rewrote a committed contract manifest: build.rs
/// emits `examples/*/contracts/*.json`, and reviewers and peer teams read
/// the committed copy, so it must never be stale.
fn manifests_committed(root: &Path) -> Result<()> {
    if !root.join(".git").exists() {
        return Ok(());
    }
    step("committed contract manifests are up to date");
    let output = std::process::Command::new("git")
        .current_dir(root)
        .args([
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--",
            ":(glob)**/contracts/*.json",
        ])
        .output()
        .context("cannot run `git status`")?;
    if !output.status.success() {
        bail!(
            "`git status` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let changed = String::from_utf8_lossy(&output.stdout);
    if !changed.trim().is_empty() {
        bail!("the build changed committed contract manifests; review and commit them:\n{changed}");
    }
    Ok(())
}

/// `cargo xtask lint`: rustfmt and clippy over the whole workspace.
fn lint(root: &Path) -> Result<()> {
    fmt_check(root)?;
    step("cargo clippy --workspace --all-targets -- -D warnings");
    run(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Runs `cargo fmt --all -- --check`.
fn fmt_check(root: &Path) -> Result<()> {
    step("cargo fmt --all -- --check");
    run(cargo(root).args(["fmt", "--all", "--", "--check"]))
}

/// `cargo xtask demo`: build the examples, check and digest every contract
/// manifest their build scripts emitted, then run the items service against
/// a local stack (`trellis dev` + `trellis contract accept`).
fn demo(root: &Path) -> Result<()> {
    let server = nats::setup(root)?;

    step("cargo build -p trellis-cli -p documents-example -p items-example");
    run(cargo(root).args([
        "build",
        "-p",
        "trellis-cli",
        "-p",
        "documents-example",
        "-p",
        "items-example",
        "-p",
        "indexer-example",
    ]))?;
    let bin = root.join("target/debug");
    let trellis = bin.join("trellis");

    let manifests = example_manifests(root)?;
    if manifests.is_empty() {
        bail!(
            "no contract manifests found under {}; expected the example build scripts \
             to write examples/<name>/contracts/*.json",
            root.join("examples").display()
        );
    }
    for manifest in &manifests {
        let shown = manifest.strip_prefix(root).unwrap_or(manifest);
        for action in ["check", "digest"] {
            step(&format!("trellis contract {action} {}", shown.display()));
            run(Command::new(&trellis)
                .current_dir(root)
                .args(["contract", action])
                .arg(shown))?;
        }
    }

    let port = free_port()?;
    let url = format!("nats://127.0.0.1:{port}");
    let dir = root.join("target/trellis-demo");
    let _ = fs::remove_dir_all(&dir);
    step(&format!(
        "trellis dev --port {port} --dir target/trellis-demo"
    ));
    let dev = Command::new(&trellis)
        .current_dir(root)
        .args(["dev", "--port", &port.to_string(), "--dir"])
        .arg(&dir)
        .env(nats::ENV_VAR, &server.path)
        .spawn()
        .context("starting `trellis dev`")?;
    let dev = DevStack(dev);
    // `trellis dev` runs with auth: the CLI acts as the operator whose
    // credential file it wrote, and every service gets its own key.
    let operator = dir.join("operator.creds.json");
    let cli = || {
        let mut c = Command::new(&trellis);
        c.env("TRELLIS_CREDENTIALS", &operator)
            .env("TRELLIS_URL", &url);
        c
    };
    wait_for_authority(&cli)?;
    let principal = |args: &[&str], file: &str| -> Result<PathBuf> {
        let path = dir.join(file);
        step(&format!("trellis principal add {}", args.join(" ")));
        run(cli()
            .args(["principal", "add"])
            .args(args)
            .arg("--out")
            .arg(&path))?;
        Ok(path)
    };
    let service = |bin_name: &str, creds: &Path| {
        let mut c = Command::new(bin.join(bin_name));
        c.env("TRELLIS_URL", &url)
            .env("TRELLIS_DEPLOYMENT", "dev")
            .env("TRELLIS_CREDENTIALS", creds);
        c
    };

    let items = root.join("examples/items/contracts/items@v1.json");
    step("trellis contract accept examples/items/contracts/items@v1.json");
    run(cli().args(["contract", "accept"]).arg(&items))?;
    let items_creds = principal(
        &["service", "items", "--contract", "items@v1"],
        "items.creds.json",
    )?;
    step("items service (examples/items/src/main.rs)");
    run(&mut service("items-example", &items_creds))?;
    let documents = root.join("examples/documents/contracts/documents@v1.json");
    step("trellis contract accept examples/documents/contracts/documents@v1.json");
    run(cli().args(["contract", "accept"]).arg(&documents))?;
    let documents_creds = principal(
        &["service", "documents", "--contract", "documents@v1"],
        "documents.creds.json",
    )?;
    step("documents service (examples/documents/src/main.rs), in the background");
    let documents_service = service("documents-example", &documents_creds)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the documents service")?;
    let mut documents_service = DevStack(documents_service);
    wait_for_line(&mut documents_service.0, "serving")?;
    let indexer = root.join("examples/indexer/contracts/indexer@v1.json");
    step("trellis contract accept examples/indexer/contracts/indexer@v1.json");
    run(cli().args(["contract", "accept"]).arg(&indexer))?;
    let indexer_creds = principal(
        &["service", "indexer", "--contract", "indexer@v1"],
        "indexer.creds.json",
    )?;
    step("trellis grant indexer documents::read");
    run(cli().args(["grant", "indexer", "documents::read"]))?;
    step(
        "indexer service (examples/indexer: a peer built from documents@v1.json), in the background",
    );
    let indexing = service("indexer-example", &indexer_creds)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the indexer service")?;
    let mut indexing = DevStack(indexing);
    wait_for_line(&mut indexing.0, "indexing")?;
    let caller_creds = principal(&["user", "documents-caller"], "caller.creds.json")?;
    step("trellis grant documents-caller documents::read documents::write");
    run(cli().args([
        "grant",
        "documents-caller",
        "documents::read",
        "documents::write",
    ]))?;
    step("documents caller (examples/documents/src/bin/documents-caller.rs)");
    run(&mut service("documents-caller", &caller_creds))?;
    drop(indexing);
    drop(documents_service);
    step("trellis status");
    run(cli().arg("status"))?;
    drop(dev);
    println!("\ndemo: done (manifests checked: {})", manifests.len());
    Ok(())
}

/// Waits until `child` prints a line containing `marker` (and echoes it).
fn wait_for_line(child: &mut std::process::Child, marker: &str) -> Result<()> {
    use std::io::BufRead as _;
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not piped")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.context("reading the child's output")?;
        println!("{line}");
        if line.contains(marker) {
            // Keep echoing the rest in the background.
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    println!("{line}");
                }
            });
            return Ok(());
        }
    }
    bail!("the process exited before printing `{marker}`")
}

/// A child (`trellis dev`, a service), interrupted (like Ctrl-C) when dropped.
struct DevStack(std::process::Child);

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(listener.local_addr().context("reading the port")?.port())
}

/// Polls `trellis status` until the authority answers (20 s at most).
fn wait_for_authority(cli: &dyn Fn() -> Command) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ok = cli()
            .arg("status")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("the local stack did not come up within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Lists `examples/*/contracts/*.json` (sorted) under `root`.
fn example_manifests(root: &Path) -> Result<Vec<PathBuf>> {
    let examples = root.join("examples");
    let mut manifests = Vec::new();
    for example in read_dir(&examples)? {
        let contracts = example.join("contracts");
        if !contracts.is_dir() {
            continue;
        }
        manifests.extend(
            read_dir(&contracts)?
                .into_iter()
                .filter(|p| p.is_file() && p.extension().is_some_and(|ext| ext == "json")),
        );
    }
    manifests.sort();
    Ok(manifests)
}

/// Returns the paths of all entries in `dir`.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .map(|entry| {
            entry
                .map(|e| e.path())
                .with_context(|| format!("cannot read an entry of {}", dir.display()))
        })
        .collect()
}
