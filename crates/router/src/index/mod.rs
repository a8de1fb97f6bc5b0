//! The in-memory hook index: the account tree and every enabled hook, arranged so that finding the
//! hooks of an event costs one hash lookup and the scan of one short list
//! (docs/kazoo.md#hook-matching).
//!
//! Accounts are interned to `u32` slots, hooks to positions in one table. Each slot keeps, per
//! event type, the list of every hook an event of the account reaches before filters, in delivery
//! order: its own hooks, then its ancestors' hooks with `include_subaccounts`. The lists are
//! derived from each account's own hooks and are rebuilt for an account, and for the accounts
//! below it, whenever a change could alter them. The hooks of an account with very many
//! descendants (a master, a large reseller) are read from it at match time instead ([`BROAD`]),
//! so that changing one never rebuilds more than a few thousand lists. Only what routing needs
//! is kept per hook ([`IndexedHook`]), not the stored document.
//!
//! The index is pure: the router loads it from the store, keeps it current from change notices,
//! and reloads it in place ([`Refresh`]).

use serde_json::{Map, Value};
use webhooks_model::event::KazooEvent;
use webhooks_model::hooks::HookType;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::payload::passes_filters;
use webhooks_storage::{Account, Webhook};

mod hook;
mod ids;
#[cfg(test)]
mod tests;

pub use hook::{IndexedHook, SharedMap};

use hook::{Entry, Hooks, SharedMaps};
use ids::{IdMap, PositionTable, id_key};

/// How many hook types there are.
const TYPE_COUNT: usize = HookType::ALL_TYPES.len();

/// A hook type's position in [`HookType::ALL_TYPES`], which is also the order of a slot's hooks.
fn position(hook_type: HookType) -> usize {
    hook_type as usize
}

/// The groups of hooks an event of type `hook_type` reaches in each account: that type's, then
/// `all`. An event never has type `all`, but an `all` group must not be read twice.
fn groups(hook_type: HookType) -> &'static [HookType] {
    const ALL: &[HookType] = &[HookType::All];
    const TYPES: [[HookType; 2]; TYPE_COUNT] = {
        let mut types = [[HookType::All; 2]; TYPE_COUNT];
        let mut at = 0;
        while at < TYPE_COUNT {
            types[at][0] = HookType::ALL_TYPES[at];
            at += 1;
        }
        types
    };
    if hook_type == HookType::All { ALL } else { &TYPES[position(hook_type)] }
}

/// The hooks of one type among an account's own hooks (sorted as [`Slot::own`] is).
fn type_group(own: &[Entry], hook_type: HookType) -> &[Entry] {
    let at = position(hook_type);
    let start = own.partition_point(|entry| entry.type_position() < at);
    let end = own.partition_point(|entry| entry.type_position() <= at);
    &own[start..end]
}

/// The hooks with `include_subaccounts` of one type among an account's own hooks, which lead
/// its group.
fn inherited(own: &[Entry], hook_type: HookType) -> &[Entry] {
    let group = type_group(own, hook_type);
    &group[..group.partition_point(|entry| entry.include_subaccounts())]
}

/// An account named as an ancestor by more accounts than this is broad: its hooks with
/// `include_subaccounts` are read from it when an event of a descendant is matched, rather than
/// copied into each descendant's lists, so that a change to them rebuilds at most this many
/// lists (a few milliseconds). Small in unit tests, so that both ways are exercised.
const BROAD: usize = if cfg!(test) { 2 } else { 2048 };

/// Entries of a wide list's header (see [`Lists`]): one word per group start and one for the end.
const WIDE_HEADER: usize = (TYPE_COUNT + 1).div_ceil(3);
/// Header entries present when some ancestors are read at match time: where each group's own
/// hooks end.
const SPLITS: usize = TYPE_COUNT.div_ceil(3);
/// [`Lists::starts`]' last word when the lists are too long for 16-bit starts.
const WIDE: u16 = u16::MAX;
/// Lists of at least this many entries are wide. Small in unit tests, so that both ways are
/// exercised.
const WIDE_FROM: u32 = if cfg!(test) { 8 } else { WIDE as u32 };

/// Header entries holding `words`.
fn header_entries(words: &[u32]) -> impl Iterator<Item = Entry> + '_ {
    words.chunks(3).map(|word| Entry {
        hook: word[0],
        owner: word.get(1).copied().unwrap_or_default(),
        flags: word.get(2).copied().unwrap_or_default(),
    })
}

/// The `at`th word of header entries.
fn header_word(entries: &[Entry], at: usize) -> usize {
    let entry = entries[at / 3];
    [entry.hook, entry.owner, entry.flags][at % 3] as usize
}

/// What matching reads of an interned account: per event type, every hook an event of the
/// account reaches before filters, in delivery order (see [`HookIndex::for_each_match`]), but
/// those of its first ancestors that are read at match time; grouped by type in
/// [`HookType::ALL_TYPES`] order. Where each group starts is kept here, beside the account's slot
/// number in the account map, so that an event costs one hash lookup and then the reading of its
/// own group only. When some ancestors are read at match time (`live`), the entries begin with
/// [`SPLITS`] header entries saying where each group's own hooks end, those ancestors' hooks
/// coming between them and the rest. Lists longer than 16-bit starts can say (an account with
/// tens of thousands of hooks) are wide: `starts` ends with [`WIDE`] and the entries begin with
/// [`WIDE_HEADER`] entries holding the starts as 32-bit words. All empty for an account that
/// reaches no hook, and for one not known in its own right, whose events match nothing.
#[derive(Debug, Clone, Default)]
struct Lists {
    /// Where each group starts, and the last one ends, counted from the first group entry.
    starts: [u16; TYPE_COUNT + 1],
    /// How many ancestors (root first) are read at match time.
    live: u16,
    entries: Box<[Entry]>,
}

impl Lists {
    /// The lists of `groups`, where type position `n`'s group starts at `starts[n]` and its own
    /// hooks end at `own_ends[n]`, after `live` ancestors read at match time.
    fn new(starts: &[u32; TYPE_COUNT + 1], own_ends: &[u32; TYPE_COUNT], live: u16, groups: &[Entry]) -> Self {
        if groups.is_empty() && live == 0 {
            return Self::default();
        }
        let mut header = Vec::new();
        let starts = if starts[TYPE_COUNT] < WIDE_FROM {
            // Every start is at most the end, which fits.
            starts.map(|start| start as u16)
        } else {
            header.extend(header_entries(starts));
            [WIDE; TYPE_COUNT + 1]
        };
        if live > 0 {
            header.extend(header_entries(own_ends));
        }
        Self { starts, live, entries: header.into_iter().chain(groups.iter().copied()).collect() }
    }

    /// The group of one event type: the account's own hooks, how many ancestors to read at match
    /// time, and the hooks of its other ancestors.
    #[inline]
    fn group(&self, hook_type: HookType) -> (&[Entry], usize, &[Entry]) {
        let at = position(hook_type);
        let live = usize::from(self.live);
        let wide = self.starts[TYPE_COUNT] == WIDE;
        let (mut first, start, end) = if wide {
            (WIDE_HEADER, header_word(&self.entries, at), header_word(&self.entries, at + 1))
        } else {
            (0, usize::from(self.starts[at]), usize::from(self.starts[at + 1]))
        };
        let own_end = if live > 0 {
            let splits = first;
            first += SPLITS;
            first + header_word(&self.entries[splits..], at)
        } else {
            first + end
        };
        let (start, end) = (first + start, first + end);
        let own = self.entries.get(start..own_end).unwrap_or_default();
        (own, live, self.entries.get(own_end..end).unwrap_or_default())
    }
}

/// An interned account as [`HookIndex::accounts`] holds it: its lists are kept beside its slot
/// number, so that finding an event's account finds its lists without another memory access.
#[derive(Debug, Clone)]
struct Interned {
    slot: u32,
    lists: Lists,
}

/// The rest of an interned account: what the lists are derived from.
#[derive(Debug, Clone)]
struct Slot {
    /// The account id.
    id: AccountId,
    /// Its key in [`HookIndex::accounts`].
    key: u128,
    /// Whether the account itself is known. A slot also exists for an account only named as an
    /// ancestor or as a hook owner; events of such an account match nothing.
    present: bool,
    /// The account document says the account is a reseller.
    is_reseller: bool,
    /// The account is disabled (Kazoo's `enabled: false`): its hooks fire neither for its own
    /// events nor for its descendants', so no list holds them.
    disabled: bool,
    /// How many ancestors the account has.
    ancestors_len: u16,
    /// Where its ancestors start in [`HookIndex::ancestor_pool`].
    ancestors_start: u32,
    /// The enabled hooks the account owns, grouped by type (in [`HookType::ALL_TYPES`] order),
    /// within a type those with `include_subaccounts` first, then by id.
    own: Vec<Entry>,
    /// The slots naming this one among their ancestors, whose lists hold its hooks with
    /// `include_subaccounts` unless it is [`Slot::broad`].
    dependents: Vec<u32>,
}

impl Slot {
    /// Whether its hooks are read at match time by its descendants (see [`BROAD`]).
    fn broad(&self) -> bool {
        self.dependents.len() > BROAD
    }

    fn new(id: AccountId, key: u128) -> Self {
        Self {
            id,
            key,
            present: false,
            is_reseller: false,
            disabled: false,
            ancestors_len: 0,
            ancestors_start: 0,
            own: Vec::new(),
            dependents: Vec::new(),
        }
    }
}

/// The accounts and enabled hooks the router matches events against.
#[derive(Debug, Clone, Default)]
pub struct HookIndex {
    /// Per interned account (by slot number, which never changes while the index lives), what
    /// the lists are derived from.
    slots: Vec<Slot>,
    /// Every account's ancestors (slot numbers, root first), one run per account: one allocation
    /// instead of one per account.
    ancestor_pool: Vec<u32>,
    /// Account id key to the account's slot number and lists.
    accounts: IdMap<Interned>,
    /// Every hook, at a position that never changes while it is held; a removed hook's position
    /// holds [`IndexedHook::vacant`] until it is reused.
    hooks: Hooks,
    /// Positions of `hooks` holding no hook.
    vacant: Vec<u32>,
    /// Hook id key to position in `hooks`.
    positions: PositionTable,
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

    /// How many hooks the index holds.
    pub fn hook_count(&self) -> usize {
        self.positions.len()
    }

    /// How many accounts are known in their own right.
    pub fn account_count(&self) -> usize {
        self.present_accounts
    }

    /// Whether the account is known.
    pub fn contains_account(&self, id: &AccountId) -> bool {
        self.slot_number(id).is_some_and(|slot| self.slots[slot].present)
    }

    /// The hook with this id and its owner, if the index holds it.
    pub fn hook(&self, id: &WebhookId) -> Option<(&AccountId, &IndexedHook)> {
        let hook = &self.hooks[self.hook_position(id)?];
        Some((&self.slots[hook.owner as usize].id, hook))
    }

    /// Adds or replaces an account: its ancestors, reseller and enabled flags. Its hooks are kept,
    /// and fire only while it is enabled.
    pub fn upsert_account(&mut self, account: &Account) {
        let (slot_number, previous) = self.place_account(account);
        self.replaced(slot_number, &previous);
    }

    /// Forgets an account and every hook it owns; returns how many hooks went. Its
    /// descendants keep naming it as an ancestor, harmlessly: it has no hooks left.
    pub fn remove_account(&mut self, id: &AccountId) -> usize {
        let Some(slot_number) = self.slot_number(id) else {
            return 0;
        };
        self.unplace_account(slot_number);
        let own = std::mem::take(&mut self.slots[slot_number].own);
        for entry in &own {
            let key = self.hooks[entry.hook].key;
            let hooks = &self.hooks;
            self.positions.remove(key, |at| hooks[at].key);
            self.vacate(entry.hook);
        }
        self.refresh(slot_number, own.iter().any(|entry| entry.include_subaccounts()));
        own.len()
    }

    /// Applies the stored state of a hook: enabled hooks of a routable type are added or
    /// replaced, anything else is removed: a disabled hook never fires
    /// (docs/kazoo.md#hook-registry).
    pub fn upsert_hook(&mut self, webhook: &Webhook) {
        let hook = if webhook.enabled { IndexedHook::from_webhook(webhook, 0, None) } else { None };
        let Some(mut hook) = hook else {
            self.remove_hook(&webhook.id);
            return;
        };
        hook.owner = self.intern(&webhook.account_id);
        let Some(at) = self.hook_position(&webhook.id) else {
            let at = self.store(hook);
            let entry = Entry::new(at, &self.hooks[at]);
            self.insert_own(entry);
            self.refresh(entry.owner as usize, entry.include_subaccounts());
            return;
        };
        let before = Entry::new(at, &self.hooks[at]);
        self.hooks[at] = hook;
        let after = Entry::new(at, &self.hooks[at]);
        if before == after {
            // Only what the lists do not hold changed.
            return;
        }
        // The type, a flag or (through a corrected store: hooks do not change owners through the
        // API) the owner changed.
        self.slots[before.owner as usize].own.retain(|entry| entry.hook != at);
        self.insert_own(after);
        if before.owner == after.owner {
            self.refresh(after.owner as usize, before.include_subaccounts() || after.include_subaccounts());
        } else {
            self.refresh(before.owner as usize, before.include_subaccounts());
            self.refresh(after.owner as usize, after.include_subaccounts());
        }
    }

    /// Removes a hook; `true` when the index held it.
    pub fn remove_hook(&mut self, id: &WebhookId) -> bool {
        self.remove_key(id_key(id.as_str()))
    }

    /// Applies the accounts the store holds, as one step of a refresh (see [`Refresh`]).
    pub fn refresh_accounts(&mut self, refresh: &mut Refresh, accounts: &[Account]) {
        for account in accounts {
            self.upsert_account(account);
            if let Some(slot_number) = self.slot_number(&account.id) {
                mark(&mut refresh.accounts, slot_number);
            }
        }
    }

    /// Applies one page of the hooks the store holds, as one step of a refresh (see [`Refresh`]).
    /// A hook the index holds as the page has it is left as it is, its maps still shared.
    pub fn refresh_hooks(&mut self, refresh: &mut Refresh, webhooks: &[Webhook]) {
        for webhook in webhooks {
            let held = self.hook_position(&webhook.id).filter(|&at| {
                // Owner included: a hook of an account not interned yet is not held as it is.
                let owner = self.slot_number(&webhook.account_id).filter(|_| webhook.enabled);
                let hook = owner.and_then(|owner| IndexedHook::from_webhook(webhook, owner as u32, None));
                hook.as_ref() == Some(&self.hooks[at])
            });
            if held.is_none() {
                self.upsert_hook(webhook);
            }
            if let Some(at) = held.or_else(|| self.hook_position(&webhook.id)) {
                mark(&mut refresh.hooks, at as usize);
            }
        }
    }

    /// Ends a refresh: removes the hooks its steps did not name, and turns the accounts they did
    /// not name into the placeholders a fresh index would have (still named by their
    /// descendants and by hooks, matching no event of their own).
    pub fn finish_refresh(&mut self, refresh: Refresh) {
        let seen = |marks: &[bool], at: usize| marks.get(at).copied().unwrap_or(false);
        // The marks first: the hooks and slots themselves lie scattered in memory.
        for at in 0..self.hooks.len() {
            if !seen(&refresh.hooks, at as usize) && !self.hooks[at].is_vacant() {
                self.remove_key(self.hooks[at].key);
            }
        }
        for slot_number in 0..self.slots.len() {
            if !seen(&refresh.accounts, slot_number) && self.slots[slot_number].present {
                self.unplace_account(slot_number);
            }
        }
    }

    /// Removes the hook with this id key; `true` when the index held it.
    fn remove_key(&mut self, key: u128) -> bool {
        let hooks = &self.hooks;
        let Some(at) = self.positions.remove(key, |at| hooks[at].key) else {
            return false;
        };
        let entry = Entry::new(at, &self.hooks[at]);
        self.slots[entry.owner as usize].own.retain(|own| own.hook != at);
        self.vacate(at);
        self.refresh(entry.owner as usize, entry.include_subaccounts());
        true
    }

    /// Calls `visit` with every hook that receives `event` and the hook's owner, in delivery
    /// order (docs/kazoo.md#hook-matching): the event account's own hooks of the event's type or
    /// `all`, then, for each ancestor from the root down to the parent, its hooks with
    /// `include_subaccounts` of that type or `all`; each must also pass its type's filters
    /// ([`HookView::accepts`](webhooks_model::payload::HookView::accepts)). Within one account,
    /// hooks of the event's type come before `all` hooks, hooks with `include_subaccounts` first,
    /// then by id. A disabled account's hooks are left out. An event without an account, of an
    /// unknown account, or without a hook type (the callflow webhook) matches nothing.
    pub fn for_each_match<'a>(&'a self, event: &KazooEvent, mut visit: impl FnMut(&'a AccountId, &'a IndexedHook)) {
        let Some(hook_type) = event.lookup_key() else {
            return;
        };
        let Some(interned) = event.account_id.as_ref().and_then(|account| self.accounts.get(&id_key(account.as_str())))
        else {
            return;
        };
        let (own, live, copied) = interned.lists.group(hook_type);
        // The slot is read only when some ancestor is: it lies elsewhere in memory.
        let broad_ancestors = match live {
            0 => &[],
            _ => self.ancestors(interned.slot as usize).get(..live).unwrap_or_default(),
        };
        let read_live = broad_ancestors
            .iter()
            .map(|&ancestor| &self.slots[ancestor as usize])
            .filter(|ancestor| !ancestor.disabled)
            .flat_map(|ancestor| groups(hook_type).iter().flat_map(|group| inherited(&ancestor.own, *group)));
        for entry in own.iter().chain(read_live).chain(copied) {
            let hook = &self.hooks[entry.hook];
            // The hook itself is read only by the filters that need its `custom_data`.
            if passes_filters(event, entry.is_all(), entry.include_internal_legs(), || hook.custom_data.as_deref()) {
                visit(&self.slots[entry.owner as usize].id, hook);
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
        let slot_number = self.slot_number(id).filter(|slot| self.slots[*slot].present)?;
        let ancestors = self.ancestors(slot_number);
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
    fn ancestors(&self, slot_number: usize) -> &[u32] {
        let slot = &self.slots[slot_number];
        let start = slot.ancestors_start as usize;
        self.ancestor_pool.get(start..start + usize::from(slot.ancestors_len)).unwrap_or_default()
    }

    /// The slot number of an account id, if interned.
    fn slot_number(&self, id: &AccountId) -> Option<usize> {
        self.accounts.get(&id_key(id.as_str())).map(|interned| interned.slot as usize)
    }

    /// The slot number of an account, creating a placeholder slot the first time it is named.
    fn intern(&mut self, id: &AccountId) -> u32 {
        let next = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        let key = id_key(id.as_str());
        let slot_number =
            self.accounts.entry(key).or_insert_with(|| Interned { slot: next, lists: Lists::default() }).slot;
        if slot_number == next {
            self.slots.push(Slot::new(id.clone(), key));
        }
        slot_number
    }

    /// Sets an account's ancestors and flags, leaving the lists alone; returns its slot and what
    /// the lists depend on as it was before.
    fn place_account(&mut self, account: &Account) -> (usize, Placement) {
        let mut ancestors: Vec<u32> = account.tree.iter().map(|ancestor| self.intern(ancestor)).collect();
        // Kazoo trees are a handful of levels deep; deeper ones are cut rather than wrapped.
        ancestors.truncate(usize::from(u16::MAX));
        let slot_number = self.intern(&account.id) as usize;
        let previous = self.placement(slot_number);
        if !std::mem::replace(&mut self.slots[slot_number].present, true) {
            self.present_accounts += 1;
        }
        let slot = &self.slots[slot_number];
        let start = slot.ancestors_start as usize;
        let ancestors_start = if previous.ancestors == ancestors {
            slot.ancestors_start
        } else if usize::from(slot.ancestors_len) == ancestors.len() {
            // Overwritten in place; a list of another length is appended, and the old run stays
            // unused until the next full reload builds a fresh index (accounts never move in the
            // tree through the API, so this is rare).
            self.ancestor_pool[start..start + ancestors.len()].copy_from_slice(&ancestors);
            slot.ancestors_start
        } else {
            let start = u32::try_from(self.ancestor_pool.len()).unwrap_or(u32::MAX);
            self.ancestor_pool.extend_from_slice(&ancestors);
            start
        };
        let slot = &mut self.slots[slot_number];
        slot.is_reseller = is_reseller(&account.doc);
        slot.disabled = document_flag(&account.doc, "enabled") == Some(false);
        slot.ancestors_start = ancestors_start;
        slot.ancestors_len = u16::try_from(ancestors.len()).unwrap_or(u16::MAX);
        (slot_number, previous)
    }

    /// Makes an account the placeholder a fresh index would hold for an account named only by
    /// others: not present, without ancestors or flags; its hooks stay.
    fn unplace_account(&mut self, slot_number: usize) {
        let previous = self.placement(slot_number);
        let slot = &mut self.slots[slot_number];
        (slot.is_reseller, slot.disabled, slot.ancestors_len) = (false, false, 0);
        if std::mem::take(&mut slot.present) {
            self.present_accounts -= 1;
        }
        self.replaced(slot_number, &previous);
    }

    /// What the lists of an account depend on, as it is now.
    fn placement(&self, slot_number: usize) -> Placement {
        let slot = &self.slots[slot_number];
        Placement { ancestors: self.ancestors(slot_number).to_vec(), present: slot.present, disabled: slot.disabled }
    }

    /// Brings the dependents' links and the lists up to date after an account's placement changed
    /// from `previous`.
    fn replaced(&mut self, slot_number: usize, previous: &Placement) {
        let ancestors = self.ancestors(slot_number).to_vec();
        let moved = previous.ancestors != ancestors;
        if moved {
            self.link(slot_number, &previous.ancestors, false);
            self.link(slot_number, &ancestors, true);
        }
        let slot = &self.slots[slot_number];
        let toggled = previous.disabled != slot.disabled;
        let inherited = slot.own.iter().any(|entry| entry.include_subaccounts());
        if moved || toggled || previous.present != slot.present {
            self.rebuild(slot_number);
        }
        if toggled {
            self.refresh_dependents(slot_number, inherited);
        }
    }

    /// The position of a hook, if held.
    fn hook_position(&self, id: &WebhookId) -> Option<u32> {
        self.positions.get(id_key(id.as_str()), |at| self.hooks[at].key)
    }

    /// Puts `hook`, not held yet, at a free position and returns it.
    fn store(&mut self, hook: IndexedHook) -> u32 {
        let key = hook.key;
        let at = match self.vacant.pop() {
            Some(at) => {
                self.hooks[at] = hook;
                at
            }
            None => self.hooks.push(hook),
        };
        let hooks = &self.hooks;
        self.positions.insert(key, at, |at| hooks[at].key);
        at
    }

    /// Frees a position no longer in the id table nor in any list.
    fn vacate(&mut self, at: u32) {
        self.hooks[at] = IndexedHook::vacant();
        self.vacant.push(at);
    }

    /// The order of an account's own hooks (see [`Slot::own`]).
    fn own_order(&self, entry: &Entry) -> (usize, bool, u128) {
        (entry.type_position(), !entry.include_subaccounts(), self.hooks[entry.hook].key)
    }

    /// Inserts `entry` in its owner's own hooks, in order.
    fn insert_own(&mut self, entry: Entry) {
        let order = self.own_order(&entry);
        let own = &self.slots[entry.owner as usize].own;
        let at = own.partition_point(|existing| self.own_order(existing) < order);
        self.slots[entry.owner as usize].own.insert(at, entry);
    }

    /// Rebuilds the lists after the own hooks of `slot_number` changed: its own, and its
    /// dependents' when a changed hook had or has `include_subaccounts`.
    fn refresh(&mut self, slot_number: usize, inherited: bool) {
        self.rebuild(slot_number);
        self.refresh_dependents(slot_number, inherited);
    }

    /// Rebuilds the dependents' lists after the hooks of `slot_number` with `include_subaccounts`
    /// changed (`inherited`), or were turned on or off; those of a broad account are read at
    /// match time, not copied.
    fn refresh_dependents(&mut self, slot_number: usize, inherited: bool) {
        if inherited && !self.slots[slot_number].broad() {
            self.rebuild_dependents(slot_number);
        }
    }

    /// Adds `dependent` to the dependents of each of `ancestors`, or removes it. An ancestor
    /// becoming broad, or no longer, changes the lists of all its dependents.
    fn link(&mut self, dependent: usize, ancestors: &[u32], add: bool) {
        let dependent = u32::try_from(dependent).unwrap_or(u32::MAX);
        for &ancestor in ancestors {
            let slot = &mut self.slots[ancestor as usize];
            let was_broad = slot.broad();
            if !add {
                slot.dependents.retain(|&existing| existing != dependent);
            } else if !slot.dependents.contains(&dependent) {
                slot.dependents.push(dependent);
            }
            if slot.broad() != was_broad {
                self.rebuild_dependents(ancestor as usize);
            }
        }
    }

    /// Rebuilds the lists of the accounts naming `slot_number` among their ancestors.
    fn rebuild_dependents(&mut self, slot_number: usize) {
        for at in 0..self.slots[slot_number].dependents.len() {
            let dependent = self.slots[slot_number].dependents[at];
            self.rebuild(dependent as usize);
        }
    }

    /// Derives the lists of `slot_number` from its own hooks (unless it is disabled) and its
    /// enabled ancestors' hooks with `include_subaccounts`.
    fn rebuild(&mut self, slot_number: usize) {
        let slot = &self.slots[slot_number];
        if !slot.present {
            self.set_lists(slot_number, Lists::default());
            return;
        }
        let own = (!slot.disabled).then_some(slot.own.as_slice());
        let ancestors = self.ancestors(slot_number);
        // Every ancestor down to the last broad one is read at match time, so that the order
        // holds and no list copies a broad account's hooks.
        let live = ancestors.iter().rposition(|&ancestor| self.slots[ancestor as usize].broad()).map_or(0, |at| at + 1);
        let copied: Vec<&[Entry]> = ancestors[live..]
            .iter()
            .map(|&ancestor| &self.slots[ancestor as usize])
            .filter(|ancestor| !ancestor.disabled && !ancestor.own.is_empty())
            .map(|ancestor| ancestor.own.as_slice())
            .collect();
        let mut entries = Vec::new();
        let mut starts = [0; TYPE_COUNT + 1];
        let mut own_ends = [0; TYPE_COUNT];
        let length = |entries: &Vec<Entry>| u32::try_from(entries.len()).unwrap_or(u32::MAX);
        for hook_type in HookType::ALL_TYPES {
            starts[position(hook_type)] = length(&entries);
            for group in groups(hook_type) {
                entries.extend_from_slice(own.map(|own| type_group(own, *group)).unwrap_or_default());
            }
            own_ends[position(hook_type)] = length(&entries);
            for ancestor in &copied {
                for group in groups(hook_type) {
                    entries.extend_from_slice(inherited(ancestor, *group));
                }
            }
        }
        starts[TYPE_COUNT] = length(&entries);
        // At most the ancestors' count, a u16.
        let live = u16::try_from(live).unwrap_or(u16::MAX);
        self.set_lists(slot_number, Lists::new(&starts, &own_ends, live, &entries));
    }

    /// Puts the lists of `slot_number` in place.
    fn set_lists(&mut self, slot_number: usize, lists: Lists) {
        if let Some(interned) = self.accounts.get_mut(&self.slots[slot_number].key) {
            interned.lists = lists;
        }
    }
}

/// A full reload applied to the live index step by step, so that it serves events between the
/// steps and memory holds one index and a page rather than two indexes: the accounts the store
/// holds ([`HookIndex::refresh_accounts`]), then its hooks page by page
/// ([`HookIndex::refresh_hooks`]), then [`HookIndex::finish_refresh`] forgets what no step named.
/// The index then matches as one built afresh from what the steps read. Changes applied between
/// the steps stay applied, unless a later step read the store before them: they are to be
/// applied again after the refresh.
#[derive(Debug, Default)]
pub struct Refresh {
    /// By slot number: the accounts the steps named.
    accounts: Vec<bool>,
    /// By position in the hook table: the hooks the steps named.
    hooks: Vec<bool>,
}

/// Marks `at` in `marks`, growing them as needed.
fn mark(marks: &mut Vec<bool>, at: usize) {
    if marks.len() <= at {
        marks.resize(at + 1, false);
    }
    marks[at] = true;
}

/// What an account's lists depend on, taken before its placement changes.
struct Placement {
    ancestors: Vec<u32>,
    present: bool,
    disabled: bool,
}

/// Builds a [`HookIndex`] from hooks given in any number of slices (pages read from the store),
/// sorting each account's hooks and deriving every list once at the end: maintaining them hook by
/// hook would be quadratic for accounts with many hooks or descendants. Equal JSON maps of
/// different hooks are shared.
#[derive(Debug)]
pub struct HookIndexBuilder {
    index: HookIndex,
    maps: SharedMaps,
}

impl HookIndexBuilder {
    /// A builder holding `accounts` and no hooks yet.
    pub fn new(accounts: &[Account]) -> Self {
        let mut index = HookIndex::new();
        index.slots.reserve(accounts.len());
        index.accounts.reserve(accounts.len());
        for account in accounts {
            index.place_account(account);
        }
        Self { index, maps: SharedMaps::default() }
    }

    /// Adds the enabled hooks among `webhooks` (others are skipped, as by
    /// [`HookIndex::upsert_hook`]). A hook id given twice keeps its last state.
    pub fn add_hooks(&mut self, webhooks: &[Webhook]) {
        let index = &mut self.index;
        let hooks = &index.hooks;
        index.positions.reserve(webhooks.len(), |at| hooks[at].key);
        for webhook in webhooks {
            let hook = if webhook.enabled { IndexedHook::from_webhook(webhook, 0, Some(&mut self.maps)) } else { None };
            if let Some(at) = index.hook_position(&webhook.id) {
                let owner = index.hooks[at].owner as usize;
                index.slots[owner].own.retain(|entry| entry.hook != at);
                let hooks = &index.hooks;
                index.positions.remove(id_key(webhook.id.as_str()), |at| hooks[at].key);
                index.vacate(at);
            }
            let Some(mut hook) = hook else {
                continue;
            };
            hook.owner = index.intern(&webhook.account_id);
            let at = index.store(hook);
            let entry = Entry::new(at, &index.hooks[at]);
            index.slots[entry.owner as usize].own.push(entry);
        }
    }

    /// The finished index.
    pub fn finish(self) -> HookIndex {
        let mut index = self.index;
        let mut slots = std::mem::take(&mut index.slots);
        for slot in &mut slots {
            // Each hook's id is read once: the hooks lie scattered in memory.
            slot.own.sort_by_cached_key(|entry| index.own_order(entry));
            slot.own.shrink_to_fit();
        }
        for slot_number in 0..slots.len() {
            let slot = &slots[slot_number];
            let start = slot.ancestors_start as usize;
            let ancestors = index.ancestor_pool.get(start..start + usize::from(slot.ancestors_len)).unwrap_or_default();
            for &ancestor in ancestors {
                slots[ancestor as usize].dependents.push(slot_number as u32);
            }
        }
        for slot in &mut slots {
            slot.dependents.sort_unstable();
            slot.dependents.dedup();
            slot.dependents.shrink_to_fit();
        }
        index.slots = slots;
        for slot_number in 0..index.slots.len() {
            index.rebuild(slot_number);
        }
        index.ancestor_pool.shrink_to_fit();
        index
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
