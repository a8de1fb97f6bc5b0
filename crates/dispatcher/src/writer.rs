//! The attempt writer: gathers the attempt records (and the failure counts to clear) of many
//! deliveries for a few milliseconds and writes them in one statement, so the attempt log does
//! not cap throughput. Each caller waits for the write that contains its records, so a delivery
//! is still acknowledged only after its attempts are stored.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use webhooks_model::ids::WebhookId;
use webhooks_storage::{NewAttempt, StorageError, Store};

/// Requests waiting for the writer; beyond this, callers wait to hand theirs over.
const QUEUE_DEPTH: usize = 1024;

/// One caller's share of a write.
struct WriteRequest {
    /// Records to insert.
    attempts: Vec<NewAttempt>,
    /// Hooks whose failure counts a success cleared (decision 14).
    cleared: Vec<WebhookId>,
    /// Told when the write holding these is done.
    done: oneshot::Sender<Result<(), Arc<StorageError>>>,
}

/// Why records were not written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The database refused the write.
    #[error("attempt records could not be stored")]
    Storage(#[source] Arc<StorageError>),
    /// The writer has stopped (the dispatcher is shutting down).
    #[error("the attempt writer has stopped")]
    Stopped,
}

/// The handle deliveries write through; cheap to clone.
#[derive(Clone)]
pub struct AttemptWriter {
    /// The writer task's inbox.
    requests: mpsc::Sender<WriteRequest>,
}

impl AttemptWriter {
    /// Starts the writer task on `store`: a write happens once `batch_size` records are waiting
    /// or `gather_for` after the first waiting one. The task ends when every handle is dropped.
    pub fn start(store: Store, batch_size: usize, gather_for: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        let (requests, inbox) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run_writer(store, inbox, batch_size.max(1), gather_for));
        (Self { requests }, task)
    }

    /// Stores `attempts` and clears the failure counts of `cleared`; returns once they are in
    /// the database.
    pub async fn write(&self, attempts: Vec<NewAttempt>, cleared: Vec<WebhookId>) -> Result<(), WriteError> {
        if attempts.is_empty() && cleared.is_empty() {
            return Ok(());
        }
        let (done, written) = oneshot::channel();
        self.requests.send(WriteRequest { attempts, cleared, done }).await.map_err(|_| WriteError::Stopped)?;
        written.await.map_err(|_| WriteError::Stopped)?.map_err(WriteError::Storage)
    }
}

/// The writer loop.
async fn run_writer(store: Store, mut inbox: mpsc::Receiver<WriteRequest>, batch_size: usize, gather_for: Duration) {
    while let Some(first) = inbox.recv().await {
        let mut rows = first.attempts.len() + first.cleared.len();
        let mut pending = vec![first];
        let deadline = tokio::time::Instant::now() + gather_for;
        while rows < batch_size {
            tokio::select! {
                next = inbox.recv() => match next {
                    Some(request) => {
                        rows += request.attempts.len() + request.cleared.len();
                        pending.push(request);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let mut attempts = Vec::new();
        let mut cleared = Vec::new();
        let mut waiting = Vec::with_capacity(pending.len());
        for request in pending {
            attempts.extend(request.attempts);
            cleared.extend(request.cleared);
            waiting.push(request.done);
        }
        let outcome = write_all(&store, &attempts, &mut cleared).await.map_err(Arc::new);
        if let Err(error) = &outcome {
            tracing::error!(error = %error, count = attempts.len(), "writing attempt records failed");
        }
        for done in waiting {
            // A caller that gave up waiting needs no answer.
            let _ = done.send(outcome.clone());
        }
    }
}

/// One write: the records, then the cleared counts.
async fn write_all(store: &Store, attempts: &[NewAttempt], cleared: &mut Vec<WebhookId>) -> Result<(), StorageError> {
    store.insert_attempts(attempts).await?;
    cleared.sort_unstable_by(|left, right| left.as_str().cmp(right.as_str()));
    cleared.dedup();
    store.clear_failures_of(cleared).await
}
