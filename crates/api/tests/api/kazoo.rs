//! Kazoo mode over real HTTP on 127.0.0.1: Kazoo's tokens verified with the keys of a Crossbar
//! stand-in, Crossbar's answers to every kind of bad token, the key reset under the same key id,
//! the rate limit of key fetches, `tokeninfo` failing closed, and the CORS preflight of Monster UI.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_api::kazoo::{KazooSetupError, KazooTokens};
use webhooks_bus::{Bus, Topology};
use webhooks_model::config::KazooConfig;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::http::Answer;
use webhooks_test_support::kazoo::{
    self, CrossbarStandIn, KID, MASTER, MASTER_API_KEY, RESELLER, SIBLING, SUB1, SUB2, api_claims, mint, token,
};

const KEY_PATH: &str = "/v2/auth/keys/96247ed90b4bec8294c09ae6ece923a2";

/// Kazoo mode against `crossbar`, logging in with the master API key.
pub(crate) fn kazoo_config(crossbar: &CrossbarStandIn) -> KazooConfig {
    KazooConfig {
        crossbar_url: Some(crossbar.url()),
        api_key: Some(MASTER_API_KEY.to_owned()),
        ..KazooConfig::default()
    }
}

/// The API in Kazoo mode with `kazoo`, over `database`, holding the fixture account tree.
pub(crate) async fn kazoo_app(database: TestDatabase, kazoo: KazooConfig) -> TestApp {
    let bus = Bus::connect(None, Topology::new("webhooks")).await.expect("the in-process bus starts");
    let app = TestApp::spawn_with(database, bus, webhooks_api::ApiSettings { kazoo, ..TestApp::settings() }).await;
    kazoo::create_tree(&app.store).await;
    app
}

fn hooks(account: &str) -> String {
    format!("/v2/accounts/{account}/webhooks")
}

fn hook_body() -> Value {
    json!({"data": {"name": "kazoo", "uri": "https://hooks.example.com/kazoo", "hook": "channel_create"}})
}

async fn list(app: &TestApp, account: &str, token: &str) -> Answer {
    app.client.send(Method::GET, &hooks(account), Some(token), None).await
}

/// Crossbar's answer to a token it does not accept.
fn assert_401(answer: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}: {}", answer.body);
    assert_eq!(answer.body["error"], "401", "{what}");
    assert_eq!(answer.body["message"], "invalid credentials", "{what}");
    assert_eq!(answer.body["status"], "error", "{what}");
}

/// Crossbar's answer to a valid token on an account it may not act on.
fn assert_403(answer: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}: {}", answer.body);
    assert_eq!(answer.body["error"], "403", "{what}");
    assert_eq!(answer.body["message"], "forbidden", "{what}");
    assert_eq!(answer.body["status"], "error", "{what}");
}

async fn kazoo_tokens_act_on_their_account_tree(database: TestDatabase) {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(database, kazoo_config(&crossbar)).await;

    for name in ["user_auth", "api_auth"] {
        let created = app.client.send(Method::PUT, &hooks(SUB1), Some(&token(name)), Some(&hook_body())).await;
        assert_eq!(created.status, StatusCode::CREATED, "{name}: {}", created.body);
        let listed = list(&app, SUB1, &token(name)).await;
        assert_eq!(listed.status, StatusCode::OK, "{name}: {}", listed.body);
        assert_eq!(listed.body["auth_token"], token(name), "the token is echoed");
    }
    let allowed = [
        ("master_api_auth", [MASTER, RESELLER, SUB1, SUB2, SIBLING].as_slice()),
        ("reseller_api_auth", &[RESELLER, SUB1, SUB2]),
        ("sibling_api_auth", &[SIBLING]),
        ("api_auth", &[SUB1]),
    ];
    for (name, accounts) in allowed {
        for account in [MASTER, RESELLER, SUB1, SUB2, SIBLING] {
            let answer = list(&app, account, &token(name)).await;
            if accounts.contains(&account) {
                assert_eq!(answer.status, StatusCode::OK, "{name} on {account}: {}", answer.body);
            } else {
                assert_403(&answer, &format!("{name} on {account}"));
            }
        }
    }
    // An account route and a path without an account take the same tokens.
    let account = app.client.send(Method::GET, &format!("/v2/accounts/{SUB1}"), Some(&token("user_auth")), None).await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    let definitions = app.client.send(Method::GET, "/v2/webhooks", Some(&token("api_auth")), None).await;
    assert_eq!(definitions.status, StatusCode::OK, "{}", definitions.body);

    // Keys were read once, at start; every token since was verified with them, and once.
    assert_eq!(crossbar.count("PUT", "/v2/api_auth"), 1);
    assert_eq!(crossbar.count("GET", "/v2/auth/keys"), 1);
    assert_eq!(crossbar.count("GET", KEY_PATH), 1);
    assert_eq!(crossbar.count("POST", "/v2/auth/tokeninfo"), 0, "tokeninfo is off by default");
}

#[tokio::test(flavor = "multi_thread")]
async fn kazoo_tokens_act_on_their_account_tree_on_sqlite() {
    kazoo_tokens_act_on_their_account_tree(TestDatabase::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kazoo_tokens_act_on_their_account_tree_on_postgres() {
    kazoo_tokens_act_on_their_account_tree(TestDatabase::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_kazoo_would_refuse_get_crossbars_401() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(TestDatabase::sqlite().await, kazoo_config(&crossbar)).await;
    let rs256 = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    // `api_auth` is Crossbar's in Kazoo mode: the standalone mode's token is signed here with the
    // service's own secret, as its `api_auth` would have.
    let secret = app.store.setting("auth_token_secret").await.expect("the store answers").expect("a secret");
    let master_id = app.master_id.parse().expect("an account id");
    let our_own = webhooks_api::auth::TokenSigner::new(secret.as_bytes(), 3600).issue(&master_id);
    let refused = [
        ("expired", token("expired")),
        ("tampered", token("tampered")),
        ("wrong_kid", token("wrong_kid")),
        ("rotated_key", token("rotated_key")),
        ("alg none", mint(&json!({"alg": "none", "typ": "JWT", "kid": KID}), &api_claims(SUB1))),
        ("HS256 (the standalone mode's token)", our_own.clone()),
        ("an account this service does not hold", mint(&rs256, &api_claims("00000000000000000000000000000001"))),
        ("no account_id", mint(&rs256, &json!({"exp": 4_949_908_384_u64}))),
        ("not a JWT", "not-a-token".to_owned()),
    ];
    for (what, token) in &refused {
        assert_401(&list(&app, SUB1, token).await, what);
    }
    let created = app.client.send(Method::PUT, &hooks(SUB1), Some(&our_own), Some(&hook_body())).await;
    assert_401(&created, "a write with a standalone token");

    for alg in ["RS384", "RS512"] {
        let minted = mint(&json!({"alg": alg, "typ": "JWT", "kid": KID}), &api_claims(SUB1));
        assert_eq!(list(&app, SUB1, &minted).await.status, StatusCode::OK, "{alg}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn x_auth_account_id_and_as_follow_crossbar() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(TestDatabase::sqlite().await, kazoo_config(&crossbar)).await;
    let send = |token: String, account: &'static str, header: Option<&'static str>| {
        let request = reqwest::Client::new()
            .get(format!("{}{}", app.client.base_url(), hooks(account)))
            .header("X-Auth-Token", token);
        let request = match header {
            Some(value) => request.header("X-Auth-Account-ID", value),
            None => request,
        };
        async move { request.send().await.expect("an answer").status() }
    };
    assert_eq!(send(token("user_auth"), SUB1, Some(SUB1)).await, StatusCode::OK, "the token's own account");
    assert_eq!(send(token("user_auth"), SUB1, Some(RESELLER)).await, StatusCode::UNAUTHORIZED, "another account");
    assert_eq!(
        send(token("reseller_api_auth"), SUB1, Some(SUB1)).await,
        StatusCode::UNAUTHORIZED,
        "the header names the token's account, not the one in the URL"
    );

    let rs256 = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    let acting = |account: &str, acting_as: Value| {
        let mut claims = api_claims(account);
        claims["as"] = acting_as;
        mint(&rs256, &claims)
    };
    // The reseller acting as sub1 is sub1: it reaches sub1, no longer the reseller.
    let as_sub1 = acting(RESELLER, json!({"account_id": SUB1, "owner_id": "8e248327b85591955749e53ea45b6baa"}));
    assert_eq!(send(as_sub1.clone(), SUB1, None).await, StatusCode::OK);
    assert_eq!(send(as_sub1.clone(), RESELLER, None).await, StatusCode::FORBIDDEN);
    assert_eq!(send(as_sub1, SUB1, Some(RESELLER)).await, StatusCode::OK, "the header names the token's account");
    // Only a descendant may be acted as; an incomplete `as` is ignored.
    let as_sibling = acting(RESELLER, json!({"account_id": SIBLING, "owner_id": "u"}));
    assert_eq!(send(as_sibling, SIBLING, None).await, StatusCode::UNAUTHORIZED);
    let as_itself = acting(RESELLER, json!({"account_id": RESELLER, "owner_id": "u"}));
    assert_eq!(send(as_itself, RESELLER, None).await, StatusCode::UNAUTHORIZED);
    let incomplete = acting(RESELLER, json!({"account_id": SUB1}));
    assert_eq!(send(incomplete.clone(), RESELLER, None).await, StatusCode::OK);
    assert_eq!(send(incomplete, SUB2, None).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_reset_under_the_same_kid_is_picked_up_with_one_fetch() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(TestDatabase::sqlite().await, kazoo_config(&crossbar)).await;
    let old = token("user_auth");
    assert_eq!(list(&app, SUB1, &old).await.status, StatusCode::OK);
    assert_eq!((crossbar.count("PUT", "/v2/api_auth"), crossbar.count("GET", KEY_PATH)), (1, 1));

    // Kazoo resets its key: same id, new key, and every session (the service's too) ends.
    crossbar.set_key(KID, &kazoo::rotated_public_key_pem());
    crossbar.end_sessions();
    let new = kazoo::rotated_token("user_auth");
    assert_eq!(list(&app, SUB1, &new).await.status, StatusCode::OK, "verified after one fetch");
    assert_eq!(crossbar.count("GET", KEY_PATH), 3, "one fetch, refused once for the ended session");
    assert_eq!(crossbar.count("PUT", "/v2/api_auth"), 2, "the service logged in again");
    assert_eq!(list(&app, SUB1, &new).await.status, StatusCode::OK);

    // What the old key signed is no longer valid, though it was verified before.
    assert_401(&list(&app, SUB1, &old).await, "a token of the replaced key");
    assert_eq!(crossbar.count("GET", KEY_PATH), 3, "no further fetch within the minute");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_fetches_caused_by_tokens_are_rate_limited() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(TestDatabase::sqlite().await, kazoo_config(&crossbar)).await;
    let unknown_key = "/v2/auth/keys/ffffffffffffffffffffffffffffffff";
    for _ in 0..3 {
        assert_401(&list(&app, SUB1, &token("wrong_kid")).await, "an unknown key id");
    }
    assert_eq!(crossbar.count("GET", unknown_key), 1, "asked once");
    for name in ["tampered", "rotated_key", "tampered"] {
        assert_401(&list(&app, SUB1, &token(name)).await, name);
    }
    assert_eq!(crossbar.count("GET", KEY_PATH), 1, "only the fetch at start: the minute has not passed");
    assert_eq!(list(&app, SUB1, &token("user_auth")).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokeninfo_confirms_each_token_once_and_fails_closed() {
    let crossbar = CrossbarStandIn::start().await;
    let config = KazooConfig { tokeninfo: true, tokeninfo_cache_seconds: 2, ..kazoo_config(&crossbar) };
    let app = kazoo_app(TestDatabase::sqlite().await, config).await;
    let user = token("user_auth");
    for _ in 0..3 {
        assert_eq!(list(&app, SUB1, &user).await.status, StatusCode::OK);
    }
    assert_eq!(crossbar.count("POST", "/v2/auth/tokeninfo"), 1, "confirmed once");
    let confirmed = crossbar.requests().into_iter().find(|request| request.path() == "/v2/auth/tokeninfo");
    let body: Value = serde_json::from_slice(&confirmed.expect("a tokeninfo call").body).expect("JSON");
    assert_eq!(body, json!({"data": {"token": user}}));

    // A session Kazoo revoked stops working; a token is refused when Crossbar cannot be asked.
    crossbar.revoke(&token("api_auth"));
    assert_401(&list(&app, SUB1, &token("api_auth")).await, "a revoked session");
    drop(crossbar);
    assert_401(&list(&app, MASTER, &token("master_api_auth")).await, "Crossbar unreachable");
    // A token confirmed before is refused once its confirmation is older than the cache time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while list(&app, SUB1, &user).await.status == StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "still accepted without Crossbar");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_401(&list(&app, SUB1, &user).await, "confirmation expired, Crossbar unreachable");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_given_in_the_settings_are_used_without_asking_crossbar() {
    let crossbar = CrossbarStandIn::start().await;
    let config = KazooConfig {
        api_key: None,
        public_keys: vec![format!("{KID}={}", kazoo::fixture_path("public_key.pem").display())],
        ..kazoo_config(&crossbar)
    };
    let app = kazoo_app(TestDatabase::sqlite().await, config).await;
    assert_eq!(list(&app, SUB1, &token("user_auth")).await.status, StatusCode::OK);
    assert_401(&list(&app, SUB1, &token("wrong_kid")).await, "an unknown key id");
    assert_401(&list(&app, SUB1, &kazoo::rotated_token("user_auth")).await, "another key");
    assert!(crossbar.requests().is_empty(), "Crossbar was never called: {:?}", crossbar.requests());
}

#[tokio::test]
async fn kazoo_mode_refuses_to_start_half_configured() {
    let start = |config: KazooConfig| async move { KazooTokens::start(&config).await.map(|tokens| tokens.is_some()) };
    assert!(matches!(start(KazooConfig::default()).await, Ok(false)), "off without a Crossbar URL");
    let crossbar = Some("http://127.0.0.1:9".to_owned());
    let forgotten = KazooConfig { api_key: Some("key".into()), ..KazooConfig::default() };
    assert!(matches!(start(forgotten).await, Err(KazooSetupError::WithoutCrossbar("api_key"))));
    let keyless = KazooConfig { crossbar_url: crossbar.clone(), ..KazooConfig::default() };
    assert!(matches!(start(keyless).await, Err(KazooSetupError::NoKeySource)));
    let missing = KazooConfig {
        crossbar_url: crossbar.clone(),
        public_keys: vec![format!("{KID}=/nonexistent/key.pem")],
        ..KazooConfig::default()
    };
    assert!(matches!(start(missing).await, Err(KazooSetupError::KeyFile { .. })));
    let private = KazooConfig {
        crossbar_url: crossbar.clone(),
        public_keys: vec![format!("{KID}={}", kazoo::fixture_path("private_key.pem").display())],
        ..KazooConfig::default()
    };
    assert!(matches!(start(private).await, Err(KazooSetupError::KeyPem { .. })));
    // Crossbar down at start is no reason not to start: keys are fetched when tokens need them.
    let down = KazooConfig { crossbar_url: crossbar, api_key: Some("key".into()), ..KazooConfig::default() };
    assert!(matches!(start(down).await, Ok(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cors_preflight_allows_every_header_monster_ui_sends() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let requested = "content-type,x-auth-token,x-kazoo-cluster-id,if-match,x-http-method-override,cache-control";
    let preflight = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}{}", app.client.base_url(), hooks(&app.master_id)))
        .header("Origin", "https://monster.example.com")
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", requested)
        .send()
        .await
        .expect("an answer");
    assert_eq!(preflight.status(), StatusCode::OK);
    let header = |name: &str| {
        preflight.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_ascii_lowercase()
    };
    let allowed: Vec<String> = header("access-control-allow-headers").split(',').map(|h| h.trim().to_owned()).collect();
    for wanted in requested.split(',') {
        assert!(allowed.iter().any(|header| header == wanted), "{wanted} not in {allowed:?}");
    }
    assert!(header("access-control-allow-methods").contains("put"));
    assert_eq!(header("access-control-allow-origin"), "*");
    let exposed = header("access-control-expose-headers");
    for wanted in ["x-auth-token", "x-request-id", "x-kazoo-cluster-id", "location", "etag"] {
        assert!(exposed.contains(wanted), "{wanted} not exposed: {exposed}");
    }
}
