//! The lists derived for each account against a plain reading of the matching rules, through every
//! kind of change an index receives.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use webhooks_model::event::KazooEvent;
use webhooks_model::hooks::HookType;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::payload::HookView;
use webhooks_storage::{Account, Webhook};
use webhooks_test_support::store::{hook_document, stored_webhook};

use super::{HookIndex, Refresh};

fn account(id: &AccountId, tree: &[AccountId], enabled: bool) -> Account {
    Account {
        id: id.clone(),
        name: format!("account {id}"),
        parent_id: tree.last().cloned(),
        tree: tree.to_vec(),
        api_key: String::new(),
        superduper_admin: false,
        doc: json!({"enabled": enabled}).as_object().cloned().unwrap_or_default(),
        created: 0,
        modified: 0,
        revision: "1-00000000000000000000000000000000".to_owned(),
    }
}

fn webhook(id: &WebhookId, owner: &AccountId, hook_type: &str, extra: Value) -> Webhook {
    stored_webhook(id, owner, &hook_document(hook_type, extra))
}

fn database_of(account: &AccountId) -> String {
    let id = account.as_str();
    format!("account%2F{}%2F{}%2F{}", &id[..2], &id[2..4], &id[4..])
}

/// One event of each kind the lists are read for, of `account`.
fn events(account: &AccountId) -> Vec<KazooEvent> {
    let channel = |name: &str, loopback: bool| {
        let body = json!({"Event-Category": "call_event", "Event-Name": name, "Call-ID": "c1",
            "Channel-Is-Loopback": loopback, "Custom-Channel-Vars": {"Account-ID": account}});
        KazooEvent::parse(&format!("call.{name}.c1"), &body).expect("a channel event")
    };
    let database = database_of(account);
    let object = json!({"Event-Category": "configuration", "Event-Name": "doc_created", "Type": "user",
        "ID": "u1", "Database": database});
    let voicemail = json!({"Event-Category": "notification", "Event-Name": "voicemail_full", "Account-ID": account,
        "Max-Message-Count": 10, "Message-Count": 10, "Voicemail-Box": "b"});
    vec![
        channel("CHANNEL_CREATE", false),
        channel("CHANNEL_CREATE", true),
        channel("CHANNEL_ANSWER", false),
        KazooEvent::parse(&format!("doc_created.{database}.user.u1"), &object).expect("an object event"),
        KazooEvent::parse("notifications.voicemail.full", &voicemail).expect("a notification"),
    ]
}

/// What the store holds, and the plain reading of which of its hooks an event reaches.
#[derive(Default)]
struct Model {
    accounts: BTreeMap<AccountId, Account>,
    hooks: BTreeMap<WebhookId, Webhook>,
}

impl Model {
    fn disabled(&self, id: &AccountId) -> bool {
        self.accounts.get(id).is_some_and(|account| account.doc.get("enabled") == Some(&Value::Bool(false)))
    }

    /// The enabled hooks of `owner` of `hook_type`, those with `include_subaccounts` first, then by
    /// id; only those with it when `inherited`.
    fn hooks_of(&self, owner: &AccountId, hook_type: HookType, inherited: bool) -> Vec<&Webhook> {
        let mut hooks: Vec<&Webhook> = self
            .hooks
            .values()
            .filter(|hook| hook.enabled && hook.account_id == *owner && HookType::parse(&hook.hook) == Some(hook_type))
            .filter(|hook| hook.include_subaccounts || !inherited)
            .collect();
        hooks.sort_by_key(|hook| (!hook.include_subaccounts, hook.id.clone()));
        hooks
    }

    fn receivers(&self, event: &KazooEvent) -> Vec<WebhookId> {
        let (Some(hook_type), Some(account)) = (event.lookup_key(), event.account_id.as_ref()) else {
            return Vec::new();
        };
        let Some(account) = self.accounts.get(account) else {
            return Vec::new();
        };
        let mut hooks = Vec::new();
        if !self.disabled(&account.id) {
            hooks.extend(self.hooks_of(&account.id, hook_type, false));
            hooks.extend(self.hooks_of(&account.id, HookType::All, false));
        }
        for ancestor in account.tree.iter().filter(|ancestor| !self.disabled(ancestor)) {
            hooks.extend(self.hooks_of(ancestor, hook_type, true));
            hooks.extend(self.hooks_of(ancestor, HookType::All, true));
        }
        hooks
            .into_iter()
            .filter(|hook| HookView::from_document(&hook.doc).is_some_and(|view| view.accepts(event)))
            .map(|hook| hook.id.clone())
            .collect()
    }
}

/// Whether the index holds the stored hook: enabled, of a type some event reaches.
fn indexed(hook: &Webhook) -> bool {
    hook.enabled && HookType::parse(&hook.hook).is_some()
}

fn receivers(index: &HookIndex, event: &KazooEvent) -> Vec<WebhookId> {
    index.matches(event).into_iter().map(|hook| hook.id()).collect()
}

/// Compares the index, and one built afresh from the store, with the plain reading; returns how
/// many hooks the events reached.
fn check(index: &HookIndex, model: &Model, ids: &[AccountId], step: &str) -> usize {
    let accounts: Vec<Account> = model.accounts.values().cloned().collect();
    let hooks: Vec<Webhook> = model.hooks.values().cloned().collect();
    let built = HookIndex::build(&accounts, &hooks);
    let enabled = model.hooks.values().filter(|hook| indexed(hook)).count();
    assert_eq!((index.hook_count(), built.hook_count()), (enabled, enabled), "{step}");
    let mut reached = 0;
    for id in ids {
        for event in events(id) {
            let expected = model.receivers(&event);
            assert_eq!(receivers(index, &event), expected, "{step}: {event:?}");
            assert_eq!(receivers(&built, &event), expected, "{step}, built afresh: {event:?}");
            reached += expected.len();
        }
    }
    reached
}

/// A random hook of `owner`.
fn random_hook(rng: &mut StdRng, id: &WebhookId, owner: &AccountId) -> Webhook {
    let hook_type =
        ["channel_create", "channel_answer", "object", "notifications", "all", "callflow"][rng.random_range(0..6)];
    let custom_data = match rng.random_range(0..4) {
        0 => json!({"type": "user", "action": "all"}),
        1 => json!({"type": "voicemail_full"}),
        2 => json!({"type": "device"}),
        _ => json!({"environment": "production"}),
    };
    let mut hook = webhook(
        id,
        owner,
        hook_type,
        json!({"include_subaccounts": rng.random_bool(0.5), "include_internal_legs": rng.random_bool(0.7),
               "custom_data": custom_data}),
    );
    hook.enabled = rng.random_bool(0.9);
    hook
}

/// How the index follows the random changes.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// It receives every change: what a removal returns is checked against the store.
    InSync,
    /// It may have missed changes.
    Missed,
    /// A refresh runs, after which the changes made meanwhile are read again from the store; a
    /// removed account is not made again then (the store deletes an account's hooks with it, and
    /// a page read before that could bring them back under an account of the same id: ids of
    /// removed accounts are not reused).
    DuringRefresh,
}

/// What a random change touched, to be read again from the store.
enum Touched {
    Hook(WebhookId),
    Account(AccountId),
    Nothing,
}

/// A store of random accounts and hooks, and an index following it: two trees, and one account
/// named only by hooks until it appears.
struct Scenario {
    rng: StdRng,
    model: Model,
    index: HookIndex,
    ids: Vec<AccountId>,
    hook_ids: Vec<WebhookId>,
}

impl Scenario {
    fn new(seed: u64) -> Self {
        let (mut model, mut index) = (Model::default(), HookIndex::new());
        let ids: Vec<AccountId> = (0..12).map(|_| AccountId::generate()).collect();
        let tree_of = |at: usize| -> Vec<AccountId> {
            match at {
                0 | 6 => Vec::new(),
                1..=5 => ids[..at].to_vec(),
                _ => vec![ids[6].clone(), ids[7].clone(), ids[8].clone()][..(at - 6).min(3)].to_vec(),
            }
        };
        for (at, id) in ids.iter().enumerate().take(11) {
            let account = account(id, &tree_of(at), true);
            index.upsert_account(&account);
            model.accounts.insert(id.clone(), account);
        }
        Self { rng: StdRng::seed_from_u64(seed), model, index, ids, hook_ids: Vec::new() }
    }

    /// One random change to the store: a hook added, changed (perhaps disabled, of another type,
    /// or moved) or removed; an account disabled or enabled again, moved under another, or
    /// removed. Applied to the index too when `applied`, as its change notice would be.
    fn change(&mut self, applied: bool, mode: Mode, label: &str) -> Touched {
        let (rng, model, hook_ids) = (&mut self.rng, &mut self.model, &mut self.hook_ids);
        let index = applied.then_some(&mut self.index);
        let owner = self.ids[rng.random_range(0..self.ids.len())].clone();
        let action = rng.random_range(0..10);
        match action {
            0..=4 => {
                let id = if hook_ids.is_empty() || rng.random_bool(0.5) {
                    let id = WebhookId::generate();
                    hook_ids.push(id.clone());
                    id
                } else {
                    hook_ids[rng.random_range(0..hook_ids.len())].clone()
                };
                let owner = match model.hooks.get(&id) {
                    Some(existing) if rng.random_bool(0.9) => existing.account_id.clone(),
                    _ => owner,
                };
                let hook = random_hook(rng, &id, &owner);
                if let Some(index) = index {
                    index.upsert_hook(&hook);
                }
                model.hooks.insert(id.clone(), hook);
                Touched::Hook(id)
            }
            5 if !hook_ids.is_empty() => {
                let id = hook_ids.swap_remove(rng.random_range(0..hook_ids.len()));
                let held = model.hooks.remove(&id).is_some_and(|hook| indexed(&hook));
                if let Some(index) = index {
                    let removed = index.remove_hook(&id);
                    assert!(mode != Mode::InSync || removed == held, "{label}");
                }
                Touched::Hook(id)
            }
            6 | 7 if mode != Mode::DuringRefresh || model.accounts.contains_key(&owner) => {
                let mut account = model.accounts.get(&owner).cloned().unwrap_or_else(|| account(&owner, &[], true));
                if action == 6 {
                    let enabled = model.disabled(&owner);
                    account.doc.insert("enabled".into(), Value::Bool(enabled));
                } else {
                    let parent = &self.ids[rng.random_range(0..self.ids.len())];
                    let mut tree = model.accounts.get(parent).map(|parent| parent.tree.clone()).unwrap_or_default();
                    tree.push(parent.clone());
                    if tree.contains(&owner) {
                        tree.clear();
                    }
                    account.tree = tree;
                }
                if let Some(index) = index {
                    index.upsert_account(&account);
                }
                model.accounts.insert(owner.clone(), account);
                Touched::Account(owner)
            }
            8 if rng.random_bool(0.3) => {
                let removed = model.hooks.values().filter(|hook| hook.account_id == owner && indexed(hook)).count();
                model.accounts.remove(&owner);
                model.hooks.retain(|_, hook| hook.account_id != owner);
                hook_ids.retain(|id| model.hooks.contains_key(id));
                if let Some(index) = index {
                    let index_removed = index.remove_account(&owner);
                    assert!(mode != Mode::InSync || index_removed == removed, "{label}");
                }
                Touched::Account(owner)
            }
            _ => Touched::Nothing,
        }
    }

    /// Compares the index with the store (see [`check`]).
    fn check(&self, label: &str) -> usize {
        check(&self.index, &self.model, &self.ids, label)
    }
}

#[test]
fn the_lists_follow_every_change_to_hooks_and_accounts() {
    let mut scenario = Scenario::new(7);
    let mut reached = 0;
    for step in 0..400 {
        let label = format!("step {step}");
        if let Touched::Nothing = scenario.change(true, Mode::InSync, &label) {
            continue;
        }
        reached += scenario.check(&label);
    }
    assert!(reached > 2_000, "the events reached too few hooks to tell anything: {reached}");
}

#[test]
fn a_refresh_brings_an_index_that_missed_changes_to_what_the_store_holds() {
    let mut scenario = Scenario::new(11);
    let mut reached = 0;
    for round in 0..100 {
        // Changes the index sees only in part, as when notices were lost.
        for step in 0..10 {
            let applied = scenario.rng.random_bool(0.5);
            scenario.change(applied, Mode::Missed, &format!("round {round}, step {step}"));
        }
        // The refresh, in pages of three hooks as the store reads them (enabled ones, by id),
        // with changes between its steps that a page read earlier may undo.
        let mut refresh = Refresh::default();
        let accounts: Vec<Account> = scenario.model.accounts.values().cloned().collect();
        let hooks: Vec<Webhook> = scenario.model.hooks.values().filter(|hook| hook.enabled).cloned().collect();
        scenario.index.refresh_accounts(&mut refresh, &accounts);
        let mut touched = Vec::new();
        for page in hooks.chunks(3) {
            scenario.index.refresh_hooks(&mut refresh, page);
            touched.push(scenario.change(true, Mode::DuringRefresh, &format!("round {round}, during the refresh")));
        }
        scenario.index.finish_refresh(refresh);
        // What changed during the refresh, read again from the store.
        let (index, model) = (&mut scenario.index, &scenario.model);
        for touched in touched {
            match touched {
                Touched::Hook(id) => match model.hooks.get(&id) {
                    Some(hook) => index.upsert_hook(hook),
                    None => {
                        index.remove_hook(&id);
                    }
                },
                Touched::Account(id) => match model.accounts.get(&id) {
                    Some(account) => index.upsert_account(account),
                    None => {
                        index.remove_account(&id);
                    }
                },
                Touched::Nothing => {}
            }
        }
        reached += scenario.check(&format!("round {round}, refreshed"));
    }
    assert!(reached > 2_000, "the events reached too few hooks to tell anything: {reached}");
}

#[test]
fn a_hook_inherited_by_descendants_reaches_them_until_it_or_its_owner_changes() {
    let (root, middle, leaf) = (AccountId::generate(), AccountId::generate(), AccountId::generate());
    let accounts = [
        account(&root, &[], true),
        account(&middle, std::slice::from_ref(&root), true),
        account(&leaf, &[root.clone(), middle.clone()], true),
    ];
    let mut index = HookIndex::build(&accounts, &[]);
    let create = |account: &AccountId| events(account).swap_remove(0);
    let id = WebhookId::generate();
    index.upsert_hook(&webhook(&id, &root, "channel_create", json!({"include_subaccounts": true})));
    assert_eq!(receivers(&index, &create(&leaf)), vec![id.clone()]);

    let mut disabled = accounts[0].clone();
    disabled.doc.insert("enabled".into(), Value::Bool(false));
    index.upsert_account(&disabled);
    assert_eq!(receivers(&index, &create(&leaf)), Vec::<WebhookId>::new(), "a disabled owner's hooks stop");
    assert_eq!(receivers(&index, &create(&root)), Vec::<WebhookId>::new());
    index.upsert_account(&accounts[0]);
    assert_eq!(receivers(&index, &create(&middle)), vec![id.clone()]);

    index.upsert_hook(&webhook(&id, &root, "channel_create", json!({})));
    assert_eq!(receivers(&index, &create(&leaf)), Vec::<WebhookId>::new(), "no longer inherited");
    assert_eq!(receivers(&index, &create(&root)), vec![id.clone()]);

    index.upsert_hook(&webhook(&id, &middle, "channel_create", json!({"include_subaccounts": true})));
    assert_eq!(receivers(&index, &create(&root)), Vec::<WebhookId>::new(), "moved to another owner");
    assert_eq!(receivers(&index, &create(&leaf)), vec![id.clone()]);

    index.upsert_account(&account(&leaf, std::slice::from_ref(&root), true));
    assert_eq!(receivers(&index, &create(&leaf)), Vec::<WebhookId>::new(), "the leaf moved out from under it");

    assert_eq!(index.remove_account(&middle), 1);
    index.upsert_account(&account(&leaf, &[root.clone(), middle.clone()], true));
    assert_eq!(receivers(&index, &create(&leaf)), Vec::<WebhookId>::new(), "gone with its owner");
    assert_eq!(index.hook(&id), None);
}
