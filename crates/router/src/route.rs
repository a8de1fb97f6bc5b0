//! From one parsed event to its delivery jobs (docs/kazoo.md#event-processing): match the hooks,
//! build the payload once, finish it per hook (docs/kazoo.md#per-hook-finishing), and describe each
//! callout completely so the dispatcher reads nothing per job.

use serde_json::{Map, Value};
use webhooks_model::event::{CallflowWebhookEvent, EventKind, KazooEvent};
use webhooks_model::hooks::HookType;
use webhooks_model::ids::{AccountId, MessageKey, WebhookId};
use webhooks_model::job::{DeliveryJob, JobEvent, Payload, job_for_document};
use webhooks_model::payload::{
    Finishing, HookView, PayloadContext, ReservedCcvKeys, base_payload, finish_payload, modifiers_match,
};
use webhooks_model::time::unix_millis;

use crate::index::{HookIndex, IndexedHook};

/// What routing needs besides the event and the index.
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// The cluster id every payload carries, and the release payloads follow.
    pub finishing: Finishing<'a>,
    /// CCV keys kept out of channel payloads.
    pub reserved_ccv_keys: &'a ReservedCcvKeys,
}

impl<'a> RouteContext<'a> {
    /// A context with Kazoo's default reserved CCV keys.
    pub fn new(cluster_id: &'a str) -> Self {
        Self { finishing: Finishing::new(cluster_id), reserved_ccv_keys: ReservedCcvKeys::kazoo_default() }
    }
}

/// The delivery jobs of `event`, received as the message `key`, published now.
pub fn route(event: &KazooEvent, index: &HookIndex, cluster_id: &str, key: &MessageKey) -> Vec<DeliveryJob> {
    let mut jobs = Vec::new();
    route_into(event, key, index, &RouteContext::new(cluster_id), unix_millis().unsigned_abs(), &mut jobs);
    jobs
}

/// Appends the delivery jobs of `event` to `jobs` and returns how many were added. Each job's
/// event id derives from the message `key` and its hook, so routing the same message again (a
/// redelivery after a crash) gives the same ids.
///
/// The base payload is built only when some hook matches, and then once for all of them: most
/// events on a busy cluster concern accounts without hooks. The callflow `webhook` notification
/// goes to the hook its message carries, not to indexed hooks (docs/kazoo.md#callflow-webhook).
pub fn route_into(
    event: &KazooEvent,
    key: &MessageKey,
    index: &HookIndex,
    context: &RouteContext<'_>,
    published_at_ms: u64,
    jobs: &mut Vec<DeliveryJob>,
) -> usize {
    let before = jobs.len();
    if let EventKind::CallflowWebhook(callflow) = &event.kind {
        jobs.extend(callflow_job(event, key, callflow, context, published_at_ms));
        return jobs.len() - before;
    }
    let mut base: Option<Map<String, Value>> = None;
    let mut shared: Option<Payload> = None;
    index.for_each_match(event, |owner, hook| {
        let base = base.get_or_insert_with(|| {
            let reseller_id = event.account_id.as_ref().and_then(|account| index.reseller_of(account));
            let payload_context = PayloadContext { reseller_id, reserved_ccv_keys: context.reserved_ccv_keys };
            base_payload(event, &payload_context)
        });
        if let Some(payload) = payload_for(base, &hook.view(), &context.finishing, &mut shared) {
            jobs.push(job_for_hook(event, key, owner, hook, payload, published_at_ms));
        }
    });
    jobs.len() - before
}

/// The payload `hook` receives, finished from `base`. Every hook without custom data receives the
/// same payload (its modifiers only filter), so that one is finished once and `shared`.
fn payload_for(
    base: &Map<String, Value>,
    hook: &HookView<'_>,
    finishing: &Finishing<'_>,
    shared: &mut Option<Payload>,
) -> Option<Payload> {
    if hook.custom_data.is_some_and(|custom_data| !custom_data.is_empty()) {
        return finish_payload(base, hook, finishing).map(Payload::from);
    }
    if let Some(shared) = shared {
        return hook.modifiers.is_none_or(|modifiers| modifiers_match(base, modifiers)).then(|| shared.clone());
    }
    let payload = finish_payload(base, hook, finishing).map(Payload::from);
    shared.clone_from(&payload);
    payload
}

/// The job of an indexed hook.
fn job_for_hook(
    event: &KazooEvent,
    key: &MessageKey,
    owner: &AccountId,
    hook: &IndexedHook,
    payload: Payload,
    published_at_ms: u64,
) -> DeliveryJob {
    let hook_id = hook.id();
    let event = JobEvent {
        event_id: key.event_id(&hook_id),
        hook_event: event.attempt_hook_event(hook.hook_type).to_owned(),
        payload,
        published_at_ms,
    };
    let custom_data = hook.custom_data.as_deref().cloned();
    DeliveryJob::new(event, hook_id, owner.clone(), hook.target.clone(), custom_data)
}

/// The job of a callflow `webhook` action (docs/kazoo.md#callflow-webhook): the hook built on the
/// fly by the callflow, payload = the call data normalized, finished like any hook's.
///
/// That hook's `_id` is Kazoo's gregorian-seconds string, not a hook id of ours, so the job gets a
/// fresh hook id unless the message carries one of the right shape; it has no stored document, so
/// attempts recorded under it are the only trace, as in Kazoo. `None` when the message names no
/// account or no URI.
fn callflow_job(
    event: &KazooEvent,
    key: &MessageKey,
    callflow: &CallflowWebhookEvent,
    context: &RouteContext<'_>,
    published_at_ms: u64,
) -> Option<DeliveryJob> {
    let account_id = event.account_id.clone()?;
    let hook = &callflow.hook;
    let text = |key: &str| hook.get(key).and_then(Value::as_str).filter(|value| !value.is_empty());
    text("uri")?;
    let view = HookView::from_document(hook).unwrap_or_else(|| HookView::of(HookType::Notifications, hook));
    let payload = finish_payload(&base_payload(event, &PayloadContext::new(None)), &view, &context.finishing)?;
    let hook_id = text("_id").or_else(|| text("id")).and_then(|id| id.parse().ok()).unwrap_or_else(WebhookId::generate);
    let event = JobEvent {
        event_id: key.event_id(&hook_id),
        hook_event: event.attempt_hook_event(view.hook_type).to_owned(),
        payload: payload.into(),
        published_at_ms,
    };
    Some(job_for_document(event, hook_id, account_id, hook))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn hooks_without_custom_data_share_one_payload_and_the_others_get_their_own() {
        let base = object(json!({"call_id": "c1", "call_direction": "inbound"}));
        let mut shared = None;
        let plain = HookView::new(HookType::ChannelCreate);
        let first = payload_for(&base, &plain, &Finishing::new("cl"), &mut shared).expect("a payload");
        let second = payload_for(&base, &plain, &Finishing::new("cl"), &mut shared).expect("a payload");
        assert!(first.ptr_eq(&second));
        assert_eq!(
            Value::Object(first.as_ref().clone()),
            json!({"call_id": "c1", "call_direction": "inbound", "cluster_id": "cl"})
        );

        let custom_data = object(json!({"env": "prod"}));
        let custom = HookView { custom_data: Some(&custom_data), ..plain };
        let own = payload_for(&base, &custom, &Finishing::new("cl"), &mut shared).expect("a payload");
        assert_eq!((own.get("env"), first.get("env")), (Some(&json!("prod")), None));

        let outbound = object(json!({"call_direction": "outbound"}));
        let filtered = HookView { modifiers: Some(&outbound), ..plain };
        assert_eq!(payload_for(&base, &filtered, &Finishing::new("cl"), &mut shared), None, "modifiers still filter");
        let inbound = object(json!({"call_direction": "inbound"}));
        let kept =
            payload_for(&base, &HookView { modifiers: Some(&inbound), ..plain }, &Finishing::new("cl"), &mut shared);
        assert!(kept.is_some_and(|kept| kept.ptr_eq(&first)));
    }
}
