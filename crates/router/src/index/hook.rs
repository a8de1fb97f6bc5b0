//! What the index keeps of each enabled hook, and the compact entries matching scans.

use std::collections::HashMap;
use std::ops::{Index, IndexMut};
use std::sync::Arc;

use serde_json::{Map, Value};
use webhooks_model::hooks::HookType;
use webhooks_model::ids::WebhookId;
use webhooks_model::payload::HookView;
use webhooks_model::webhook::{CallbackUri, DeliveryTarget};
use webhooks_storage::Webhook;

use super::ids::id_key;

/// A JSON map of a hook, shared by every hook of the index whose map is written the same.
pub type SharedMap = Arc<Map<String, Value>>;

/// What the router keeps of an enabled hook: what matching, payload finishing and the delivery
/// job need, and nothing else. The id is kept as its number and the maps may be shared, so that
/// a million of them fit in a few hundred megabytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedHook {
    /// The id's 32 hex digits as one number (16 bytes instead of a string's 56).
    pub(super) key: u128,
    /// The owner's slot number.
    pub(super) owner: u32,
    /// The hook type.
    pub hook_type: HookType,
    /// When false, loopback legs of channel events are skipped.
    pub include_internal_legs: bool,
    /// Whether events of descendant accounts reach the hook.
    pub include_subaccounts: bool,
    /// Where and how its callouts go.
    pub target: DeliveryTarget,
    /// `custom_data`: filters and extra payload fields.
    pub custom_data: Option<SharedMap>,
    /// The undocumented `modifiers` field (docs/kazoo.md#per-hook-finishing).
    pub modifiers: Option<SharedMap>,
}

impl IndexedHook {
    /// The routing view of a stored hook, owned by the slot `owner`; `None` when its type is one
    /// no event reaches. The `enabled` column is not consulted here: the index decides what to do
    /// with disabled hooks. Maps equal to one `shared` already holds are shared with it.
    pub(super) fn from_webhook(webhook: &Webhook, owner: u32, shared: Option<&mut SharedMaps>) -> Option<Self> {
        let hook_type = HookType::parse(&webhook.hook)?;
        let document = &webhook.doc;
        // The model's reading of the filter fields, so the router and samples agree.
        let view = HookView::of(hook_type, document);
        let (custom_data, modifiers) = match shared {
            Some(shared) => (view.custom_data.map(|map| shared.get(map)), view.modifiers.map(|map| shared.get(map))),
            None => (view.custom_data.cloned().map(Arc::new), view.modifiers.cloned().map(Arc::new)),
        };
        Some(Self {
            key: id_key(webhook.id.as_str()),
            owner,
            hook_type,
            include_internal_legs: view.include_internal_legs,
            include_subaccounts: webhook.include_subaccounts,
            target: DeliveryTarget::from_document(document),
            custom_data,
            modifiers,
        })
    }

    /// What a position of the index's hook table holds while no hook does: nothing is shared with
    /// it and no entry names it.
    pub(super) fn vacant() -> Self {
        Self {
            key: 0,
            owner: u32::MAX,
            hook_type: HookType::All,
            include_internal_legs: true,
            include_subaccounts: false,
            target: DeliveryTarget {
                uri: CallbackUri::new(""),
                http_verb: Default::default(),
                format: Default::default(),
                retries: 0,
                custom_request_headers: None,
            },
            custom_data: None,
            modifiers: None,
        }
    }

    /// Whether this is what a position holds while no hook does.
    pub(super) fn is_vacant(&self) -> bool {
        self.owner == u32::MAX
    }

    /// The hook id.
    pub fn id(&self) -> WebhookId {
        // Indexed ids are 32 lowercase hex digits, which this writes back exactly.
        format!("{:032x}", self.key).parse().expect("32 hex digits are a webhook id")
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

/// The JSON maps met while an index is built, by their text, so that hooks with equal maps share
/// one. Equal means written the same, key order included: payloads follow the map's order.
#[derive(Debug, Default)]
pub(super) struct SharedMaps {
    by_text: HashMap<String, SharedMap>,
}

impl SharedMaps {
    /// The shared map equal to `map`, kept from now on if it is the first.
    fn get(&mut self, map: &Map<String, Value>) -> SharedMap {
        let Ok(text) = serde_json::to_string(map) else {
            // Never for a map of JSON values; unshared then, which is only larger.
            return Arc::new(map.clone());
        };
        self.by_text.entry(text).or_insert_with(|| Arc::new(map.clone())).clone()
    }
}

/// A hook as an account's lists hold it, 12 bytes: its position in the index's hook table, its
/// owner's slot, and what matching reads of it besides `custom_data`, so that a scan reads the
/// hook itself only once it matches (or when an object or notification filter needs `custom_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// The hook's position in the hook table.
    pub(super) hook: u32,
    /// The owner's slot number.
    pub(super) owner: u32,
    /// The type's position ([`TYPE_BITS`]), [`SUBACCOUNTS`] and [`INTERNAL_LEGS`].
    pub(super) flags: u32,
}

/// The bits of [`Entry::flags`] holding the type's position in [`HookType::ALL_TYPES`].
const TYPE_BITS: u32 = 0b1111;
/// Set for a hook with `include_subaccounts`.
const SUBACCOUNTS: u32 = 1 << 4;
/// Set for a hook with `include_internal_legs`.
const INTERNAL_LEGS: u32 = 1 << 5;

impl Entry {
    /// The entry of `hook`, at position `at` of the hook table.
    pub(super) fn new(at: u32, hook: &IndexedHook) -> Self {
        let mut flags = hook.hook_type as u32;
        if hook.include_subaccounts {
            flags |= SUBACCOUNTS;
        }
        if hook.include_internal_legs {
            flags |= INTERNAL_LEGS;
        }
        Self { hook: at, owner: hook.owner, flags }
    }

    /// The position of the hook's type in [`HookType::ALL_TYPES`].
    pub(super) fn type_position(self) -> usize {
        (self.flags & TYPE_BITS) as usize
    }

    /// Whether events of descendant accounts reach the hook.
    pub(super) fn include_subaccounts(self) -> bool {
        self.flags & SUBACCOUNTS != 0
    }

    /// When false, loopback legs of channel events are skipped.
    pub(super) fn include_internal_legs(self) -> bool {
        self.flags & INTERNAL_LEGS != 0
    }

    /// Whether the hook is of type `all`.
    pub(super) fn is_all(self) -> bool {
        self.type_position() == HookType::All as usize
    }
}

/// How many hooks a chunk of [`Hooks`] holds.
const CHUNK: usize = 1 << 12;

/// The index's hooks at positions that never change while they are held, in chunks: growing never
/// moves them, where one vector of a million hooks would copy 64 MB (and hold a change notice up
/// for tens of milliseconds) each time it outgrew its allocation.
#[derive(Debug, Clone, Default)]
pub(super) struct Hooks {
    chunks: Vec<Vec<IndexedHook>>,
}

impl Hooks {
    /// How many positions there are, held or vacant.
    pub(super) fn len(&self) -> u32 {
        let full = self.chunks.len().saturating_sub(1) * CHUNK;
        u32::try_from(full + self.chunks.last().map_or(0, Vec::len)).unwrap_or(u32::MAX)
    }

    /// Appends `hook` and returns its position.
    pub(super) fn push(&mut self, hook: IndexedHook) -> u32 {
        if self.chunks.last().is_none_or(|chunk| chunk.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let full_chunks = self.chunks.len() - 1;
        let chunk = &mut self.chunks[full_chunks];
        chunk.push(hook);
        u32::try_from(full_chunks * CHUNK + chunk.len() - 1).unwrap_or(u32::MAX)
    }
}

impl Index<u32> for Hooks {
    type Output = IndexedHook;

    fn index(&self, at: u32) -> &IndexedHook {
        let at = at as usize;
        &self.chunks[at / CHUNK][at % CHUNK]
    }
}

impl IndexMut<u32> for Hooks {
    fn index_mut(&mut self, at: u32) -> &mut IndexedHook {
        let at = at as usize;
        &mut self.chunks[at / CHUNK][at % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_keep_their_positions_across_chunks() {
        let mut hooks = Hooks::default();
        for at in 0..(2 * CHUNK + 3) as u32 {
            let mut hook = IndexedHook::vacant();
            hook.owner = at;
            assert_eq!(hooks.push(hook), at);
        }
        hooks[CHUNK as u32].owner = 7;
        assert_eq!(
            (hooks[0].owner, hooks[CHUNK as u32].owner, hooks[2 * CHUNK as u32 + 2].owner),
            (0, 7, 2 * CHUNK as u32 + 2)
        );
    }
}
