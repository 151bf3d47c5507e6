//! A contract for operation and transfer tests, and its handlers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis::{Grants, OperationContext, OperationFailure, StoreHandle};

/// Long-running jobs, a small upload store and grants.
#[trellis::contract(id = "jobs@v1", display_name = "Jobs", description = "Operation tests")]
pub mod jobs {
    use serde::{Deserialize, Serialize};

    /// Observe other principals' jobs.
    #[capability(display_name = "Watch jobs")]
    pub const WATCH: &str = "watch";

    /// Start jobs.
    #[capability(display_name = "Run jobs")]
    pub const RUN: &str = "run";

    /// Cancel other principals' jobs.
    #[capability(display_name = "Stop jobs", consequence = "Holders can stop any job")]
    pub const STOP: &str = "stop";

    /// Small uploads.
    #[store(purpose = "Small uploads", max_total_bytes = 8_388_608)]
    pub struct Blobs;

    /// A job.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct JobInput {
        /// Steps to run.
        pub steps: u32,
        /// Time per step.
        pub step_ms: u64,
        /// Fail at the end.
        #[serde(default)]
        pub fail: bool,
    }

    /// Steps done.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct JobProgress {
        /// Steps done so far.
        pub done: u32,
    }

    /// A finished job.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct JobOutput {
        /// Steps run.
        pub total: u32,
        /// Which instance ran it.
        pub instance: String,
    }

    /// An upload.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct BlobInput {
        /// Object key.
        pub key: String,
        /// Time the handler takes after the bytes are stored.
        #[serde(default)]
        pub hold_ms: u64,
    }

    /// A stored upload.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct BlobOutput {
        /// Object key.
        pub key: String,
        /// Size.
        pub size: u64,
        /// Digest.
        pub digest: String,
    }

    /// A grant request.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct FetchInput {
        /// Object key.
        pub key: String,
        /// Grant lifetime.
        pub ttl_ms: u64,
    }

    /// A grant.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct FetchOutput {
        /// The grant.
        pub grant: trellis::ReceiveGrant,
    }

    /// Fetch failures.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum FetchError {
        /// No such object.
        Missing(String),
    }

    /// A cancellable job with progress.
    #[operation(
        "Jobs.Run",
        progress = JobProgress,
        capabilities(call = [RUN], observe = [WATCH], cancel = [STOP]),
        cancel
    )]
    fn jobs_run(input: JobInput) -> JobOutput;

    /// A job that cannot be cancelled.
    #[operation("Jobs.Quick")]
    fn jobs_quick(input: JobInput) -> JobOutput;

    /// Upload a small blob.
    #[operation(
        "Blobs.Put",
        capabilities(call = [RUN]),
        cancel,
        transfer(send, store = Blobs, key = "/key", max_bytes = 1_048_576)
    )]
    fn blobs_put(input: BlobInput) -> BlobOutput;

    /// A grant for a blob with a chosen lifetime.
    #[rpc("Blobs.Fetch", transfer(receive))]
    fn blobs_fetch(input: FetchInput) -> Result<FetchOutput, FetchError>;
}

/// The handlers; `instance` names the serving instance.
#[derive(Clone)]
pub struct JobHandlers {
    pub store: StoreHandle,
    pub instance: String,
    pub started: Arc<Mutex<Vec<String>>>,
}

impl JobHandlers {
    pub fn new(store: StoreHandle, instance: &str) -> JobHandlers {
        JobHandlers {
            store,
            instance: instance.to_owned(),
            started: Arc::default(),
        }
    }

    async fn run(
        &self,
        op: &OperationContext<jobs::JobProgress>,
        input: jobs::JobInput,
        cancellable: bool,
    ) -> Result<jobs::JobOutput, OperationFailure> {
        self.started.lock().expect("lock").push(op.id().to_owned());
        for done in 1..=input.steps {
            let step = tokio::time::sleep(Duration::from_millis(input.step_ms));
            if cancellable {
                tokio::select! {
                    () = op.cancelled() => return Err(OperationFailure::Cancelled),
                    () = step => {}
                }
            } else {
                step.await;
            }
            op.progress(&jobs::JobProgress { done }).await?;
        }
        if input.fail {
            return Err(OperationFailure::failed("asked to fail"));
        }
        Ok(jobs::JobOutput {
            total: input.steps,
            instance: self.instance.clone(),
        })
    }
}

impl jobs::Handlers for JobHandlers {
    async fn jobs_run(
        &self,
        op: OperationContext<jobs::JobProgress>,
        input: jobs::JobInput,
    ) -> Result<jobs::JobOutput, OperationFailure> {
        self.run(&op, input, true).await
    }

    async fn jobs_quick(
        &self,
        op: OperationContext<()>,
        input: jobs::JobInput,
    ) -> Result<jobs::JobOutput, OperationFailure> {
        for _ in 0..input.steps {
            tokio::time::sleep(Duration::from_millis(input.step_ms)).await;
        }
        let _ = op;
        Ok(jobs::JobOutput {
            total: input.steps,
            instance: self.instance.clone(),
        })
    }

    async fn blobs_put(
        &self,
        op: OperationContext<()>,
        input: jobs::BlobInput,
    ) -> Result<jobs::BlobOutput, OperationFailure> {
        let Some(info) = op.transfer().cloned() else {
            return Err(OperationFailure::failed("no transfer"));
        };
        tokio::select! {
            () = op.cancelled() => return Err(OperationFailure::Cancelled),
            () = tokio::time::sleep(Duration::from_millis(input.hold_ms)) => {}
        }
        Ok(jobs::BlobOutput {
            key: info.key,
            size: info.size,
            digest: info.digest,
        })
    }

    async fn blobs_fetch(
        &self,
        input: jobs::FetchInput,
        grants: Grants,
    ) -> Result<jobs::FetchOutput, jobs::FetchError> {
        grants
            .issue_for(&self.store, &input.key, Duration::from_millis(input.ttl_ms))
            .await
            .map(|grant| jobs::FetchOutput { grant })
            .map_err(|e| jobs::FetchError::Missing(e.to_string()))
    }
}
