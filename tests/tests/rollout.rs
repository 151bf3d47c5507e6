//! Rolling deploys across digests: while a compatible v2 is accepted, v1
//! instances keep connecting and serving beside it until v1 is retired; a
//! dangerous change refuses every earlier digest at once.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use trellis::{ConnectError, RpcServer, ServeOptions};
use trellis_runtime::protocol::RetireReason;

mod v1 {
    #[trellis::contract(id = "greeter@v1", display_name = "Greeter", description = "Greets")]
    pub mod greeter {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Name {
            pub name: String,
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Greeting {
            pub text: String,
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Note {
            pub text: String,
        }

        #[kv(purpose = "Notes", schema = Note, history = 4)]
        pub struct Notes;

        /// Says hello.
        #[rpc("Greet.Hello")]
        fn greet_hello(input: Name) -> Greeting;
    }
}

/// Compatible with v1: one more RPC.
mod v2 {
    #[trellis::contract(id = "greeter@v1", display_name = "Greeter", description = "Greets")]
    pub mod greeter {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Name {
            pub name: String,
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Greeting {
            pub text: String,
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Note {
            pub text: String,
        }

        #[kv(purpose = "Notes", schema = Note, history = 4)]
        pub struct Notes;

        /// Says hello.
        #[rpc("Greet.Hello")]
        fn greet_hello(input: Name) -> Greeting;

        /// Says goodbye.
        #[rpc("Greet.Bye")]
        fn greet_bye(input: Name) -> Greeting;
    }
}

/// Dangerous after v2: the notes history shrinks.
#[allow(dead_code)]
mod v3 {
    #[trellis::contract(id = "greeter@v1", display_name = "Greeter", description = "Greets")]
    pub mod greeter {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Name {
            pub name: String,
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Greeting {
            pub text: String,
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Note {
            pub text: String,
        }

        #[kv(purpose = "Notes", schema = Note, history = 2)]
        pub struct Notes;

        /// Says hello.
        #[rpc("Greet.Hello")]
        fn greet_hello(input: Name) -> Greeting;

        /// Says goodbye.
        #[rpc("Greet.Bye")]
        fn greet_bye(input: Name) -> Greeting;
    }
}

struct Greeter(&'static str);

impl v1::greeter::Handlers for Greeter {
    async fn greet_hello(&self, input: v1::greeter::Name) -> v1::greeter::Greeting {
        v1::greeter::Greeting {
            text: format!("hello {} from {}", input.name, self.0),
        }
    }
}

impl v2::greeter::Handlers for Greeter {
    async fn greet_hello(&self, input: v2::greeter::Name) -> v2::greeter::Greeting {
        v2::greeter::Greeting {
            text: format!("hello {} from {}", input.name, self.0),
        }
    }

    async fn greet_bye(&self, input: v2::greeter::Name) -> v2::greeter::Greeting {
        v2::greeter::Greeting {
            text: format!("bye {}", input.name),
        }
    }
}

async fn v1_instance(stack: &Stack, name: &'static str) -> Result<RpcServer, ConnectError> {
    let options = stack
        .service(v1::greeter::ID)
        .await
        .ready_deadline(Duration::from_secs(15));
    let service = v1::greeter::Service::connect(options).await?;
    Ok(service
        .serve(Greeter(name), ServeOptions::default())
        .await
        .expect("serve"))
}

async fn v2_instance(stack: &Stack, name: &'static str) -> Result<RpcServer, ConnectError> {
    let options = stack
        .service(v2::greeter::ID)
        .await
        .ready_deadline(Duration::from_secs(15));
    let service = v2::greeter::Service::connect(options).await?;
    Ok(service
        .serve(Greeter(name), ServeOptions::default())
        .await
        .expect("serve"))
}

#[tokio::test]
async fn v1_instances_keep_serving_and_restarting_through_a_compatible_rollout() {
    let stack = stack().await;
    accept_ready(
        &stack,
        v1::greeter::MANIFEST_JSON,
        v1::greeter::ID,
        v1::greeter::DIGEST,
    )
    .await;
    let a = v1_instance(&stack, "v1-a").await.expect("v1 a connects");
    let b = v1_instance(&stack, "v1-b").await.expect("v1 b connects");

    // A caller built on v1 calls without pause through the whole rollout.
    let client = v1::greeter::Client::connect(stack.user("alice", &[]).await)
        .await
        .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let caller = tokio::spawn({
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        async move {
            let mut errors = Vec::new();
            for i in 0..200_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = v1::greeter::Name {
                    name: format!("n{i}"),
                };
                match client.rpc.greet.hello(&name).await {
                    Ok(g) if g.text.starts_with("hello n") => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
            }
            errors
        }
    });

    // A compatible v2 is accepted (safe) and a v2 instance starts.
    let reply = stack
        .client
        .accept(v2::greeter::MANIFEST_JSON, false)
        .await
        .expect("accept v2");
    assert!(!reply.plan.is_dangerous(), "{:?}", reply.plan);
    ready(&stack.client, v2::greeter::ID, v2::greeter::DIGEST).await;
    let c = v2_instance(&stack, "v2-c").await.expect("v2 connects");

    // One v1 instance restarts: it connects again and serves.
    assert!(a.shutdown(Duration::from_secs(5)).await, "a drained");
    let a = v1_instance(&stack, "v1-a2")
        .await
        .expect("a restarted v1 instance connects during the rollout");

    // `status` lists both live digests and the instances running each
    // (b and the restarted a on v1, c on v2).
    let status = stack.client.status_with_instances().await.expect("status");
    let greeter = status
        .contracts
        .iter()
        .find(|c| c.id == v1::greeter::ID)
        .expect("greeter");
    let live: Vec<(&str, bool, u64)> = greeter
        .live
        .iter()
        .map(|l| (l.digest.as_str(), l.accepted, l.instances))
        .collect();
    assert_eq!(
        live,
        [
            (v2::greeter::DIGEST, true, 1),
            (v1::greeter::DIGEST, false, 2)
        ]
    );
    assert!(greeter.live[1].expires_ms.is_some());

    // Calls kept succeeding throughout.
    eventually(Duration::from_secs(10), "calls after the restart", || {
        let ok = ok.clone();
        async move { (ok.load(Ordering::Relaxed) > 200).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let errors = caller.await.expect("caller");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{errors:?}");

    // Retired, v1 is refused with a typed error naming the retirement.
    let live = stack
        .client
        .retire(v1::greeter::ID, v1::greeter::DIGEST)
        .await
        .expect("retire v1");
    assert_eq!(live.len(), 1);
    match v1_instance(&stack, "v1-late").await {
        Err(ConnectError::Retired { digest, reason, .. }) => {
            assert_eq!(digest, v1::greeter::DIGEST);
            assert_eq!(reason, RetireReason::Retired);
        }
        other => panic!("expected Retired, got {:?}", other.err()),
    }
    // The accepted digest cannot be retired.
    assert!(
        stack
            .client
            .retire(v2::greeter::ID, v2::greeter::DIGEST)
            .await
            .is_err()
    );

    // A dangerous change refuses the superseded v2 at once.
    let reply = stack
        .client
        .accept(v3::greeter::MANIFEST_JSON, true)
        .await
        .expect("accept v3 (dangerous, confirmed)");
    assert!(reply.plan.is_dangerous());
    match v2_instance(&stack, "v2-late").await {
        Err(ConnectError::Retired { reason, .. }) => {
            assert_eq!(reason, RetireReason::Dangerous)
        }
        other => panic!("expected Retired, got {:?}", other.err()),
    }
    for server in [a, b, c] {
        server.shutdown(Duration::from_secs(5)).await;
    }
}
