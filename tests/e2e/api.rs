//! The REST API through the real binary: PostgreSQL for `webhooks api`, SQLite for `webhooks serve`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::random_id;
use webhooks_test_support::db::TestDatabase;

use crate::process::{Webhooks, rabbitmq, run_to_end};

#[tokio::test(flavor = "multi_thread")]
async fn the_api_binary_on_postgres_serves_every_endpoint_to_a_real_client() {
    let database = TestDatabase::postgres().await;
    let master_key = "e2e-master-key-0123456789abcdef".to_owned();
    let mut env = vec![
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", master_key.clone()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
    ];
    env.extend(rabbitmq(&format!("e2e-api-{}", random_id())));
    assert!(run_to_end(&["migrate"], &env).await.success(), "`webhooks migrate` exits 0");
    let webhooks = Webhooks::start(&["api"], &env).await;
    assert!(webhooks.stdout_lines.is_empty(), "a configured master key is never printed");
    let client = &webhooks.client;

    let master = client.token(&master_key).await;
    let whoami = client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": master_key}}))).await;
    let master_id = whoami.data()["account_id"].as_str().expect("the master id").to_owned();
    let wrong_key = client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": "nope"}}))).await;
    assert_eq!(wrong_key.status, StatusCode::UNAUTHORIZED);

    // A reseller with two customers.
    let (reseller, reseller_key) = client.create_account(&master, &master_id, "reseller").await;
    let reseller_token = client.token(&reseller_key).await;
    let (alpha, alpha_key) = client.create_account(&reseller_token, &reseller, "alpha").await;
    let (beta, beta_key) = client.create_account(&reseller_token, &reseller, "beta").await;
    let alpha_token = client.token(&alpha_key).await;
    let beta_token = client.token(&beta_key).await;
    for (path, expected) in [
        (format!("/v2/accounts/{reseller}"), StatusCode::OK),
        (format!("/v2/accounts/{reseller}/children"), StatusCode::OK),
        (format!("/v2/accounts/{reseller}/descendants"), StatusCode::OK),
        (format!("/v2/accounts/{alpha}/api_key"), StatusCode::OK),
    ] {
        assert_eq!(client.send(Method::GET, &path, Some(&reseller_token), None).await.status, expected, "{path}");
    }

    let hooks = format!("/v2/accounts/{alpha}/webhooks");
    let body = json!({"data": {"name": "answered", "uri": "http://127.0.0.1:9/answered", "hook": "channel_answer", "format": "json"}});
    let id = client.create_hook(&alpha_token, &alpha, &body["data"]).await;
    let hook = format!("{hooks}/{id}");

    let listed = client.send(Method::GET, &hooks, Some(&alpha_token), None).await;
    assert_eq!(
        listed.data(),
        &json!([{"id": id, "hook": "channel_answer", "name": "answered", "uri": "http://127.0.0.1:9/answered", "enabled": true}])
    );
    let fetched = client.send(Method::GET, &hook, Some(&reseller_token), None).await;
    assert_eq!(fetched.data()["format"], "json");
    let patched = client.send(Method::PATCH, &hook, Some(&alpha_token), Some(&json!({"data": {"retries": 4}}))).await;
    assert_eq!(patched.data()["retries"], 4);
    let replaced = client.send(Method::POST, &hook, Some(&alpha_token), Some(&body)).await;
    assert_eq!(replaced.data()["retries"], 2);
    let reenabled = client
        .send(
            Method::PATCH,
            &format!("/v2/accounts/{reseller}/descendants/webhooks"),
            Some(&reseller_token),
            Some(&json!({"data": {"re-enable": true}})),
        )
        .await;
    assert_eq!(reenabled.data(), &json!("hooks updated"));
    let attempts = client.send(Method::GET, &format!("{hook}/attempts"), Some(&alpha_token), None).await;
    assert_eq!((attempts.status, attempts.data()), (StatusCode::OK, &json!([])));
    let account_attempts = client.send(Method::GET, &format!("{hooks}/attempts"), Some(&alpha_token), None).await;
    assert_eq!(account_attempts.status, StatusCode::OK);
    let samples = client.send(Method::GET, &format!("{hooks}/samples"), Some(&alpha_token), None).await;
    assert_eq!(samples.data().as_array().map(Vec::len), Some(7));
    let sample =
        client.send(Method::GET, &format!("{hooks}/samples/webhooks_channel_answer"), Some(&alpha_token), None).await;
    assert_eq!(sample.data()[0]["hook_event"], "channel_answer");
    let definitions = client.send(Method::GET, "/v2/webhooks", None, None).await;
    assert_eq!(definitions.body["page_size"], 9);

    // Tenant isolation between siblings; the parent reaches both.
    assert_eq!(client.send(Method::GET, &hook, Some(&beta_token), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        client.send(Method::GET, &format!("/v2/accounts/{beta}/webhooks/{id}"), Some(&beta_token), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.send(Method::GET, &format!("/v2/accounts/{reseller}"), Some(&beta_token), None).await.status,
        StatusCode::FORBIDDEN
    );

    // Each error class: method, path, token, body, expected status.
    type Case<'a> = (Method, String, Option<&'a str>, Option<Value>, StatusCode);
    let errors: Vec<Case> = vec![
        (Method::GET, hooks.clone(), None, None, StatusCode::UNAUTHORIZED),
        (Method::GET, hooks.clone(), Some("bad.token.here"), None, StatusCode::UNAUTHORIZED),
        (Method::DELETE, hooks.clone(), Some(&alpha_token), None, StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/v2/accounts/xyz/webhooks".into(), Some(&alpha_token), None, StatusCode::NOT_FOUND),
        (
            Method::GET,
            format!("{hooks}/0123456789abcdef0123456789abcdef"),
            Some(&alpha_token),
            None,
            StatusCode::NOT_FOUND,
        ),
        (Method::PUT, hooks.clone(), Some(&alpha_token), Some(json!({"data": {"name": "x"}})), StatusCode::BAD_REQUEST),
        (Method::PUT, "/v2/webhooks".into(), Some(&alpha_token), Some(json!({"data": {}})), StatusCode::FORBIDDEN),
    ];
    for (method, path, token, body, status) in errors {
        let answer = client.send(method.clone(), &path, token, body.as_ref()).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        assert_eq!(answer.body["error"], status.as_str());
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }

    let deleted = client.send(Method::DELETE, &hook, Some(&alpha_token), None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let account_deleted =
        client.send(Method::DELETE, &format!("/v2/accounts/{beta}"), Some(&reseller_token), None).await;
    assert_eq!(account_deleted.status, StatusCode::OK);
    assert!(webhooks.stop().await.success(), "SIGTERM stops the API cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_api_replicas_start_together_on_one_database_and_accept_each_others_tokens() {
    let database = TestDatabase::postgres().await;
    let mut env = vec![
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", "shared-master-key".to_owned()),
    ];
    env.extend(rabbitmq(&format!("e2e-replicas-{}", random_id())));
    let (first, second) = tokio::join!(Webhooks::start(&["api"], &env), Webhooks::start(&["api"], &env));
    let token = first.client.token("shared-master-key").await;
    let whoami = first
        .client
        .send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": "shared-master-key"}})))
        .await;
    let master_id = whoami.data()["account_id"].as_str().expect("an id").to_owned();
    let answer =
        second.client.send(Method::GET, &format!("/v2/accounts/{master_id}/webhooks"), Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK, "a token issued by one replica works on the other");
    let other = second
        .client
        .send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": "shared-master-key"}})))
        .await;
    assert_eq!(other.data()["account_id"], master_id.as_str(), "one master account for both");

    // A listing one replica keeps in memory follows a change made through the other.
    let hooks = format!("/v2/accounts/{master_id}/webhooks");
    let before = second.client.send(Method::GET, &hooks, Some(&token), None).await;
    assert_eq!(before.data(), &json!([]));
    let body = json!({"data": {"name": "n", "uri": "https://hooks.example.com/n", "hook": "channel_create"}});
    let created = first.client.send(Method::PUT, &hooks, Some(&token), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let listed = second.client.send(Method::GET, &hooks, Some(&token), None).await;
        if listed.data().as_array().is_some_and(|hooks| hooks.len() == 1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the other replica still lists {}", listed.body);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_sqlite_prints_a_generated_master_key_once() {
    let directory = std::env::temp_dir().join(format!("webhooks-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("a temp dir");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos();
    let path = directory.join(format!("serve-{nanos}.db"));
    let env = [("WEBHOOKS_DATABASE_URL", format!("sqlite://{}", path.display()))];

    let first = Webhooks::start(&[], &env).await;
    let line =
        first.stdout_lines.iter().find(|line| line.contains("API key")).expect("the key is printed at first start");
    let key = line.rsplit(' ').next().expect("the key ends the line").to_owned();
    assert_eq!(key.len(), 64);
    first.client.token(&key).await;
    assert!(first.stop().await.success());

    let second = Webhooks::start(&["serve"], &env).await;
    assert!(second.stdout_lines.iter().all(|line| !line.contains("API key")), "printed only once");
    second.client.token(&key).await;
    assert!(second.stop().await.success());
    let _ = std::fs::remove_file(&path);
}

/// With an admin address, the operational endpoints are served there and nowhere else: the API's
/// port answers them as any unknown path; a lone dispatcher serves them there and binds nothing
/// else.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_address_keeps_probes_and_metrics_off_the_api_port() {
    let database = TestDatabase::postgres().await;
    let admin = format!("127.0.0.1:{}", crate::process::free_port());
    let mut env = vec![("WEBHOOKS_DATABASE_URL", database.url().to_owned()), ("WEBHOOKS_ADMIN_LISTEN", admin.clone())];
    let serve = Webhooks::start(&["serve"], &env).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let public = reqwest::get(format!("{}{path}", serve.client.base_url())).await.expect("the API answers");
        assert_eq!(public.status(), StatusCode::NOT_FOUND, "{path} on the API's port");
        let served = reqwest::get(format!("http://{admin}{path}")).await.expect("the admin address answers");
        assert_eq!(served.status(), StatusCode::OK, "{path} on the admin address");
    }
    assert!(serve.stop().await.success());

    env.extend(rabbitmq(&format!("e2e-admin-{}", random_id())));
    let listen = format!("127.0.0.1:{}", crate::process::free_port());
    env.push(("WEBHOOKS_LISTEN", listen.clone()));
    let mut dispatcher = tokio::process::Command::new(crate::process::binary())
        .arg("dispatcher")
        .env_clear()
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("the dispatcher starts");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !reqwest::get(format!("http://{admin}/readyz")).await.is_ok_and(|answer| answer.status().is_success()) {
        assert!(tokio::time::Instant::now() < deadline, "the dispatcher was not ready on its admin address");
        assert!(dispatcher.try_wait().expect("waits").is_none(), "the dispatcher exited");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(tokio::net::TcpStream::connect(&listen).await.is_err(), "a lone dispatcher bound the API's address");
    dispatcher.kill().await.expect("the dispatcher stops");
}
