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

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_api::auth::{Claims, TokenSigner};
use webhooks_bus::DISPATCH_ROUTING_KEY;
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_model::job::JobBatch;
use webhooks_model::time::unix_seconds;
use webhooks_storage::{Account, Attempt, PageRequest, Webhook};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::{Backend, Observer, connect, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::http::Answer;
use webhooks_test_support::store::kept_failure;
use webhooks_test_support::test_matrix;

test_matrix!(
    on_sqlite => TestDatabase::sqlite().await,
    on_postgres => TestDatabase::postgres().await;
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

/// Every route and verb the API serves (and one unserved verb of several paths).
fn routes() -> Vec<Route> {
    use Access::{Account, Anyone, ApiKey, Deletion, Hook, Master, Nobody, NotServed};
    use Effect::{
        CreatesAccount, CreatesHook, DeletesAccount, DeletesHook, PublishesEvent, PublishesJob, Reads, Writes,
    };
    let route = |method: Method, path, access, success, effect| Route { method, path, access, success, effect };
    let (ok, created, accepted) = (StatusCode::OK, StatusCode::CREATED, StatusCode::ACCEPTED);
    // The "success" of a route nobody may call, never expected.
    let never = StatusCode::FORBIDDEN;
    vec![
        route(Method::GET, "/v2/accounts/{A}/webhooks", Account, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}/webhooks", Account, created, CreatesHook),
        route(Method::PATCH, "/v2/accounts/{A}/webhooks", Account, ok, Writes),
        route(Method::GET, "/v2/accounts/{A}/descendants/webhooks", Account, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}/descendants/webhooks", Account, created, CreatesHook),
        route(Method::PATCH, "/v2/accounts/{A}/descendants/webhooks", Account, ok, Writes),
        route(Method::GET, "/v2/accounts/{A}/webhooks/attempts", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/webhooks/samples", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/webhooks/samples/webhooks_parking", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, Reads),
        route(Method::POST, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, Writes),
        route(Method::PATCH, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, Writes),
        route(Method::DELETE, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, DeletesHook),
        route(Method::GET, "/v2/accounts/{A}/webhooks/{H}/attempts", Hook, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}/webhooks/{H}/test", Hook, accepted, PublishesJob),
        route(Method::PUT, "/v2/accounts/{A}/webhooks/{H}/attempts/replay", Hook, accepted, PublishesJob),
        route(
            Method::PUT,
            "/v2/accounts/{A}/webhooks/{H}/attempts/{T}/resend",
            Access::Attempt,
            accepted,
            PublishesJob,
        ),
        route(Method::GET, "/v2/accounts/{A}", Account, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}", Account, created, CreatesAccount),
        route(Method::POST, "/v2/accounts/{A}", Account, ok, Writes),
        route(Method::PATCH, "/v2/accounts/{A}", Account, ok, Writes),
        route(Method::DELETE, "/v2/accounts/{A}", Deletion, ok, DeletesAccount),
        route(Method::GET, "/v2/accounts/{A}/children", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/descendants", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/api_key", Account, ok, Reads),
        route(Method::PUT, "/v2/api_auth", ApiKey, created, Reads),
        route(Method::POST, "/v2/events", Master, accepted, PublishesEvent),
        route(Method::GET, "/v2/webhooks", Anyone, ok, Reads),
        route(Method::PUT, "/v2/webhooks", Nobody, never, Writes),
        route(Method::PATCH, "/v2/webhooks", Nobody, never, Writes),
        route(Method::GET, "/v2/webhooks/samples", Anyone, ok, Reads),
        route(Method::GET, "/v2/webhooks/samples/webhooks_parking", Anyone, ok, Reads),
        route(Method::GET, "/v2/webhooks/anything", Nobody, never, Reads),
        route(Method::POST, "/v2/webhooks/anything", Nobody, never, Writes),
        route(Method::PATCH, "/v2/webhooks/anything", Nobody, never, Writes),
        route(Method::DELETE, "/v2/webhooks/anything", Nobody, never, Writes),
        route(Method::DELETE, "/v2/accounts/{A}/webhooks", NotServed("GET, PUT, PATCH"), never, Writes),
        route(Method::POST, "/v2/accounts/{A}/webhooks/attempts", NotServed("GET"), never, Writes),
        route(Method::PUT, "/v2/accounts/{A}/webhooks/{H}", NotServed("GET, POST, PATCH, DELETE"), never, Writes),
        route(Method::GET, "/v2/accounts/{A}/webhooks/{H}/test", NotServed("PUT"), never, Reads),
        route(Method::POST, "/v2/accounts/{A}/children", NotServed("GET"), never, Writes),
        route(Method::DELETE, "/v2/api_auth", NotServed("PUT"), never, Writes),
        route(Method::GET, "/v2/events", NotServed("POST"), never, Reads),
    ]
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

impl World {
    /// A new reseller, sub-account and unrelated account under the master of `app`, each (and
    /// the master) with a hook and an attempt of it.
    async fn build(app: &TestApp, master_token: &str) -> World {
        let client = &app.client;
        let master = app.master_id.parse::<AccountId>().expect("the master id");
        let documents = [
            json!({"name": "master"}),
            json!({"name": "reseller", "is_reseller": true}),
            json!({"name": "sub"}),
            json!({"name": "unrelated"}),
        ];
        let (reseller, reseller_key) = create_account(app, master_token, &master, &documents[1]).await;
        let reseller_token = client.token(&reseller_key).await;
        let (sub, sub_key) = create_account(app, &reseller_token, &reseller, &documents[2]).await;
        let (unrelated, unrelated_key) = create_account(app, master_token, &master, &documents[3]).await;
        let accounts = [
            (master, app.master_key.clone(), master_token.to_owned()),
            (reseller, reseller_key, reseller_token),
            (sub, sub_key.clone(), client.token(&sub_key).await),
            (unrelated, unrelated_key.clone(), client.token(&unrelated_key).await),
        ];
        let mut members = Vec::new();
        let mut attempts = Vec::new();
        for ((id, key, token), document) in accounts.into_iter().zip(documents) {
            let hook = client.create_hook(master_token, id.as_str(), &hook_document("fixture")).await;
            let event = random_id();
            let attempt = kept_failure(&id, &hook, &event);
            members.push(Member { id, document, key, token, hook, attempt: attempt.id.clone(), event });
            attempts.push(attempt);
        }
        app.store.insert_attempts(&attempts).await.expect("attempts stored");

        let secret = app.store.setting("auth_token_secret").await.expect("read").expect("the token secret");
        let master_id = &members[0].id;
        let expired = TokenSigner::new(secret.as_bytes(), 0).issue(master_id);
        let (header, rest) = master_token.split_once('.').expect("a token");
        let (claims, signature) = rest.split_once('.').expect("a token");
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        let forged_signature = format!("{header}.{claims}.{first}{}", &signature[1..]);
        assert_ne!(forged_signature, master_token);
        let sub_signature = members[2].token.rsplit_once('.').expect("a token").1;
        let now = unix_seconds().unsigned_abs();
        let escalated = Claims { account_id: master_id.clone(), iat: now, exp: now + 3600 };
        let escalated = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&escalated).expect("claims serialize"));
        let forged_claims = format!("{header}.{escalated}.{sub_signature}");
        World {
            members,
            expired,
            forged_signature,
            forged_claims,
            unknown_account: AccountId::generate(),
            unknown_key: webhooks_api::accounts::generate_api_key(),
            stray_hook: WebhookId::generate(),
            stray_attempt: random_id(),
        }
    }

    fn member(&self, tenant: Tenant) -> &Member {
        &self.members[tenant as usize]
    }

    fn token(&self, caller: Caller) -> Option<&str> {
        match caller {
            Caller::Token(tenant) => Some(&self.member(tenant).token),
            Caller::Anonymous => None,
            Caller::Expired => Some(&self.expired),
            Caller::ForgedSignature => Some(&self.forged_signature),
            Caller::ForgedClaims => Some(&self.forged_claims),
        }
    }

    fn account_path(&self, target: Target) -> String {
        match target {
            Target::Tenant(tenant) => self.member(tenant).id.to_string(),
            Target::Unknown => self.unknown_account.to_string(),
            Target::Malformed => "nothex".into(),
        }
    }

    fn hook(&self, owner: Owner) -> &WebhookId {
        match owner {
            Owner::Tenant(tenant) => &self.member(tenant).hook,
            Owner::Nobody => &self.stray_hook,
        }
    }

    fn attempt(&self, owner: Owner) -> &str {
        match owner {
            Owner::Tenant(tenant) => &self.member(tenant).attempt,
            Owner::Nobody => &self.stray_attempt,
        }
    }

    /// Everything the matrix could change: every account, and the hooks (with their secrets)
    /// and attempts of the world's accounts.
    async fn snapshot(&self, app: &TestApp) -> Snapshot {
        let store = &app.store;
        let everything = PageRequest::default();
        let accounts = store.all_accounts().await.expect("accounts");
        let mut hooks = Vec::new();
        let mut attempts = Vec::new();
        for member in &self.members {
            for hook in store.list_webhooks(&member.id, &everything).await.expect("hooks").items {
                let secret = store.signing_secret(&hook.id).await.expect("a secret");
                hooks.push((hook, secret));
            }
            attempts
                .extend(store.list_attempts(&member.id, None, 0, i64::MAX, &everything).await.expect("attempts").items);
        }
        Snapshot { accounts, hooks, attempts }
    }
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    accounts: Vec<Account>,
    hooks: Vec<(Webhook, Option<String>)>,
    attempts: Vec<Attempt>,
}

/// Creates a sub-account of `parent` from `document`; its id and API key.
async fn create_account(app: &TestApp, token: &str, parent: &AccountId, document: &Value) -> (AccountId, String) {
    let (id, key) = app.client.create_account_from(token, parent.as_str(), document).await;
    (id.parse().expect("an account id"), key)
}

/// A hook document named `name`.
fn hook_document(name: &str) -> Value {
    json!({"name": name, "uri": "http://127.0.0.1:9/matrix", "hook": "channel_create"})
}

/// [`hook_document`] in its envelope.
fn hook_body(name: &str) -> Value {
    json!({"data": hook_document(name)})
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

impl Expected {
    fn refusal(status: StatusCode, message: &'static str, data: Value) -> Self {
        Expected::Refusal { status, message, data }
    }

    fn invalid_token() -> Self {
        Self::refusal(StatusCode::UNAUTHORIZED, "invalid credentials", json!({}))
    }

    fn no_token() -> Self {
        Self::refusal(StatusCode::UNAUTHORIZED, "invalid_credentials", json!({"message": "invalid credentials"}))
    }

    fn forbidden() -> Self {
        Self::refusal(StatusCode::FORBIDDEN, "forbidden", json!({"message": "forbidden"}))
    }

    fn unknown(id: &str) -> Self {
        Self::refusal(StatusCode::NOT_FOUND, "bad_identifier", json!({"cause": id, "message": "bad identifier"}))
    }
}

/// The access rule (see the module documentation), for one cell naming `hook`.
fn expected(world: &World, cell: Cell<'_>, hook: &WebhookId) -> Expected {
    if cell.caller.has_invalid_token() {
        return Expected::invalid_token();
    }
    let route = cell.route;
    let caller = match cell.caller {
        Caller::Token(tenant) => Some(tenant),
        _ => None,
    };
    match route.access {
        Access::NotServed(_) => {
            return Expected::refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_method",
                json!({"message": "method not allowed"}),
            );
        }
        Access::Anyone => return Expected::Success(route.success),
        Access::ApiKey if cell.target == Target::Unknown => return Expected::invalid_token(),
        Access::ApiKey => return Expected::Success(route.success),
        Access::Master | Access::Nobody => {
            return match caller {
                None => Expected::no_token(),
                Some(Tenant::Master) if route.access == Access::Master => Expected::Success(route.success),
                Some(_) => Expected::forbidden(),
            };
        }
        Access::Account | Access::Hook | Access::Attempt | Access::Deletion => {}
    }
    let account = match cell.target {
        Target::Malformed => {
            return Expected::refusal(
                StatusCode::NOT_FOUND,
                "bad identifier",
                json!({"message": "invalid account_id 'nothex'"}),
            );
        }
        Target::Unknown => return Expected::unknown(world.unknown_account.as_str()),
        Target::Tenant(tenant) => tenant,
    };
    let Some(caller) = caller else { return Expected::no_token() };
    if !caller.may_act_on(account) {
        return Expected::forbidden();
    }
    let owner = cell.owner.unwrap_or(Owner::Nobody);
    match route.access {
        Access::Hook if owner != Owner::Tenant(account) => Expected::unknown(hook.as_str()),
        Access::Attempt if owner != Owner::Tenant(account) => Expected::unknown(world.attempt(owner)),
        Access::Deletion if caller == account => Expected::forbidden(),
        Access::Deletion if account.has_sub_accounts() => Expected::refusal(
            StatusCode::BAD_REQUEST,
            "account has descendants",
            json!({"message": "delete the sub-accounts of this account first"}),
        ),
        _ => Expected::Success(route.success),
    }
}

/// The request body of a cell.
fn body(world: &World, cell: Cell<'_>) -> Option<Value> {
    let route = cell.route;
    let account = match cell.target {
        Target::Tenant(tenant) => Some(world.member(tenant)),
        _ => None,
    };
    Some(match (&route.method, route.path) {
        (&Method::PUT, "/v2/api_auth") => {
            let key = match cell.target {
                Target::Tenant(tenant) => world.member(tenant).key.clone(),
                _ => world.unknown_key.clone(),
            };
            json!({"data": {"api_key": key}})
        }
        (&Method::POST, "/v2/events") => json!({
            "Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": random_id(),
            "Custom-Channel-Vars": {"Account-ID": world.member(Tenant::Sub).id}}),
        (&Method::PUT, "/v2/accounts/{A}") => json!({"data": {"name": "created by the matrix"}}),
        // The account as it was created: a replacement keeps the reseller's flag.
        (&Method::POST, "/v2/accounts/{A}") => match account {
            Some(member) => json!({"data": member.document}),
            None => json!({"data": {"name": "nobody"}}),
        },
        (&Method::PATCH, "/v2/accounts/{A}") => json!({"data": {"matrix": "patched"}}),
        (&Method::PATCH, path) if path.ends_with("/webhooks") => json!({"data": {"re-enable": true}}),
        (&Method::PATCH, "/v2/accounts/{A}/webhooks/{H}") => {
            json!({"data": {"name": "patched", "signing_secret": SECRET}})
        }
        (&Method::PUT, path) if path.ends_with("/replay") => json!({"data": {"since": 0}}),
        (&Method::PUT, path) if path.ends_with("/test") || path.ends_with("/resend") => return None,
        (&Method::PUT | &Method::POST | &Method::PATCH, _) => hook_body("written by the matrix"),
        _ => return None,
    })
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
            let hook = app.client.create_hook(master, world.member(tenant).id.as_str(), &hook_document("fixture")).await;
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

/// Checks that an answered cell acted on the account, hook or attempt in its path (and, for the
/// creations, only made the one document, which is then removed again).
async fn acted_on(
    app: &TestApp,
    world: &World,
    cell: Cell<'_>,
    hook: &WebhookId,
    answer: &Answer,
) -> Result<(), String> {
    let store = &app.store;
    let master = &world.member(Tenant::Master).token;
    let data = answer.data();
    let account = match cell.target {
        Target::Tenant(tenant) => Some(world.member(tenant)),
        _ => None,
    };
    let ids = |items: &Value| -> Vec<String> {
        items.as_array().into_iter().flatten().filter_map(|item| item["id"].as_str()).map(str::to_owned).collect()
    };
    let route = cell.route;
    let check = |holds: bool, what: &str| if holds { Ok(()) } else { Err(format!("{what}: {data}")) };
    match (&route.method, route.path) {
        (_, path) if path.contains("{H}") && path.ends_with("/attempts") => {
            let owner = account.ok_or("no account")?;
            check(
                data == &json!([{"event_id": owner.event, "result": "failure", "hook_id": hook.as_str(),
                                   "id": owner.attempt, "timestamp": data[0]["timestamp"]}]),
                "the hook's own attempt",
            )
        }
        (&Method::GET, "/v2/accounts/{A}/webhooks/attempts") => {
            let owner = account.ok_or("no account")?;
            let events: Vec<&str> =
                data.as_array().into_iter().flatten().filter_map(|item| item["event_id"].as_str()).collect();
            check(events == [owner.event.as_str()], "the account's own attempts")
        }
        (&Method::GET, "/v2/accounts/{A}/webhooks" | "/v2/accounts/{A}/descendants/webhooks") => {
            let owner = account.ok_or("no account")?;
            let page = PageRequest::default();
            let stored = store.list_webhooks(&owner.id, &page).await.map_err(|error| error.to_string())?;
            let stored: Vec<String> = stored.items.iter().map(|hook| hook.id.to_string()).collect();
            check(ids(data) == stored, "the account's own hooks")
        }
        (&Method::PUT, "/v2/accounts/{A}/webhooks" | "/v2/accounts/{A}/descendants/webhooks") => {
            let owner = account.ok_or("no account")?;
            let id: WebhookId = data["id"].as_str().and_then(|id| id.parse().ok()).ok_or("no hook id")?;
            let stored = store.webhook(&owner.id, &id).await.map_err(|error| error.to_string())?;
            check(stored.is_some(), "a hook of the account in the path")?;
            let path = format!("/v2/accounts/{}/webhooks/{id}", owner.id);
            let removed = app.client.send(Method::DELETE, &path, Some(master), None).await;
            check(removed.status == StatusCode::OK, "removed again")
        }
        (&Method::GET | &Method::POST | &Method::PATCH, "/v2/accounts/{A}/webhooks/{H}") => {
            check(data["id"] == hook.as_str(), "the hook in the path")
        }
        (&Method::DELETE, "/v2/accounts/{A}/webhooks/{H}") => {
            let owner = account.ok_or("no account")?;
            let stored = store.webhook(&owner.id, hook).await.map_err(|error| error.to_string())?;
            check(data["id"] == hook.as_str() && stored.is_none(), "the hook in the path, deleted")
        }
        (_, path) if path.ends_with("/test") => {
            check(data["status"] == "pending" && data["event_id"].is_string(), "a pending test")
        }
        (_, path) if path.ends_with("/replay") => check(data == &json!({"replayed": 1}), "one failure replayed"),
        (_, path) if path.ends_with("/resend") => {
            let owner = account.ok_or("no account")?;
            check(data == &json!({"resent": 1, "event_id": owner.event}), "the attempt's event resent")
        }
        (&Method::GET | &Method::POST | &Method::PATCH, "/v2/accounts/{A}") => {
            let owner = account.ok_or("no account")?;
            check(data["id"] == owner.id.as_str(), "the account in the path")
        }
        (&Method::PUT, "/v2/accounts/{A}") => {
            let owner = account.ok_or("no account")?;
            let id: AccountId = data["id"].as_str().and_then(|id| id.parse().ok()).ok_or("no account id")?;
            let stored = store.account(&id).await.map_err(|error| error.to_string())?;
            check(stored.is_some_and(|child| child.parent_id.as_ref() == Some(&owner.id)), "a child of the account")?;
            let removed = app.client.send(Method::DELETE, &format!("/v2/accounts/{id}"), Some(master), None).await;
            check(removed.status == StatusCode::OK, "removed again")
        }
        (&Method::DELETE, "/v2/accounts/{A}") => {
            let owner = account.ok_or("no account")?;
            let stored = store.account(&owner.id).await.map_err(|error| error.to_string())?;
            check(data["id"] == owner.id.as_str() && stored.is_none(), "the account in the path, deleted")
        }
        (&Method::GET, "/v2/accounts/{A}/children") => {
            let owner = account.ok_or("no account")?;
            let stored = store.children(&owner.id).await.map_err(|error| error.to_string())?;
            check(ids(data) == stored.iter().map(|child| child.id.to_string()).collect::<Vec<_>>(), "its children")
        }
        (&Method::GET, "/v2/accounts/{A}/descendants") => {
            let owner = account.ok_or("no account")?;
            let stored = store.descendants(&owner.id).await.map_err(|error| error.to_string())?;
            check(ids(data) == stored.iter().map(|child| child.id.to_string()).collect::<Vec<_>>(), "its descendants")
        }
        (&Method::GET, "/v2/accounts/{A}/api_key") => {
            let owner = account.ok_or("no account")?;
            check(data == &json!({"api_key": owner.key}), "its API key")
        }
        (&Method::PUT, "/v2/api_auth") => {
            let owner = account.ok_or("no account")?;
            check(data["account_id"] == owner.id.as_str() && answer.body["auth_token"].is_string(), "its token")
        }
        (&Method::POST, "/v2/events") => check(data == &json!({"accepted": 1}), "one event"),
        _ => Ok(()),
    }
}

/// Every credential, sent each way Crossbar reads a token (header, bearer, query string,
/// envelope), answers as it does in the header.
async fn every_credential_is_read_from_every_transport(
    app: &TestApp,
    world: &World,
    failures: &mut Vec<String>,
) -> usize {
    let sub = &world.member(Tenant::Sub).id;
    let path = format!("/v2/accounts/{sub}/webhooks");
    let http = reqwest::Client::new();
    let mut cells = 0;
    for caller in CALLERS {
        let Some(token) = world.token(caller) else { continue };
        let allowed = matches!(caller, Caller::Token(tenant) if tenant.may_act_on(Tenant::Sub));
        let url = format!("{}{path}", app.client.base_url());
        let mut enveloped = hook_body("sent with a token in the envelope");
        enveloped["auth_token"] = json!(token);
        for (transport, request) in [
            ("bearer", http.put(&url).bearer_auth(token).json(&hook_body("bearer"))),
            ("query", http.put(format!("{url}?auth_token={token}")).json(&hook_body("query"))),
            ("envelope", http.put(&url).json(&enveloped)),
        ] {
            cells += 1;
            let response = request.send().await.expect("an answer");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let want = if caller.has_invalid_token() {
                (StatusCode::UNAUTHORIZED, json!("invalid credentials"))
            } else if allowed {
                (StatusCode::CREATED, Value::Null)
            } else {
                (StatusCode::FORBIDDEN, json!("forbidden"))
            };
            if (status, body.get("message").cloned().unwrap_or(Value::Null)) != want {
                failures.push(format!("{caller:?} PUT {path} with the token in the {transport}: {status} {body}"));
            }
            if let Some(id) = body["data"]["id"].as_str().filter(|_| status == StatusCode::CREATED) {
                let removed = app
                    .client
                    .send(Method::DELETE, &format!("{path}/{id}"), Some(&world.member(Tenant::Master).token), None)
                    .await;
                assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
            }
        }
    }
    cells
}
