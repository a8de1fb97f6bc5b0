//! What a hook contributes to delivery: its per-type filters (docs/kazoo.md#hook-types) and the
//! per-hook finishing of the payload (docs/kazoo.md#per-hook-finishing).

use serde_json::{Map, Value};

use crate::event::{EventKind, KazooEvent};
use crate::hooks::{ANY_VALUE, HookType};

/// A borrowed view of the hook fields that filtering and finishing read, so that both the API's
/// stored document and the router's in-memory hook can feed the builder without copying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HookView<'a> {
    /// The hook's type.
    pub hook_type: HookType,
    /// `custom_data`: filter keys `type`/`action` and extra payload fields.
    pub custom_data: Option<&'a Map<String, Value>>,
    /// The undocumented `modifiers` field (docs/kazoo.md#per-hook-finishing).
    pub modifiers: Option<&'a Map<String, Value>>,
    /// When false, loopback legs of channel events are skipped.
    pub include_internal_legs: bool,
}

impl<'a> HookView<'a> {
    /// A hook of `hook_type` with no custom data, no modifiers, and internal legs included (the
    /// defaults of a stored document).
    pub fn new(hook_type: HookType) -> Self {
        Self { hook_type, custom_data: None, modifiers: None, include_internal_legs: true }
    }

    /// A hook of `hook_type` stored as `document`, read as Kazoo's runtime reads it
    /// (docs/kazoo.md#runtime-reading): a missing `include_internal_legs` means true;
    /// `custom_data` and `modifiers` count only as objects.
    pub fn of(hook_type: HookType, document: &'a Map<String, Value>) -> Self {
        Self {
            hook_type,
            custom_data: custom_data(document),
            modifiers: document.get("modifiers").and_then(Value::as_object),
            include_internal_legs: include_internal_legs(document),
        }
    }

    /// [`HookView::of`] the type the document's `hook` names; `None` when it names none that
    /// some event reaches.
    pub fn from_document(document: &'a Map<String, Value>) -> Option<Self> {
        let hook_type = document.get("hook").and_then(Value::as_str).and_then(HookType::parse)?;
        Some(Self::of(hook_type, document))
    }

    /// True when this hook receives `event`: its type is the event's or `all`, the loopback filter
    /// passes for channel events, and the object/notification filters pass for hooks of those types
    /// (`all` hooks bypass them). Registered hooks never receive callflow webhook events.
    pub fn accepts(&self, event: &KazooEvent) -> bool {
        let Some(event_type) = event.lookup_key() else {
            return false;
        };
        let is_all = self.hook_type == HookType::All;
        if !is_all && self.hook_type != event_type {
            return false;
        }
        passes_filters(event, is_all, self.include_internal_legs, || self.custom_data)
    }
}

/// A stored hook document's `custom_data`, which counts only as an object.
pub fn custom_data(document: &Map<String, Value>) -> Option<&Map<String, Value>> {
    document.get("custom_data").and_then(Value::as_object)
}

/// A stored hook document's `include_internal_legs` as Kazoo's runtime reads it: true unless
/// `false` (or the text `false`).
pub fn include_internal_legs(document: &Map<String, Value>) -> bool {
    match document.get("include_internal_legs") {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => !text.eq_ignore_ascii_case("false"),
        _ => true,
    }
}

/// The filters of [`HookView::accepts`] for a hook already known to be of the event's type
/// (`is_all` false) or `all`. `custom_data` is called only when a filter reads it (object and
/// notification hooks), so a caller can leave it unloaded for every other event.
pub fn passes_filters<'c>(
    event: &KazooEvent,
    is_all: bool,
    include_internal_legs: bool,
    custom_data: impl FnOnce() -> Option<&'c Map<String, Value>>,
) -> bool {
    match &event.kind {
        EventKind::Channel(channel) => include_internal_legs || !channel.is_loopback_leg(),
        _ if is_all => true,
        EventKind::Object(object) => custom_data().is_none_or(|custom_data| {
            // Unlike Kazoo, a missing `type` or `action` means `all` rather than "never".
            filter_matches(custom_data.get("action"), object.action.as_str())
                && filter_matches(custom_data.get("type"), &object.doc_type)
        }),
        EventKind::Notification(notification) => custom_data().is_none_or(|custom_data| {
            // Unlike object hooks, a notifications hook with `custom_data` but no `type` matches
            // nothing, as in Kazoo.
            custom_data.get("type").is_some_and(|wanted| filter_matches(Some(wanted), notification.notification.name))
        }),
        EventKind::CallflowWebhook(_) | EventKind::Parking(_) | EventKind::Sms(_) | EventKind::Mms(_) => true,
    }
}

/// A `custom_data` filter value against the event's: absent or `all` match anything; a non-string
/// value matches nothing.
fn filter_matches(wanted: Option<&Value>, actual: &str) -> bool {
    match wanted {
        None => true,
        Some(Value::String(wanted)) => wanted == ANY_VALUE || wanted == actual,
        Some(_) => false,
    }
}

/// Which Kazoo release's payloads receivers get (docs/kazoo.md#per-hook-finishing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum PayloadCompat {
    /// Kazoo's current payloads: `custom_data` merged without its filter keys `type` and `action`.
    #[default]
    #[serde(rename = "master")]
    Master,
    /// Kazoo 4.3's: `custom_data` merged whole, `type` and `action` included.
    #[serde(rename = "4.3")]
    Kazoo43,
}

/// What finishing a payload adds beyond the hook's own: the cluster id, and the release the
/// payloads follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finishing<'a> {
    /// The cluster id every payload carries, set last over any other value.
    pub cluster_id: &'a str,
    /// Which release's payloads.
    pub compat: PayloadCompat,
}

impl<'a> Finishing<'a> {
    /// Kazoo's current payloads for `cluster_id`.
    pub fn new(cluster_id: &'a str) -> Self {
        Self { cluster_id, compat: PayloadCompat::Master }
    }
}

/// The payload `hook` receives (docs/kazoo.md#per-hook-finishing): `None` when its modifiers
/// reject the event, else a copy of `base` with `custom_data` merged and `cluster_id` set last.
pub fn finish_payload(
    base: &Map<String, Value>,
    hook: &HookView<'_>,
    finishing: &Finishing<'_>,
) -> Option<Map<String, Value>> {
    // Check before copying: most rejections then cost no allocation.
    if let Some(modifiers) = hook.modifiers
        && !modifiers_match(base, modifiers)
    {
        return None;
    }
    // Room for what is added below, so the copy is made once and never regrown.
    let extra = hook.custom_data.map_or(0, Map::len) + 1;
    let mut payload = Map::with_capacity(base.len() + extra);
    payload.clone_from(base);
    if let Some(custom_data) = hook.custom_data {
        merge_custom_data(&mut payload, custom_data, finishing.compat);
    }
    // Removed first so it lands at the end even if `custom_data` or the event had one: receivers
    // and form bodies see the cluster's id last, and it always wins.
    payload.shift_remove("cluster_id");
    payload.insert("cluster_id".to_owned(), Value::from(finishing.cluster_id));
    Some(payload)
}

/// Kazoo's `modifiers` check: every modifier whose key the payload has must match — a member of a
/// non-empty array, anything for an empty array, else an equal value.
pub fn modifiers_match(payload: &Map<String, Value>, modifiers: &Map<String, Value>) -> bool {
    modifiers.iter().all(|(key, wanted)| match (payload.get(key), wanted) {
        (None, _) => true,
        (Some(actual), Value::Array(allowed)) => allowed.is_empty() || allowed.contains(actual),
        (Some(actual), wanted) => actual == wanted,
    })
}

/// Copies `custom_data` into the payload top level, leaving out the filter keys `type` and
/// `action` (but for Kazoo 4.3's payloads, which carry them). Existing keys are overwritten in
/// place; new keys are appended in reverse `custom_data` order, as Kazoo does, so form bodies
/// match the original byte for byte.
pub fn merge_custom_data(payload: &mut Map<String, Value>, custom_data: &Map<String, Value>, compat: PayloadCompat) {
    for (key, value) in custom_data.iter().rev() {
        if compat == PayloadCompat::Master && (key == "type" || key == "action") {
            continue;
        }
        payload.insert(key.clone(), value.clone());
    }
}
