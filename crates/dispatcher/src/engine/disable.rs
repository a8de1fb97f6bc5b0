//! Auto-disable (docs/kazoo.md#auto-disable): failures counted across replicas against the hook
//! owner's limits, and the hook disabled and announced at the threshold.

use webhooks_bus::{NOTIFICATIONS_EXCHANGE, Outgoing, WEBHOOK_DISABLED_ROUTING_KEY};
use webhooks_model::ids::AccountId;
use webhooks_model::job::DeliveryJob;
use webhooks_model::notice::{Action, Change};
use webhooks_model::notifications::WebhookDisabled;
use webhooks_model::retry::FailureLimits;
use webhooks_model::time::unix_millis;
use webhooks_storage::StorageError;

use super::{Engine, JobOutcome, TOO_MANY_FAILURES};
use crate::writer::Failure;

impl Engine {
    /// Counts a failure of the job's hook across replicas and disables the hook at the
    /// threshold. `true` when the hook is now disabled (so no retry follows). When the store
    /// cannot be reached, the failure goes into `outcome`, for the writer to count later.
    pub(super) async fn count_failure(&self, job: &DeliveryJob, outcome: &mut JobOutcome) -> bool {
        if !self.settings.auto_disable {
            return false;
        }
        let limits = self.limits_of(&job.account_id).await;
        let at_ms = unix_millis();
        match self.failures.count(&job.account_id, &job.hook_id, at_ms, limits.window).await {
            Ok(failures) if limits.exceeded_by(failures) => {
                tracing::debug!(failures, threshold = limits.threshold, "failure threshold reached");
                self.disable(job, TOO_MANY_FAILURES).await
            }
            Ok(_) => false,
            Err(error) if error.is_unavailable() => {
                tracing::debug!(error = %error, "failure kept to be counted when the database answers");
                let (account_id, hook_id) = (job.account_id.clone(), job.hook_id.clone());
                outcome.failure = Some(Failure { account_id, hook_id, count: 1, at_ms, window: limits.window });
                false
            }
            Err(error) => {
                tracing::warn!(error = %error, "failure not counted");
                false
            }
        }
    }

    /// The failure limits of `account`: its own, else the system's, cached; the configured ones
    /// when neither was ever read.
    async fn limits_of(&self, account: &AccountId) -> FailureLimits {
        match self.limits.get(account, self.read_limits(account)).await {
            Ok(limits) => limits,
            Err(error) => {
                tracing::warn!(error = %error, "failure limits unavailable; configured limits used");
                self.settings.failure_limits
            }
        }
    }

    /// The failure limits of `account`, from the store. Operators may store system limits
    /// (`webhooks limits set`), else the configured ones apply; an account may set its own.
    /// Read with the account, so both follow a change within the cache time.
    async fn read_limits(&self, account: &AccountId) -> Result<FailureLimits, StorageError> {
        let configured = self.settings.failure_limits;
        let system = self.store.system_failure_limits(configured).await?.unwrap_or(configured);
        Ok(match self.store.account(account).await? {
            Some(found) => FailureLimits::for_account(&found.doc, system),
            None => system,
        })
    }

    /// Disables the job's hook with `reason` (docs/kazoo.md#auto-disable): store, then announce the
    /// change to the routers and publish `webhook_disabled`. Only the replica whose update disabled
    /// the hook announces it. `true` when the hook is disabled afterwards.
    pub(super) async fn disable(&self, job: &DeliveryJob, reason: &str) -> bool {
        match self.store.auto_disable_webhook(&job.account_id, &job.hook_id, reason).await {
            Ok(changed) => {
                self.hook_states.insert(job.hook_id.clone(), false).await;
                if changed {
                    self.metrics.hook_disabled();
                    tracing::info!(reason, "hook disabled");
                    if let Err(error) = self.bus.publish_all(self.disabled_messages(job)).await {
                        tracing::error!(error = %error, "hook disabled but not announced");
                    }
                }
                true
            }
            Err(error) => {
                tracing::error!(error = %error, reason, "hook not disabled");
                false
            }
        }
    }

    /// The change notice routers drop the hook on, and Kazoo's `webhook_disabled` notification.
    fn disabled_messages(&self, job: &DeliveryJob) -> Vec<Outgoing> {
        let change =
            Change::Webhook { action: Action::Edited, id: job.hook_id.clone(), account_id: job.account_id.clone() };
        let notification = WebhookDisabled::new(&job.account_id, &job.hook_id, &self.settings.node);
        vec![
            Outgoing::change_notice(self.bus.topology(), &change, &self.settings.node),
            Outgoing::persistent(NOTIFICATIONS_EXCHANGE, WEBHOOK_DISABLED_ROUTING_KEY, notification.to_json()),
        ]
    }
}
