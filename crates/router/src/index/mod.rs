//! The in-memory hook index: the account tree and every enabled hook, arranged so that finding the
//! hooks of an event costs one hash lookup and a scan of a few short vectors
//! (docs/kazoo.md#hook-matching).
//!
//! Accounts are interned to `u32` slots; each slot keeps its ancestors (root first) as slot
//! numbers, the hooks its account owns sorted by id, and two bit masks of the hook types present,
//! so ancestors without a relevant hook are skipped without touching their hooks. Only what
//! routing needs is kept per hook ([`IndexedHook`]), not the stored document.
//!
//! The index is pure: the router loads it from the store and keeps it current from change notices.

use serde_json::{Map, Value};
use webhooks_model::event::KazooEvent;
use webhooks_model::hooks::HookType;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_storage::{Account, Webhook};

mod hook;
mod ids;

pub use hook::IndexedHook;

use hook::HookHead;
use ids::{IdMap, id_key};

/// How many hook types there are.
const TYPE_COUNT: usize = HookType::ALL_TYPES.len();

/// A hook type's position in [`HookType::ALL_TYPES`], which is also the order of a slot's hooks.
fn position(hook_type: HookType) -> usize {
    hook_type as usize
}

/// A hook type's bit in a slot's type masks.
fn bit(hook_type: HookType) -> u16 {
    1 << (hook_type as u16)
}

/// What matching reads of an interned account, kept apart from what it does not read (the id
/// and reseller flag, in [`Slot`]) so the walk up a tree touches as few cache lines as possible;
/// most ancestors are skipped on their masks alone.
#[derive(Debug, Clone, Default)]
struct Routing {
    /// Bits of the types among `hooks`.
    own_types: u16,
    /// Bits of the types among `hooks` with `include_subaccounts`.
    inherited_types: u16,
    /// Whether the account itself is known. A slot also exists for an account only named as an
    /// ancestor or as a hook owner; events of such an account match nothing.
    present: bool,
    /// The account is disabled (Kazoo's `enabled: false`): its hooks fire neither for its own
    /// events nor for its descendants', so its type masks stay empty.
    disabled: bool,
    /// How many ancestors the account has.
    ancestors_len: u16,
    /// Where its ancestors start in [`HookIndex::ancestor_pool`].
    ancestors_start: u32,
    /// Where each type's hooks start in `hooks`; the last entry is the length.
    type_starts: [u32; TYPE_COUNT + 1],
    /// The enabled hooks the account owns, grouped by type (in [`HookType::ALL_TYPES`] order),
    /// within a type those with `include_subaccounts` first, then by id: matching reads only the
    /// groups of the event's type and `all`, and an ancestor only the start of each group.
    hooks: Vec<HookHead>,
}

/// The order of an account's hooks (see [`Routing::hooks`]).
fn slot_order(left: &HookHead, right: &HookHead) -> std::cmp::Ordering {
    (position(left.hook_type), !left.include_subaccounts, &left.hook.id).cmp(&(
        position(right.hook_type),
        !right.include_subaccounts,
        &right.hook.id,
    ))
}

impl Routing {
    /// The hooks of one type.
    fn hooks_of(&self, hook_type: HookType) -> &[HookHead] {
        let at = position(hook_type);
        let (start, end) = (self.type_starts[at] as usize, self.type_starts[at + 1] as usize);
        self.hooks.get(start..end).unwrap_or_default()
    }

    /// Recomputes the group starts and type masks after the hooks changed (they must be sorted).
    fn refresh(&mut self) {
        let (mut own, mut inherited) = (0, 0);
        let mut counts = [0u32; TYPE_COUNT];
        for hook in &self.hooks {
            own |= bit(hook.hook_type);
            if hook.include_subaccounts {
                inherited |= bit(hook.hook_type);
            }
            counts[position(hook.hook_type)] += 1;
        }
        let mut start = 0;
        for (position, count) in counts.iter().enumerate() {
            self.type_starts[position] = start;
            start += count;
        }
        self.type_starts[TYPE_COUNT] = start;
        (self.own_types, self.inherited_types) = if self.disabled { (0, 0) } else { (own, inherited) };
    }

    /// Removes the hook `id` if present.
    fn remove(&mut self, id: &WebhookId) {
        self.hooks.retain(|existing| existing.hook.id != *id);
        self.refresh();
    }
}

/// The rest of an interned account.
#[derive(Debug, Clone)]
struct Slot {
    /// The account id.
    id: AccountId,
    /// The account document says the account is a reseller.
    is_reseller: bool,
}

/// The accounts and enabled hooks the router matches events against.
#[derive(Debug, Clone, Default)]
pub struct HookIndex {
    /// Per interned account, what matching reads; a slot number never changes while the index
    /// lives.
    routing: Vec<Routing>,
    /// Per interned account, the rest (same numbering).
    slots: Vec<Slot>,
    /// Every account's ancestors (slot numbers, root first), one run per account: one allocation
    /// instead of one per account, and neighbouring runs share cache lines.
    ancestor_pool: Vec<u32>,
    /// Account id key to slot number.
    slot_of_account: IdMap,
    /// Hook id key to the owner's slot number.
    owner_of_hook: IdMap,
    /// Accounts known in their own right (not only referenced).
    present_accounts: usize,
}

impl HookIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `accounts` and the enabled hooks among `webhooks`; disabled hooks and hooks of
    /// types no event reaches are left out.
    pub fn build(accounts: &[Account], webhooks: &[Webhook]) -> Self {
        let mut builder = HookIndexBuilder::new(accounts);
        builder.add_hooks(webhooks);
        builder.finish()
    }

    /// Drops this index on a thread of its own. Freeing a million hooks takes seconds (longer on
    /// a thread other than the one that allocated them), which must not hold up routing.
    pub fn retire(self) {
        let spawned = std::thread::Builder::new().name("index-retire".into()).spawn(move || drop(self));
        if let Err(error) = spawned {
            // The closure, and the index with it, was dropped here: only slower.
            tracing::warn!(%error, "cannot start a thread to drop the old hook index");
        }
    }

    /// How many hooks the index holds.
    pub fn hook_count(&self) -> usize {
        self.owner_of_hook.len()
    }

    /// How many accounts are known in their own right.
    pub fn account_count(&self) -> usize {
        self.present_accounts
    }

    /// Whether the account is known.
    pub fn contains_account(&self, id: &AccountId) -> bool {
        self.slot_number(id).is_some_and(|slot| self.routing[slot].present)
    }

    /// The hook with this id and its owner, if the index holds it.
    pub fn hook(&self, id: &WebhookId) -> Option<(&AccountId, &IndexedHook)> {
        let owner = *self.owner_of_hook.get(&id_key(id.as_str()))? as usize;
        let head = self.routing[owner].hooks.iter().find(|head| head.hook.id == *id)?;
        Some((&self.slots[owner].id, &head.hook))
    }

    /// Adds or replaces an account: its ancestors, reseller and enabled flags. Its hooks are kept,
    /// and fire only while it is enabled.
    pub fn upsert_account(&mut self, account: &Account) {
        let ancestors: Vec<u32> = account.tree.iter().map(|ancestor| self.intern(ancestor)).collect();
        let slot_number = self.intern(&account.id) as usize;
        self.slots[slot_number].is_reseller = is_reseller(&account.doc);
        let routing = &self.routing[slot_number];
        if !routing.present {
            self.present_accounts += 1;
        }
        let start = routing.ancestors_start as usize;
        let current = self.ancestor_pool.get(start..start + usize::from(routing.ancestors_len));
        let ancestors_start = if current == Some(ancestors.as_slice()) {
            routing.ancestors_start
        } else if usize::from(routing.ancestors_len) == ancestors.len() {
            // Overwritten in place; a list of another length is appended, and the old run stays
            // unused until the next full reload builds a fresh index (accounts never move in the
            // tree through the API, so this is rare).
            self.ancestor_pool[start..start + ancestors.len()].copy_from_slice(&ancestors);
            routing.ancestors_start
        } else {
            let start = u32::try_from(self.ancestor_pool.len()).unwrap_or(u32::MAX);
            self.ancestor_pool.extend_from_slice(&ancestors);
            start
        };
        let routing = &mut self.routing[slot_number];
        routing.present = true;
        routing.disabled = document_flag(&account.doc, "enabled") == Some(false);
        routing.refresh();
        routing.ancestors_start = ancestors_start;
        // Kazoo trees are a handful of levels deep; deeper ones are cut rather than wrapped.
        routing.ancestors_len = u16::try_from(ancestors.len()).unwrap_or(u16::MAX);
    }

    /// Forgets an account and every hook it owns; returns how many hooks went. Its
    /// descendants keep naming it as an ancestor, harmlessly: it has no hooks left.
    pub fn remove_account(&mut self, id: &AccountId) -> usize {
        let Some(slot_number) = self.slot_number(id) else {
            return 0;
        };
        if self.routing[slot_number].present {
            self.present_accounts -= 1;
        }
        self.slots[slot_number].is_reseller = false;
        let hooks = std::mem::take(&mut self.routing[slot_number]).hooks;
        for head in &hooks {
            self.owner_of_hook.remove(&id_key(head.hook.id.as_str()));
        }
        hooks.len()
    }

    /// Applies the stored state of a hook: enabled hooks of a routable type are added or
    /// replaced, anything else is removed: a disabled hook never fires
    /// (docs/kazoo.md#hook-registry).
    pub fn upsert_hook(&mut self, webhook: &Webhook) {
        let hook = if webhook.enabled { IndexedHook::from_webhook(webhook) } else { None };
        let Some(hook) = hook else {
            self.remove_hook(&webhook.id);
            return;
        };
        let key = id_key(hook.id.as_str());
        let owner = self.intern(&webhook.account_id);
        if let Some(previous_owner) = self.owner_of_hook.insert(key, owner)
            && previous_owner != owner
        {
            // Hooks do not change owners through the API; a corrected store still must not leave
            // the old copy firing.
            self.routing[previous_owner as usize].remove(&hook.id);
        }
        let routing = &mut self.routing[owner as usize];
        // The type or flag may have changed, moving the hook to another place in the order.
        routing.hooks.retain(|existing| existing.hook.id != hook.id);
        let head = HookHead::new(hook);
        let position = routing.hooks.partition_point(|existing| slot_order(existing, &head).is_lt());
        routing.hooks.insert(position, head);
        routing.refresh();
    }

    /// Removes a hook; `true` when the index held it.
    pub fn remove_hook(&mut self, id: &WebhookId) -> bool {
        let Some(owner) = self.owner_of_hook.remove(&id_key(id.as_str())) else {
            return false;
        };
        self.routing[owner as usize].remove(id);
        true
    }

    /// Calls `visit` with every hook that receives `event` and the hook's owner, in delivery
    /// order (docs/kazoo.md#hook-matching): the event account's own hooks of the event's type or
    /// `all`, then, for each ancestor from the root down to the parent, its hooks with
    /// `include_subaccounts` of that type or `all`; each must also pass its type's filters
    /// ([`HookView::accepts`]). Within one account, hooks of the event's type come before `all`
    /// hooks, hooks with `include_subaccounts` first, then by id. An event without an account, of
    /// an unknown account, or without a hook type (the callflow webhook) matches nothing.
    pub fn for_each_match<'a>(&'a self, event: &KazooEvent, mut visit: impl FnMut(&'a AccountId, &'a IndexedHook)) {
        let Some(hook_type) = event.lookup_key() else {
            return;
        };
        let Some(slot_number) = event.account_id.as_ref().and_then(|account| self.slot_number(account)) else {
            return;
        };
        let routing = &self.routing[slot_number];
        if !routing.present {
            return;
        }
        let receives = |head: &&HookHead| head.accepts(event);
        let groups = [hook_type, HookType::All];
        // An event never has lookup key `all`, but an `all` group must not be read twice.
        let groups = if hook_type == HookType::All { &groups[..1] } else { &groups[..] };
        let wanted = groups.iter().fold(0, |mask, group| mask | bit(*group));
        if routing.own_types & wanted != 0 {
            let owner = &self.slots[slot_number].id;
            for group in groups {
                routing.hooks_of(*group).iter().filter(receives).for_each(|head| visit(owner, &head.hook));
            }
        }
        for &ancestor in self.ancestors(routing) {
            let ancestor_routing = &self.routing[ancestor as usize];
            if ancestor_routing.inherited_types & wanted == 0 {
                continue;
            }
            let owner = &self.slots[ancestor as usize].id;
            for group in groups {
                // Inherited hooks lead each group, so the scan stops at the first other one.
                ancestor_routing
                    .hooks_of(*group)
                    .iter()
                    .take_while(|head| head.include_subaccounts)
                    .filter(receives)
                    .for_each(|head| visit(owner, &head.hook));
            }
        }
    }

    /// The hooks that receive `event`, in delivery order (see [`HookIndex::for_each_match`]).
    pub fn matches(&self, event: &KazooEvent) -> Vec<&IndexedHook> {
        let mut hooks = Vec::new();
        self.for_each_match(event, |_, hook| hooks.push(hook));
        hooks
    }

    /// The reseller of a known account, for channel payloads: its nearest ancestor
    /// flagged as a reseller, else the root of its tree (the master), else itself when it is the
    /// root. `None` for an unknown account.
    pub fn reseller_of(&self, id: &AccountId) -> Option<&AccountId> {
        let slot_number = self.slot_number(id).filter(|slot| self.routing[*slot].present)?;
        let ancestors = self.ancestors(&self.routing[slot_number]);
        let reseller = ancestors
            .iter()
            .rev()
            .copied()
            .find(|&ancestor| self.slots[ancestor as usize].is_reseller)
            .or_else(|| ancestors.first().copied())
            .map_or(slot_number, |ancestor| ancestor as usize);
        Some(&self.slots[reseller].id)
    }

    /// The ancestors of an account, root first.
    fn ancestors(&self, routing: &Routing) -> &[u32] {
        let start = routing.ancestors_start as usize;
        self.ancestor_pool.get(start..start + usize::from(routing.ancestors_len)).unwrap_or_default()
    }

    /// The slot number of an account id, if interned.
    fn slot_number(&self, id: &AccountId) -> Option<usize> {
        self.slot_of_account.get(&id_key(id.as_str())).map(|&slot| slot as usize)
    }

    /// The slot number of an account, creating a placeholder slot the first time it is named.
    fn intern(&mut self, id: &AccountId) -> u32 {
        let next = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        let slot_number = *self.slot_of_account.entry(id_key(id.as_str())).or_insert(next);
        if slot_number == next {
            self.slots.push(Slot { id: id.clone(), is_reseller: false });
            self.routing.push(Routing::default());
        }
        slot_number
    }
}

/// Builds a [`HookIndex`] from hooks given in any number of slices (pages read from the store),
/// sorting each account's hooks once at the end: inserting in order would be quadratic for
/// accounts with many hooks.
#[derive(Debug)]
pub struct HookIndexBuilder {
    index: HookIndex,
}

impl HookIndexBuilder {
    /// A builder holding `accounts` and no hooks yet.
    pub fn new(accounts: &[Account]) -> Self {
        let mut index = HookIndex::new();
        index.slots.reserve(accounts.len());
        index.routing.reserve(accounts.len());
        index.slot_of_account.reserve(accounts.len());
        for account in accounts {
            index.upsert_account(account);
        }
        Self { index }
    }

    /// Adds the enabled hooks among `webhooks` (others are skipped, as by
    /// [`HookIndex::upsert_hook`]). A hook id given twice keeps its last state.
    pub fn add_hooks(&mut self, webhooks: &[Webhook]) {
        let index = &mut self.index;
        index.owner_of_hook.reserve(webhooks.len());
        for webhook in webhooks {
            let hook = if webhook.enabled { IndexedHook::from_webhook(webhook) } else { None };
            let key = id_key(webhook.id.as_str());
            if let Some(previous_owner) = index.owner_of_hook.remove(&key) {
                index.routing[previous_owner as usize].hooks.retain(|existing| existing.hook.id != webhook.id);
            }
            let Some(hook) = hook else {
                continue;
            };
            let owner = index.intern(&webhook.account_id);
            index.owner_of_hook.insert(key, owner);
            index.routing[owner as usize].hooks.push(HookHead::new(hook));
        }
    }

    /// The finished index.
    pub fn finish(mut self) -> HookIndex {
        for routing in &mut self.index.routing {
            routing.hooks.sort_unstable_by(slot_order);
            routing.hooks.shrink_to_fit();
            routing.refresh();
        }
        self.index.ancestor_pool.shrink_to_fit();
        self.index
    }
}

/// Whether an account document flags a reseller: `is_reseller` as clients write it, or Kazoo's
/// private `pvt_reseller`.
fn is_reseller(document: &Map<String, Value>) -> bool {
    ["is_reseller", "pvt_reseller"].iter().any(|key| document_flag(document, key) == Some(true))
}

/// A boolean field of an account document.
fn document_flag(document: &Map<String, Value>, key: &str) -> Option<bool> {
    document.get(key).and_then(Value::as_bool)
}
