//! The tenant matrix: every route and verb of the API, called by every kind of caller, on every
//! account of a small tree and on the hooks and attempts each account owns. Every answer is held
//! against the access rule, written out here on its own rather than read from the server: the
//! exact status and Crossbar envelope of each refusal, the success status of the rest and what
//! was acted on. A refused write leaves the store as it was and publishes nothing.
//!
//! The tree: the master account; a reseller under it (an account flagged `is_reseller`); the
//! reseller's sub-account; an unrelated account, another child of the master. The callers: a
//! token of each, no token, an expired token, a token whose signature was altered, and a token
//! whose claims were altered (to name the master) under their old signature.
//!
//! The rule, in Crossbar's order: an invalid or expired token is refused before anything else
//! (401 `invalid credentials`, `{}`); then a method the path does not serve (405); then the
//! account in the path (404 for a malformed or unknown id); then credentials (401
//! `invalid_credentials` without a token); then permission: a token acts on its own account and
//! its descendants, the master's on every account (403 otherwise). A hook, and an attempt, is
//! found only under its own account: elsewhere it is 404 `bad_identifier`, the answer for an id
//! that names nothing. `POST /v2/events` is the master's alone; the hook definitions, the samples
//! and `PUT /v2/api_auth` answer anyone; writes on `/v2/webhooks...` are refused to everyone.

mod cells;
mod rule;
mod world;

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_bus::DISPATCH_ROUTING_KEY;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::JobBatch;
use webhooks_storage::{Account, Attempt, Webhook};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::{Backend, Observer, connect, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::test_matrix;

use cells::{acted_on, body, every_credential_is_read_from_every_transport};
use rule::{expected, routes};
use world::hook_document;

test_matrix!(
    databases;
    every_route_answers_every_caller_as_the_access_rule_says,
);

/// An account of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tenant {
    Master,
    Reseller,
    Sub,
    Unrelated,
}

impl Tenant {
    /// The access rule: a token acts on its own account and its descendants; the master's on all.
    fn may_act_on(self, account: Tenant) -> bool {
        self == Tenant::Master || self == account || (self == Tenant::Reseller && account == Tenant::Sub)
    }

    fn has_sub_accounts(self) -> bool {
        matches!(self, Tenant::Master | Tenant::Reseller)
    }
}

/// Who calls, and with what credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// A valid token of the account.
    Token(Tenant),
    /// No token at all.
    Anonymous,
    /// A token of the master account past its expiry.
    Expired,
    /// A token of the master account with its signature altered.
    ForgedSignature,
    /// A token of the sub-account whose claims were changed to name the master, under the old
    /// signature.
    ForgedClaims,
}

const CALLERS: [Caller; 8] = [
    Caller::Token(Tenant::Master),
    Caller::Token(Tenant::Reseller),
    Caller::Token(Tenant::Sub),
    Caller::Token(Tenant::Unrelated),
    Caller::Anonymous,
    Caller::Expired,
    Caller::ForgedSignature,
    Caller::ForgedClaims,
];

impl Caller {
    fn has_invalid_token(self) -> bool {
        matches!(self, Caller::Expired | Caller::ForgedSignature | Caller::ForgedClaims)
    }
}

/// The account a path names (or, for `PUT /v2/api_auth`, whose API key is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Tenant(Tenant),
    /// A well-formed id (or key) of no account.
    Unknown,
    /// Not an account id at all.
    Malformed,
}

const TARGETS: [Target; 6] = [
    Target::Tenant(Tenant::Master),
    Target::Tenant(Tenant::Reseller),
    Target::Tenant(Tenant::Sub),
    Target::Tenant(Tenant::Unrelated),
    Target::Unknown,
    Target::Malformed,
];

/// Whose hook (and attempt) a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Tenant(Tenant),
    /// Well-formed ids of no hook and no attempt.
    Nobody,
}

const OWNERS: [Owner; 5] = [
    Owner::Tenant(Tenant::Master),
    Owner::Tenant(Tenant::Reseller),
    Owner::Tenant(Tenant::Sub),
    Owner::Tenant(Tenant::Unrelated),
    Owner::Nobody,
];

/// Who a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone, with or without a token.
    Anyone,
    /// Anyone, with an account's API key.
    ApiKey,
    /// The master account only.
    Master,
    /// Nobody: 401 without a token, 403 with one.
    Nobody,
    /// The account in the path, its ancestors and the master.
    Account,
    /// As [`Access::Account`], for a hook of the account in the path.
    Hook,
    /// As [`Access::Hook`], for an attempt of that hook.
    Attempt,
    /// As [`Access::Account`], but never the caller's own account nor one with sub-accounts.
    Deletion,
    /// A method the path does not serve, and the methods it does.
    NotServed(&'static str),
}

/// What an answered request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Reads,
    Writes,
    CreatesHook,
    CreatesAccount,
    DeletesHook,
    DeletesAccount,
    PublishesJob,
    PublishesEvent,
}

/// One route and verb.
#[derive(Debug)]
struct Route {
    method: Method,
    /// `{A}` is the account, `{H}` the hook, `{T}` the attempt.
    path: &'static str,
    access: Access,
    success: StatusCode,
    effect: Effect,
}

impl Route {
    fn names_hook(&self) -> bool {
        self.path.contains("{H}")
    }
}

/// A Standard Webhooks secret the matrix sets on hooks (writes must leave it alone when refused).
const SECRET: &str = "whsec_dGVuYW50IG1hdHJpeCBzaWduaW5nIHNlY3JldA==";

/// One account of a [`World`]: its key and token, one hook, and one failed attempt of that hook
/// that kept its job (so it can be resent and replayed).
struct Member {
    id: AccountId,
    /// The account document as its creator sent it.
    document: Value,
    key: String,
    token: String,
    hook: WebhookId,
    attempt: String,
    event: String,
}

/// The tree, with its tokens and the ids no account, hook or attempt has.
struct World {
    members: Vec<Member>,
    expired: String,
    forged_signature: String,
    forged_claims: String,
    unknown_account: AccountId,
    unknown_key: String,
    stray_hook: WebhookId,
    stray_attempt: String,
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    accounts: Vec<Account>,
    hooks: Vec<(Webhook, Option<String>)>,
    attempts: Vec<Attempt>,
}

/// One cell of the matrix.
#[derive(Clone, Copy)]
struct Cell<'a> {
    route: &'a Route,
    caller: Caller,
    target: Target,
    owner: Option<Owner>,
}

impl fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} {}", self.caller, self.route.method, self.route.path)?;
        if self.route.path.contains("{A}") || self.route.access == Access::ApiKey {
            write!(f, " on {:?}", self.target)?;
        }
        match self.owner {
            Some(owner) => write!(f, ", hook of {owner:?}"),
            None => Ok(()),
        }
    }
}

/// What a cell must answer.
#[derive(Debug)]
enum Expected {
    Success(StatusCode),
    Refusal { status: StatusCode, message: &'static str, data: Value },
}

/// Observers of what the API publishes: jobs for the dispatchers, and Kazoo's call events.
struct Published {
    jobs: Observer,
    events: Observer,
}

impl Published {
    /// Whether nothing was published. The in-process bus has queued a message by the time its
    /// publisher is answered, and the API answers after the broker took what it publishes.
    async fn nothing(&mut self) -> bool {
        self.jobs.quiet_for(Duration::ZERO).await && self.events.quiet_for(Duration::ZERO).await
    }
}

async fn every_route_answers_every_caller_as_the_access_rule_says(database: TestDatabase) {
    let bus = connect(Backend::InProcess, &unique_prefix("test-tenants")).await;
    // No dispatcher runs: a test callout answers 202 at once.
    let mut settings = TestApp::settings();
    settings.api.test_wait_seconds = 0;
    let app = TestApp::spawn_with(database, bus, settings).await;
    let master_token = app.master_token().await;
    let mut published = Published {
        jobs: Observer::bind(&app.bus, &app.bus.topology().jobs_exchange(), DISPATCH_ROUTING_KEY).await,
        events: Observer::bind(&app.bus, "callevt", "#").await,
    };
    let world = World::build(&app, &master_token).await;
    let mut state = world.snapshot(&app).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for route in &routes() {
        let targets: &[Target] = if route.path.contains("{A}") {
            &TARGETS
        } else if route.access == Access::ApiKey {
            &TARGETS[..5]
        } else {
            &TARGETS[..1]
        };
        for &target in targets {
            let owners: &[Owner] = match target {
                _ if !route.names_hook() => &[],
                Target::Tenant(_) if !matches!(route.access, Access::NotServed(_)) => &OWNERS,
                _ => &OWNERS[..1],
            };
            let owners: Vec<Option<Owner>> =
                if owners.is_empty() { vec![None] } else { owners.iter().copied().map(Some).collect() };
            for owner in owners {
                for caller in CALLERS {
                    let cell = Cell { route, caller, target, owner };
                    cells += 1;
                    // A deletion (which names no hook) takes its account away: each that must
                    // succeed gets a tree of its own.
                    if route.effect == Effect::DeletesAccount
                        && matches!(expected(&world, cell, &world.stray_hook), Expected::Success(_))
                    {
                        let own = World::build(&app, &master_token).await;
                        let mut own_state = own.snapshot(&app).await;
                        run(&app, &own, cell, &mut published, &mut own_state, &mut failures).await;
                        state = world.snapshot(&app).await;
                    } else {
                        run(&app, &world, cell, &mut published, &mut state, &mut failures).await;
                    }
                }
            }
        }
    }
    cells += every_credential_is_read_from_every_transport(&app, &world, &mut failures).await;
    assert!(
        failures.is_empty(),
        "{} of {cells} cells disagree with the access rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Sends one cell and checks its answer and its effects, recording what disagrees in `failures`.
/// `state` is the store as it stands before the cell, and after it on return.
async fn run(
    app: &TestApp,
    world: &World,
    cell: Cell<'_>,
    published: &mut Published,
    state: &mut Snapshot,
    failures: &mut Vec<String>,
) {
    let master = &world.member(Tenant::Master).token;
    let owner = cell.owner.unwrap_or(Owner::Nobody);
    // A deletion takes a hook of its own, made for the cell.
    let fresh_hook = match (cell.route.effect, owner) {
        (Effect::DeletesHook, Owner::Tenant(tenant)) => {
            let hook =
                app.client.create_hook(master, world.member(tenant).id.as_str(), &hook_document("fixture")).await;
            *state = world.snapshot(app).await;
            Some(hook)
        }
        _ => None,
    };
    let hook = fresh_hook.as_ref().unwrap_or_else(|| world.hook(owner));
    let path = cell
        .route
        .path
        .replace("{A}", &world.account_path(cell.target))
        .replace("{H}", hook.as_str())
        .replace("{T}", world.attempt(owner));
    let answer =
        app.client.send(cell.route.method.clone(), &path, world.token(cell.caller), body(world, cell).as_ref()).await;
    let mut fail = |why: String| failures.push(format!("{cell}: {why}"));

    let succeeded = match &expected(world, cell, hook) {
        Expected::Refusal { status, message, data } => {
            let got =
                (answer.status, &answer.body["error"], &answer.body["message"], &answer.body["status"], answer.data());
            let want = (*status, &json!(status.as_str()), &json!(message), &json!("error"), data);
            if got != want {
                fail(format!("expected {want:?}, got {got:?}"));
            }
            if let Access::NotServed(allow) = cell.route.access
                && answer.status == StatusCode::METHOD_NOT_ALLOWED
                && answer.header("allow") != Some(allow)
            {
                fail(format!("Allow {:?}, not {allow}", answer.header("allow")));
            }
            false
        }
        Expected::Success(status) => {
            if (answer.status, &answer.body["status"]) != (*status, &json!("success")) {
                fail(format!("expected {status} success, got {} {}", answer.status, answer.body));
                false
            } else {
                true
            }
        }
    };

    // What was published: one job or event for an answered publishing route, nothing otherwise.
    match (succeeded, cell.route.effect) {
        (true, Effect::PublishesJob) => {
            let (_, batch) = published.jobs.next_json::<JobBatch>().await;
            let hooks: Vec<&WebhookId> = batch.jobs.iter().map(|job| &job.hook_id).collect();
            if hooks != [hook] {
                fail(format!("jobs published for {hooks:?}"));
            }
        }
        (true, Effect::PublishesEvent) => {
            published.events.next_delivery().await;
        }
        _ => {}
    }
    if !published.nothing().await {
        fail("published what it should not have".into());
    }
    if succeeded && let Err(why) = acted_on(app, world, cell, hook, &answer).await {
        fail(why);
    }

    // What was written: nothing unless the cell succeeded; the fixtures it made are removed.
    if cell.route.effect != Effect::Reads {
        let after = world.snapshot(app).await;
        if !succeeded && after != *state {
            fail("a refused write changed the store".into());
        }
        *state = after;
    }
    if let Some(fresh) = fresh_hook
        && !succeeded
    {
        let account = match owner {
            Owner::Tenant(tenant) => &world.member(tenant).id,
            Owner::Nobody => unreachable!("a fresh hook has an owner"),
        };
        let path = format!("/v2/accounts/{account}/webhooks/{fresh}");
        // Gone already only if the refused deletion happened after all, which is reported above.
        let removed = app.client.send(Method::DELETE, &path, Some(master), None).await;
        assert!([StatusCode::OK, StatusCode::NOT_FOUND].contains(&removed.status), "{}", removed.body);
        *state = world.snapshot(app).await;
    }
}
