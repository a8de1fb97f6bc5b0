//! Real answers, successes and errors, against the schema documented for their path, method and
//! status.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use webhooks_model::attempt::{Answer as CalloutAnswer, SentRequest, attempt_document};
use webhooks_model::job::DeliveryJob;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_storage::NewAttempt;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::db::TestDatabase;

use super::{OpenApi, concrete, repository_path};

#[tokio::test(flavor = "multi_thread")]
async fn real_answers_conform_to_the_description() {
    let api = OpenApi::load();
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let client = &app.client;
    let account = app.master_id.as_str();
    let hooks = "/v2/accounts/{account_id}/webhooks";
    let hook_path = "/v2/accounts/{account_id}/webhooks/{webhook_id}";
    let at = |template: &str, hook: &str| concrete(template, account, hook, "webhooks_channel_create");

    let auth =
        client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": app.master_key}}))).await;
    api.check(&auth, "/v2/api_auth", &Method::PUT);
    let token = auth.body["auth_token"].as_str().expect("a token").to_owned();
    let token = Some(token.as_str());

    let hook_body = json!({"data": {"name": "New calls", "uri": "https://hooks.example.com/new", "hook": "channel_create",
        "retries": "3", "custom_data": {"crm": "zendesk"}, "ui_metadata": {"origin": "monster"}, "group": "crm",
        "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}});
    let created = client.send(Method::PUT, &at(hooks, ""), token, Some(&hook_body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    api.check(&created, hooks, &Method::PUT);
    let id = created.data()["id"].as_str().expect("an id").to_owned();
    let job = DeliveryJob {
        event_id: "9c1f0a7b3e".into(),
        hook_id: id.parse().expect("a hook id"),
        account_id: account.parse().expect("an account id"),
        hook_event: "CHANNEL_CREATE".into(),
        uri: "https://hooks.example.com/new".into(),
        http_verb: HttpVerb::Post,
        format: Format::FormData,
        retries: 3,
        attempt: 0,
        custom_request_headers: Map::new(),
        custom_data: created.data()["custom_data"].as_object().cloned(),
        payload: Default::default(),
        published_at_ms: 0,
        test: false,
        trace_parent: None,
    };

    for (method, path, body) in [
        (Method::GET, hooks, None),
        (Method::GET, hook_path, None),
        (Method::PATCH, hook_path, Some(json!({"data": {"enabled": false}}))),
        (Method::POST, hook_path, Some(hook_body.clone())),
    ] {
        let answer = client.send(method.clone(), &at(path, &id), token, body.as_ref()).await;
        assert!(answer.status.is_success(), "{method} {path}: {}", answer.body);
        api.check(&answer, path, &method);
    }
    let listed = client
        .send(Method::GET, &format!("{}?page_size=1&filter_hook=channel_create", at(hooks, "")), token, None)
        .await;
    api.check(&listed, hooks, &Method::GET);
    assert_eq!(listed.data().as_array().map(Vec::len), Some(1), "{}", listed.body);

    // Attempts as the dispatcher records them: one answered failure and one client error.
    let now = webhooks_model::time::gregorian_now();
    let headers =
        vec![("X-Hook-ID".to_owned(), id.clone()), ("Content-Type".into(), "application/x-www-form-urlencoded".into())];
    let sent = SentRequest { headers: &headers, body: b"call_id=c1" };
    let answers = [
        CalloutAnswer::Response { status: 500, headers: vec![("Server".into(), "nginx".into())], body: "oops".into() },
        CalloutAnswer::ClientError {
            class: webhooks_model::attempt::OutcomeClass::Connect,
            text: "failed_connect: econnrefused".into(),
        },
    ];
    let attempts: Vec<NewAttempt> = answers
        .iter()
        .enumerate()
        .map(|(index, answer)| NewAttempt {
            id: webhooks_model::ids::random_id(),
            account_id: job.account_id.clone(),
            hook_id: job.hook_id.clone(),
            created: now - 10 + index as i64,
            doc: attempt_document(&job, sent, answer, 2, 40),
            job: None,
        })
        .collect();
    app.store.insert_attempts(&attempts).await.expect("attempts stored");
    for template in
        ["/v2/accounts/{account_id}/webhooks/attempts", "/v2/accounts/{account_id}/webhooks/{webhook_id}/attempts"]
    {
        let answer = client.send(Method::GET, &at(template, &id), token, None).await;
        assert_eq!(answer.data().as_array().map(Vec::len), Some(2), "{template}: {}", answer.body);
        api.check(&answer, template, &Method::GET);
    }
    // No dispatcher runs here: the test callout is published, and answered as pending.
    let test_path = "/v2/accounts/{account_id}/webhooks/{webhook_id}/test";
    let tested = client.send(Method::PUT, &at(test_path, &id), token, None).await;
    assert_eq!(tested.status, StatusCode::ACCEPTED, "{}", tested.body);
    api.check(&tested, test_path, &Method::PUT);
    let bad_window = client
        .send(
            Method::GET,
            &format!("{}?created_from=10&created_to=5", at("/v2/accounts/{account_id}/webhooks/attempts", "")),
            token,
            None,
        )
        .await;
    assert_eq!(bad_window.status, StatusCode::BAD_REQUEST);
    api.check(&bad_window, "/v2/accounts/{account_id}/webhooks/attempts", &Method::GET);

    // The system scope, without a token where none is needed.
    for (template, token) in [
        ("/v2/webhooks", None),
        ("/v2/webhooks", token),
        ("/v2/webhooks/samples", None),
        ("/v2/webhooks/samples/{sample_id}", None),
        ("/v2/accounts/{account_id}/webhooks/samples", token),
        ("/v2/accounts/{account_id}/webhooks/samples/{sample_id}", token),
        ("/healthz", None),
        ("/readyz", None),
        ("/metrics", None),
    ] {
        let answer = client.send(Method::GET, &at(template, ""), token, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{template}: {}", answer.body);
        api.check(&answer, template, &Method::GET);
    }

    // Accounts.
    let child = client
        .send(
            Method::PUT,
            &at("/v2/accounts/{account_id}", ""),
            token,
            Some(&json!({"data": {"name": "Acme", "realm": "acme.example.net"}})),
        )
        .await;
    api.check(&child, "/v2/accounts/{account_id}", &Method::PUT);
    let child_id = child.data()["id"].as_str().expect("an account id").to_owned();
    for template in [
        "/v2/accounts/{account_id}",
        "/v2/accounts/{account_id}/children",
        "/v2/accounts/{account_id}/descendants",
        "/v2/accounts/{account_id}/api_key",
    ] {
        let answer = client.send(Method::GET, &at(template, ""), token, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{template}: {}", answer.body);
        api.check(&answer, template, &Method::GET);
    }
    let reenabled = client
        .send(
            Method::PATCH,
            &at("/v2/accounts/{account_id}/descendants/webhooks", ""),
            token,
            Some(&json!({"data": {"re-enable": true}})),
        )
        .await;
    api.check(&reenabled, "/v2/accounts/{account_id}/descendants/webhooks", &Method::PATCH);
    assert_eq!(reenabled.status, StatusCode::OK);

    // An event handed over HTTP.
    let fixture = std::fs::read_to_string(repository_path("crates/model/fixtures/amqp-events/CHANNEL_CREATE.json"))
        .expect("a fixture");
    let fixture: Value = serde_json::from_str(&fixture).expect("fixture JSON");
    let ingested = client.send(Method::POST, "/v2/events", token, Some(&fixture["body"])).await;
    assert_eq!(ingested.status, StatusCode::ACCEPTED, "{}", ingested.body);
    api.check(&ingested, "/v2/events", &Method::POST);

    // Errors, each in the shape documented for its path.
    let errors = [
        (Method::PUT, hooks, "", token, Some(json!({"data": {"name": "x", "hook": "nope"}})), StatusCode::BAD_REQUEST),
        (Method::GET, hooks, "", None, None, StatusCode::UNAUTHORIZED),
        (Method::GET, hooks, "", Some("not-a-token"), None, StatusCode::UNAUTHORIZED),
        (Method::PUT, "/v2/webhooks", "", token, Some(json!({"data": {}})), StatusCode::FORBIDDEN),
        (Method::GET, hook_path, "0123456789abcdef0123456789abcdef", token, None, StatusCode::NOT_FOUND),
        (
            Method::PUT,
            hooks,
            "",
            token,
            Some(json!({"data": {"name": "big", "padding": "x".repeat(70_000)}})),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (Method::DELETE, "/v2/accounts/{account_id}", "", token, None, StatusCode::FORBIDDEN),
    ];
    for (method, template, hook, token, body, status) in errors {
        let answer = client.send(method.clone(), &at(template, hook), token, body.as_ref()).await;
        assert_eq!(answer.status, status, "{method} {template}: {}", answer.body);
        api.check(&answer, template, &method);
    }
    let unknown_sample = client.send(Method::GET, "/v2/webhooks/samples/nope", None, None).await;
    api.check(&unknown_sample, "/v2/webhooks/samples/{sample_id}", &Method::GET);
    assert_eq!(unknown_sample.status, StatusCode::NOT_FOUND);
    let bad_page = client.send(Method::GET, &format!("{}?page_size=0", at(hooks, "")), token, None).await;
    assert_eq!(bad_page.status, StatusCode::NOT_FOUND);
    api.check(&bad_page, hooks, &Method::GET);
    let wrong_method = client.send(Method::DELETE, &at(hooks, ""), token, None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    api.check_response(&wrong_method, &api.doc["components"]["responses"]["MethodNotAllowed"], "DELETE on webhooks");

    // Deletions last.
    let deleted = client.send(Method::DELETE, &at(hook_path, &id), token, None).await;
    api.check(&deleted, hook_path, &Method::DELETE);
    assert_eq!(deleted.status, StatusCode::OK);
    let gone =
        client.send(Method::DELETE, &concrete("/v2/accounts/{account_id}", &child_id, "", ""), token, None).await;
    api.check(&gone, "/v2/accounts/{account_id}", &Method::DELETE);
    assert_eq!(gone.status, StatusCode::OK);
}
