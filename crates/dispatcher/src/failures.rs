//! Failure counting that costs the database one statement per hook at a time, however many
//! callouts to the hook fail at once.
//!
//! Every failed callout must learn its hook's count (to disable the hook at its threshold), and
//! the count is shared by all replicas, so it lives in the store. A receiver failing fast (a reset
//! connection, a redirect) fails hundreds of callouts a second; one statement each would take the
//! dispatcher's database connections from its attempt records. Instead, while a hook's count is
//! being written, the failures arriving meanwhile wait together and are counted in the next
//! statement at once, each learning the count that statement returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_storage::{StorageError, Store};

/// What a failure learns: its hook's count with it, or why it could not be counted.
pub(crate) type Counted = Result<u64, Arc<StorageError>>;

/// Failures of one hook waiting for the next statement.
struct Waiting {
    /// The hook's owner.
    account: AccountId,
    /// When the latest of them failed, Unix milliseconds.
    at_ms: i64,
    /// The owner's failure window.
    window: Duration,
    /// One per failure, each told the count.
    waiters: Vec<oneshot::Sender<Counted>>,
}

/// The failure counter; cheap to clone.
#[derive(Clone)]
pub(crate) struct FailureCounter {
    /// Where counts are kept.
    store: Store,
    /// Hooks whose count is being written, with the failures waiting for the next statement.
    pending: Arc<Mutex<HashMap<WebhookId, Option<Waiting>>>>,
}

impl FailureCounter {
    /// A counter writing to `store`.
    pub(crate) fn new(store: Store) -> Self {
        Self { store, pending: Arc::default() }
    }

    /// Counts one failure of `hook`, made at `at_ms` within the owner's `window`, and returns
    /// the hook's count with it (see [`Store::record_failures`]).
    pub(crate) async fn count(&self, account: &AccountId, hook: &WebhookId, at_ms: i64, window: Duration) -> Counted {
        let (told, answer) = oneshot::channel();
        let waiting = Waiting { account: account.clone(), at_ms, window, waiters: vec![told] };
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match pending.get_mut(hook) {
                // A statement is under way: wait for the next one.
                Some(Some(next)) => {
                    next.at_ms = next.at_ms.max(at_ms);
                    next.window = window;
                    next.waiters.extend(waiting.waiters);
                    None
                }
                Some(slot @ None) => {
                    *slot = Some(waiting);
                    None
                }
                None => {
                    pending.insert(hook.clone(), None);
                    Some(waiting)
                }
            }
        };
        if let Some(waiting) = first {
            // The statements of one hook run one after another, on a task of their own, so none
            // is abandoned if this caller's future is dropped.
            tokio::spawn(self.clone().write(hook.clone(), waiting));
        }
        answer.await.unwrap_or_else(|_| Err(Arc::new(StorageError::Unavailable)))
    }

    /// Writes `waiting`, then whatever gathered meanwhile, until nothing waits for `hook`.
    async fn write(self, hook: WebhookId, mut waiting: Waiting) {
        loop {
            let count = u64::try_from(waiting.waiters.len()).unwrap_or(u64::MAX);
            let counted = self
                .store
                .record_failures(&waiting.account, &hook, count, waiting.at_ms, waiting.window)
                .await
                .map_err(Arc::new);
            for waiter in waiting.waiters {
                // A waiter that went away needs no answer.
                let _ = waiter.send(counted.clone());
            }
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match pending.get_mut(&hook).and_then(Option::take) {
                Some(next) => waiting = next,
                None => {
                    pending.remove(&hook);
                    return;
                }
            }
        }
    }
}
