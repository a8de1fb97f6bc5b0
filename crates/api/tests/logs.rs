//! Logs: with JSON output, a request's log lines carry its request id (the one the client sees in
//! `X-Request-ID`), the authorized account, and the handler's own fields; and at every level,
//! `trace` included, no API key or signing secret reaches a log line, nor any answer but the one
//! that must show it; in Kazoo mode, neither does Kazoo's master API key, the service's Crossbar
//! session or a Kazoo token.
//!
//! A test binary has one global subscriber: this one captures everything, from every crate at
//! every level, and each test reads what concerns it. Hence a binary of its own, apart from the
//! other API tests (`tests/api`), whose helpers set a subscriber of their own.

use std::sync::OnceLock;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tracing_subscriber::util::SubscriberInitExt;
use webhooks_bus::{Bus, DISPATCH_ROUTING_KEY, Topology};
use webhooks_model::config::KazooConfig;
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::{Backend, Observer, connect, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::http::Answer;
use webhooks_test_support::kazoo::{self, CrossbarStandIn, MASTER_API_KEY};
use webhooks_test_support::logs::{CapturedLogs, secret_forms, signing_secret};
use webhooks_test_support::store::kept_failure;

/// Every log line of this binary so far, as JSON, from every crate at every level.
fn logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        logs.subscriber().init();
        logs
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_json_log_lines_carry_its_request_id_and_account() {
    let logs = logs();
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let master = app.master_token().await;
    let (account, key) = app.client.create_account(&master, &app.master_id, "logged").await;
    let token = app.client.token(&key).await;
    let body = json!({"data": {"name": "n", "uri": "https://hooks.example.com/in", "hook": "channel_create"}});
    let created =
        app.client.send(Method::PUT, &format!("/v2/accounts/{account}/webhooks"), Some(&token), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let request_id = created.header("x-request-id").expect("a request id").to_owned();
    let hook_id = created.data()["id"].as_str().expect("an id").to_owned();

    let text = logs.text();
    let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect();
    let created_line = lines
        .iter()
        .find(|line| line["fields"]["message"] == "webhook created" && line["fields"]["hook.id"] == json!(hook_id))
        .unwrap_or_else(|| panic!("no 'webhook created' line in {text}"));
    assert_eq!(created_line["level"], "INFO");
    let span = &created_line["span"];
    assert_eq!(
        (&span["name"], &span["request.id"], &span["http.method"], &span["account.id"]),
        (&json!("http.request"), &json!(request_id), &json!("PUT"), &json!(account))
    );
    assert_eq!(span["http.path"], json!(format!("/v2/accounts/{account}/webhooks")));
}

/// What the API answered, kept to be searched.
#[derive(Default)]
struct Answers(Vec<String>);

impl Answers {
    /// Sends a request and keeps its answer (headers and body).
    async fn send(
        &mut self,
        app: &TestApp,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let answer = app.client.send(method.clone(), path, token, body.as_ref()).await;
        self.0.push(format!("{method} {path}: {:?} {}", answer.headers, answer.body));
        answer
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_api_key_or_signing_secret_reaches_a_log_line_or_an_answer() {
    let logs = logs();
    let bus = connect(Backend::InProcess, &unique_prefix("test-secrets")).await;
    // No dispatcher runs: a test callout answers at once that it is pending.
    let mut settings = TestApp::settings();
    settings.api.test_wait_seconds = 0;
    let app = TestApp::spawn_with(TestDatabase::sqlite().await, bus, settings).await;
    let mut jobs = Observer::bind(&app.bus, &app.bus.topology().jobs_exchange(), DISPATCH_ROUTING_KEY).await;
    let mut answers = Answers::default();
    let auth = |key: &str| Some(json!({"data": {"api_key": key}}));

    // Keys: the master's, a sub-account's, and one no account has.
    let master_auth = answers.send(&app, Method::PUT, "/v2/api_auth", None, auth(&app.master_key)).await;
    assert_eq!(master_auth.status, StatusCode::CREATED, "{}", master_auth.body);
    let master = master_auth.body["auth_token"].as_str().expect("a token").to_owned();
    let form = app
        .client
        .send_raw(
            Method::PUT,
            "/v2/api_auth",
            None,
            "application/x-www-form-urlencoded",
            format!("api_key={}", app.master_key).into_bytes(),
        )
        .await;
    assert_eq!(form.status, StatusCode::CREATED, "{}", form.body);
    answers.0.push(format!("form api_auth: {:?} {}", form.headers, form.body));
    let wrong_key = webhooks_api::accounts::generate_api_key();
    let refused = answers.send(&app, Method::PUT, "/v2/api_auth", None, auth(&wrong_key)).await;
    assert_eq!((refused.status, refused.data()), (StatusCode::UNAUTHORIZED, &json!({})));

    let parent = format!("/v2/accounts/{}", app.master_id);
    let created =
        answers.send(&app, Method::PUT, &parent, Some(&master), Some(json!({"data": {"name": "tenant"}}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let account: AccountId = created.data()["id"].as_str().expect("an id").parse().expect("an account id");
    let account_path = format!("/v2/accounts/{account}");
    // The one answer that shows a key, as Crossbar's does: not searched, but checked.
    let shown = app.client.send(Method::GET, &format!("{account_path}/api_key"), Some(&master), None).await;
    let key = shown.data()["api_key"].as_str().expect("a key").to_owned();
    assert_eq!(app.store.account(&account).await.expect("read").expect("stored").api_key, key);
    let auth_answer = answers.send(&app, Method::PUT, "/v2/api_auth", None, auth(&key)).await;
    let token = auth_answer.body["auth_token"].as_str().expect("a token").to_owned();
    for (method, path, caller, body) in [
        (Method::GET, account_path.clone(), &token, None),
        (Method::POST, account_path.clone(), &token, Some(json!({"data": {"name": "tenant", "ui_flags": {"a": 1}}}))),
        (Method::PATCH, account_path.clone(), &token, Some(json!({"data": {"name": "renamed"}}))),
        (Method::GET, format!("{parent}/children"), &master, None),
        (Method::GET, format!("{parent}/descendants"), &master, None),
    ] {
        let answer = answers.send(&app, method, &path, Some(caller), body).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.body);
    }

    // Signing secrets: set on creation, replaced, patched, refused when malformed.
    let (first, first_forms) = signing_secret(b"first key of the secrets test!!!");
    let (second, second_forms) = signing_secret(b"second key of the secrets test!!");
    let (third, third_forms) = signing_secret(b"third key of the secrets test!!!");
    let (malformed, malformed_forms) = signing_secret(b"short");
    let hooks = format!("{account_path}/webhooks");
    let hook_data = |secret: &str| {
        json!({"data": {"name": "signed", "uri": "http://127.0.0.1:9/signed", "hook": "channel_create",
                        "signing_secret": secret}})
    };
    let hook = answers.send(&app, Method::PUT, &hooks, Some(&token), Some(hook_data(&first))).await;
    assert_eq!((hook.status, &hook.data()["signed"]), (StatusCode::CREATED, &json!(true)), "{}", hook.body);
    let hook_id: WebhookId = hook.data()["id"].as_str().expect("an id").parse().expect("a hook id");
    let hook_path = format!("{hooks}/{hook_id}");
    let replaced = answers.send(&app, Method::POST, &hook_path, Some(&token), Some(hook_data(&second))).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    let patch = |secret: &str| Some(json!({"data": {"signing_secret": secret}}));
    let patched = answers.send(&app, Method::PATCH, &hook_path, Some(&token), patch(&third)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let refused = answers.send(&app, Method::PATCH, &hook_path, Some(&token), patch(&malformed)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(app.store.signing_secret(&hook_id).await.expect("read").as_deref(), Some(third.as_str()));

    // Every read of the hook, and what is published for it.
    let attempt = kept_failure(&account, &hook_id, &random_id());
    app.store.insert_attempts(std::slice::from_ref(&attempt)).await.expect("stored");
    for path in [
        hooks.clone(),
        format!("/v2/accounts/{account}/descendants/webhooks"),
        hook_path.clone(),
        format!("{hook_path}/attempts"),
        format!("{hooks}/attempts"),
    ] {
        let answer = answers.send(&app, Method::GET, &path, Some(&token), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
    let mut published = Vec::new();
    for (path, body) in [
        (format!("{hook_path}/test"), None),
        (format!("{hook_path}/attempts/{}/resend", attempt.id), None),
        (format!("{hook_path}/attempts/replay"), Some(json!({"data": {"since": 0}}))),
    ] {
        let answer = answers.send(&app, Method::PUT, &path, Some(&token), body).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{path}: {}", answer.body);
        let (_, body) = jobs.next().await;
        published.push(String::from_utf8(body).expect("a JSON job batch"));
    }
    let deleted = answers.send(&app, Method::DELETE, &hook_path, Some(&token), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let gone = answers.send(&app, Method::DELETE, &account_path, Some(&master), None).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);

    let token_secret = app.store.setting("auth_token_secret").await.expect("read").expect("the token secret");
    let secrets = [
        ("the master's API key", secret_forms(app.master_key.as_bytes())),
        ("the sub-account's API key", secret_forms(key.as_bytes())),
        ("a key of no account", secret_forms(wrong_key.as_bytes())),
        ("the token signing secret", secret_forms(token_secret.as_bytes())),
        ("the first signing secret", first_forms),
        ("the second signing secret", second_forms),
        ("the third signing secret", third_forms),
        ("a malformed signing secret", malformed_forms),
    ];
    let text = logs.text();
    // The search finds what is there: the account is named at trace and info level.
    assert!(text.contains(account.as_str()) && text.contains(r#""level":"TRACE""#), "logs are captured");
    for (what, forms) in &secrets {
        for form in forms {
            assert!(!text.contains(form.as_str()), "{what} is logged as {form}");
            for answer in answers.0.iter().chain(&published) {
                assert!(!answer.contains(form.as_str()), "{what} is answered as {form} in {answer}");
            }
        }
    }
    // Tokens are credentials too: echoed in the envelope as Crossbar does, but never logged.
    for token in [&master, &token] {
        assert!(!text.contains(token.as_str()), "a token is logged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kazoo_mode_logs_no_master_api_key_session_or_token() {
    let logs = logs();
    let crossbar = CrossbarStandIn::start().await;
    let kazoo = KazooConfig {
        crossbar_url: Some(crossbar.url()),
        api_key: Some(MASTER_API_KEY.to_owned()),
        ..KazooConfig::default()
    };
    let bus = Bus::connect(None, Topology::new("webhooks")).await.expect("the in-process bus starts");
    let settings = webhooks_api::ApiSettings { kazoo, ..TestApp::settings() };
    let app = TestApp::spawn_with(TestDatabase::sqlite().await, bus, settings).await;
    kazoo::create_tree(&app.store).await;
    // A key reset makes the service log in a second time and verify a second token.
    let tokens = [kazoo::token("user_auth"), kazoo::rotated_token("api_auth")];
    let listing = format!("/v2/accounts/{}/webhooks", kazoo::SUB1);
    assert_eq!(app.client.send(Method::GET, &listing, Some(&tokens[0]), None).await.status, StatusCode::OK);
    crossbar.set_key(kazoo::KID, &kazoo::rotated_public_key_pem());
    crossbar.end_sessions();
    assert_eq!(app.client.send(Method::GET, &listing, Some(&tokens[1]), None).await.status, StatusCode::OK);

    let sessions: Vec<String> =
        crossbar.requests().iter().filter_map(|request| request.header("x-auth-token").map(str::to_owned)).collect();
    assert!(sessions.len() >= 2, "two sessions were used: {sessions:?}");
    let text = logs.text();
    assert!(text.contains("logged in to Crossbar"), "logs are captured");
    let secrets = std::iter::once(MASTER_API_KEY.to_owned()).chain(sessions).chain(tokens);
    for secret in secrets {
        for form in secret_forms(secret.as_bytes()) {
            assert!(!text.contains(form.as_str()), "{secret} is logged as {form}");
        }
    }
}
