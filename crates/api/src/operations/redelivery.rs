//! Deliveries made again from the attempt log: the resend of one attempt, the replay of a hook's
//! failed deliveries, and their publication to the dispatchers.

use webhooks_bus::{Bus, BusError, Outgoing};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::{DeliveryJob, REDELIVERY_BATCH};
use webhooks_model::time::unix_millis;
use webhooks_storage::{RedeliveryError, Store};

/// The job delivering attempt `attempt` again, with its event id, to its hook as configured now.
/// With `owner` (account and hook), an attempt of any other hook is unknown.
pub async fn resend(
    store: &Store,
    attempt: &str,
    owner: Option<(&AccountId, &WebhookId)>,
) -> Result<DeliveryJob, RedeliveryError> {
    store.resend_job(attempt, owner, unix_millis().unsigned_abs()).await
}

/// The jobs delivering again, to `hook` as configured now, every event whose latest attempt
/// record since `since` (gregorian seconds) is a failure, oldest first; records made before jobs
/// were kept are skipped. With `owner`, a hook of any other account is unknown.
pub async fn replay(
    store: &Store,
    hook: &WebhookId,
    owner: Option<&AccountId>,
    since: i64,
) -> Result<Vec<DeliveryJob>, RedeliveryError> {
    store.replay_jobs(hook, owner, since, unix_millis().unsigned_abs()).await
}

/// Publishing redeliveries failed after `published` of `total` jobs reached the broker.
#[derive(Debug, thiserror::Error)]
#[error("{published} of {total} deliveries published")]
pub struct Unpublished {
    /// The jobs the broker confirmed.
    pub published: usize,
    /// The jobs to publish.
    pub total: usize,
    /// Why the next message was not published.
    #[source]
    pub source: BusError,
}

/// Publishes `jobs` for the dispatchers, [`REDELIVERY_BATCH`] to a message, each message
/// confirmed by the broker before the next is sent; `progress` is told the number of jobs of each
/// confirmed message.
pub async fn publish_jobs(
    bus: &Bus,
    jobs: Vec<DeliveryJob>,
    mut progress: impl FnMut(usize),
) -> Result<(), Unpublished> {
    let total = jobs.len();
    let mut published = 0;
    let mut jobs = jobs.into_iter();
    loop {
        let chunk: Vec<DeliveryJob> = jobs.by_ref().take(REDELIVERY_BATCH).collect();
        let size = chunk.len();
        if size == 0 {
            return Ok(());
        }
        bus.publish(Outgoing::job_batch(bus.topology(), chunk)).await.map_err(|source| Unpublished {
            published,
            total,
            source,
        })?;
        published += size;
        progress(size);
    }
}
