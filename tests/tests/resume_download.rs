//! Resumable downloads against a real nats-server with auth on: a 64 MiB
//! download whose caller connection is kicked halfway resumes from the
//! byte it reached and fetches only the rest; a partial file is continued
//! (its bytes hashed again, an offset inside a chunk moved back to the
//! chunk boundary); bad offsets are refused by name; another principal
//! cannot resume someone else's grant, and a completed grant is spent.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use documents_example::documents;
use futures::StreamExt as _;
use sha2::Digest as _;
use trellis::{ReceiveGrant, ServeOptions, TransferError};

const MIB: usize = 1024 * 1024;

fn serve_options() -> ServeOptions {
    ServeOptions::default()
        .transfer_idle_timeout(Duration::from_secs(2))
        .operation_lease(Duration::from_secs(2))
}

async fn grant(client: &documents::Client, key: &str) -> ReceiveGrant {
    client
        .rpc
        .files
        .download(&documents::FileKey { key: key.into() })
        .await
        .expect("call")
        .expect("grant")
        .grant
}

/// Disconnects `nats` at the server (`$SYS.REQ.SERVER.<id>.KICK`, as the
/// authority does for revoked principals); the client reconnects.
async fn kick(system: &async_nats::Client, nats: &async_nats::Client) {
    let info = nats.server_info();
    let body = serde_json::json!({ "cid": info.client_id }).to_string();
    system
        .request(
            format!("$SYS.REQ.SERVER.{}.KICK", info.server_id),
            body.into(),
        )
        .await
        .expect("the server kicks the connection");
}

/// One resume's evidence: where it resumed, the bytes the connection
/// received after it, and what was left.
struct Resumed {
    offset: usize,
    after: usize,
    remainder: usize,
}

#[tokio::test]
async fn a_download_kicked_halfway_resumes_from_its_offset() {
    const SIZE: usize = 64 * MIB;
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    let data = content(SIZE, 7);
    upload(&docs.client, "big", data.clone()).await;
    drop(data);
    // A kick that lands after the second batch already reached the caller
    // loses nothing and needs no resume: try again with a fresh grant and
    // connection (at most three times; seen once in twenty runs).
    let mut resumed = None;
    for attempt in 1..=3 {
        let grant = grant(&docs.client, "big").await;
        if let Some(r) = kicked_download(&docs, &grant, SIZE).await {
            resumed = Some(r);
            break;
        }
        eprintln!("attempt {attempt}: the kick came after the data; trying again");
    }
    let Resumed {
        offset,
        after,
        remainder,
    } = resumed.expect("a kicked download resumed in one of three attempts");
    assert!(
        (SIZE / 2..SIZE).contains(&offset),
        "resumed at {offset} of {SIZE}"
    );
    // After the resume the connection received about the remainder (plus
    // chunk headers), not the whole object again.
    eprintln!("resumed at {offset}: {after} bytes received after the resume, {remainder} left");
    assert!(
        after >= remainder && after <= remainder + MIB,
        "{after} bytes arrived after resuming at {offset} ({remainder} were left)"
    );
}

/// Downloads `grant` (`size` bytes) on a connection of alice's own, kicked
/// right after the first half was acknowledged; the content must verify.
/// `None` when every byte arrived before the kick took effect (nothing to
/// resume).
async fn kicked_download(docs: &Docs, grant: &ReceiveGrant, size: usize) -> Option<Resumed> {
    // Alice downloads on a connection of her own, whose statistics count
    // the bytes it receives and whose server-side id the kick names.
    let runtime =
        trellis::__private::connect_client(docs.stack.user("alice", DOCS_RW).await, documents::ID)
            .await
            .expect("alice connects");
    let nats = runtime.nats().clone();
    let system = docs
        .stack
        .server
        .auth()
        .expect("auth is on")
        .system_options()
        .connect(docs.stack.server.url())
        .await
        .expect("system connection");

    // (offset, bytes the connection had received) at each resume.
    let resumes: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let (seen, counted) = (resumes.clone(), nats.clone());
    // Two batches of 32 MiB: the kick lands while the second is on the
    // wire, so part of it is lost with the connection.
    let download = trellis::Download::new(runtime, grant)
        .window(256)
        .on_resume(move |offset| {
            let received = counted.statistics().in_bytes.load(Ordering::Relaxed);
            seen.lock().expect("lock").push((offset, received));
        });
    let mut stream = download.stream().await.expect("redeemed");
    let (mut received, mut kicker) = (0usize, None);
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("every chunk, verified at the end");
        received += chunk.len();
        hasher.update(&chunk);
        if kicker.is_none() && received >= size / 2 {
            // The first batch is in. The caller acknowledges it when it
            // asks for the next chunk, and the provider then has the
            // second batch sent: kick the connection right after that ack,
            // so the batch goes out while the caller is away.
            let (system, nats) = (system.clone(), nats.clone());
            let acks = nats.statistics().out_messages.load(Ordering::Relaxed);
            kicker = Some(tokio::spawn(async move {
                for _ in 0..10_000 {
                    if nats.statistics().out_messages.load(Ordering::Relaxed) > acks {
                        kick(&system, &nats).await;
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                false
            }));
        }
    }
    let kicked = kicker.expect("halfway reached").await.expect("kicker");
    assert!(kicked, "the caller acknowledged the first batch");
    let total_in = nats.statistics().in_bytes.load(Ordering::Relaxed);
    assert_eq!(received, size);
    let ours = {
        use base64::Engine as _;
        let sha = hasher.finalize();
        format!(
            "SHA-256={}",
            base64::engine::general_purpose::URL_SAFE.encode(sha)
        )
    };
    assert_eq!(ours, grant.digest);
    let resumes = resumes.lock().expect("lock").clone();
    if resumes.is_empty() {
        // Everything had arrived (and verified) before the connection was
        // replaced: nothing was lost, so nothing was resumed.
        return None;
    }
    let &[(offset, at_resume)] = resumes.as_slice() else {
        panic!("expected exactly one resume, got {resumes:?}");
    };
    let offset = offset as usize;
    Some(Resumed {
        offset,
        after: (total_in - at_resume) as usize,
        remainder: size - offset,
    })
}

#[tokio::test]
async fn partial_files_bad_offsets_other_principals_and_spent_grants() {
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    let size = MIB + 1000;
    let data = content(size, 8);
    upload(&docs.client, "shared", data.clone()).await;
    let grant = grant(&docs.client, "shared").await;

    // Alice stops after two chunks.
    let mut stream = docs
        .client
        .download(&grant)
        .stream()
        .await
        .expect("redeemed");
    let mut held = 0usize;
    for _ in 0..2 {
        held += stream.next().await.expect("a chunk").expect("chunk").len();
    }
    drop(stream);
    assert!(held > 0 && held < size);

    // Bob cannot resume her grant.
    let bob = documents::Client::connect(docs.stack.user("bob", &[]).await)
        .await
        .expect("bob");
    let resumed = bob
        .download(&grant)
        .resume_from(held as u64, &data[..held])
        .await
        .expect("hashing the held bytes")
        .bytes()
        .await;
    assert!(
        matches!(resumed, Err(TransferError::GrantForbidden)),
        "{resumed:?}"
    );

    // Bad offsets are refused by name: past the end (before any request),
    // and inside a chunk (naming the boundary below it).
    let past = docs
        .client
        .download(&grant)
        .resume_from(size as u64 + 1, &data[..])
        .await;
    assert!(
        matches!(past, Err(TransferError::BadOffset { boundary: None, .. })),
        "{past:?}"
    );
    let inside = docs
        .client
        .download(&grant)
        .resume_from(1000, &data[..1000])
        .await
        .expect("hashing")
        .bytes()
        .await;
    match inside {
        Err(TransferError::BadOffset {
            offset: 1000,
            boundary: Some(0),
            reason,
        }) => eprintln!("refused: {reason}"),
        other => panic!("expected a bad offset, got {other:?}"),
    }

    // A partial file ending inside a chunk: resumed from the boundary
    // below it, the bytes on disk hashed again, only the rest fetched.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.bin");
    let mut part = path.clone().into_os_string();
    part.push(".part");
    std::fs::write(&part, &data[..held + 500]).expect("partial file");
    let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first = Arc::new(Mutex::new(None));
    let (count, start) = (fetched.clone(), first.clone());
    let written = docs
        .client
        .download(&grant)
        .on_progress(move |bytes| {
            start.lock().expect("lock").get_or_insert(bytes);
            count.store(bytes, Ordering::Relaxed);
        })
        .resume_to_file(&path)
        .await
        .expect("resumed into the file");
    assert_eq!(written, size as u64);
    assert!(std::fs::read(&path).expect("read") == data.as_ref());
    assert!(!std::path::Path::new(&part).exists());
    // The first progress report is the held bytes plus one chunk.
    let first = first.lock().expect("lock").expect("progress");
    assert!(first > held as u64 && first <= held as u64 + 128 * 1024);

    // Completed: neither a resume nor a fresh redemption is accepted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = docs
        .client
        .download(&grant)
        .resume_from(held as u64, &data[..held])
        .await
        .expect("hashing")
        .bytes()
        .await;
    assert!(matches!(again, Err(TransferError::GrantUsed)), "{again:?}");
    assert!(matches!(
        docs.client.download(&grant).bytes().await,
        Err(TransferError::GrantUsed)
    ));
}
