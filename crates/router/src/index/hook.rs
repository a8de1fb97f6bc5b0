//! What the index keeps of each enabled hook.

use serde_json::{Map, Value};
use webhooks_model::event::KazooEvent;
use webhooks_model::hooks::HookType;
use webhooks_model::ids::WebhookId;
use webhooks_model::payload::{HookView, passes_filters};
use webhooks_model::webhook::DeliveryTarget;
use webhooks_storage::Webhook;

/// What the router keeps of an enabled hook: what matching, payload finishing and the delivery
/// job need, and nothing else. The rarely present objects are boxed so an absent one costs a word;
/// the owner is the account the index files the hook under, so it is not repeated here.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedHook {
    /// The hook id.
    pub id: WebhookId,
    /// The hook type.
    pub hook_type: HookType,
    /// Where and how its callouts go.
    pub target: DeliveryTarget,
    /// When false, loopback legs of channel events are skipped.
    pub include_internal_legs: bool,
    /// Whether events of descendant accounts reach the hook.
    pub include_subaccounts: bool,
    /// `custom_data`: filters and extra payload fields.
    pub custom_data: Option<Box<Map<String, Value>>>,
    /// The undocumented `modifiers` field (docs/kazoo.md#per-hook-finishing).
    pub modifiers: Option<Box<Map<String, Value>>>,
}

impl IndexedHook {
    /// The routing view of a stored hook; `None` when its type is one no event reaches. The
    /// `enabled` column is not consulted here: the index decides what to do with disabled hooks.
    pub fn from_webhook(webhook: &Webhook) -> Option<Self> {
        let hook_type = HookType::parse(&webhook.hook)?;
        let document = &webhook.doc;
        // The model's reading of the filter fields, so the router and samples agree.
        let view = HookView::of(hook_type, document);
        let boxed = |map: Option<&Map<String, Value>>| map.map(|map| Box::new(map.clone()));
        Some(Self {
            id: webhook.id.clone(),
            hook_type,
            target: DeliveryTarget::from_document(document),
            include_internal_legs: view.include_internal_legs,
            include_subaccounts: webhook.include_subaccounts,
            custom_data: boxed(view.custom_data),
            modifiers: boxed(view.modifiers),
        })
    }

    /// The view the model's filters and payload finishing read.
    pub fn view(&self) -> HookView<'_> {
        HookView {
            hook_type: self.hook_type,
            custom_data: self.custom_data.as_deref(),
            modifiers: self.modifiers.as_deref(),
            include_internal_legs: self.include_internal_legs,
        }
    }
}

/// What matching reads of a hook, 16 bytes, stored in line in the account's hook list so a
/// group of hooks shares a cache line; the hook itself is read only once it matches (or when an
/// object or notification filter reads its `custom_data`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HookHead {
    /// The hook type.
    pub(super) hook_type: HookType,
    /// Whether events of descendant accounts reach the hook.
    pub(super) include_subaccounts: bool,
    /// When false, loopback legs of channel events are skipped.
    pub(super) include_internal_legs: bool,
    /// The hook.
    pub(super) hook: Box<IndexedHook>,
}

impl HookHead {
    pub(super) fn new(hook: IndexedHook) -> Self {
        Self {
            hook_type: hook.hook_type,
            include_subaccounts: hook.include_subaccounts,
            include_internal_legs: hook.include_internal_legs,
            hook: Box::new(hook),
        }
    }

    /// [`HookView::accepts`] for this hook, which the index only asks of hooks of the event's type
    /// or `all`.
    pub(super) fn accepts(&self, event: &KazooEvent) -> bool {
        passes_filters(event, self.hook_type == HookType::All, self.include_internal_legs, || {
            self.hook.custom_data.as_deref()
        })
    }
}
