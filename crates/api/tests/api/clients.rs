//! What real clients do: read the definitions and samples without a token, send what Monster UI
//! and curl send, ask for JSONP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::test_matrix;

use crate::{hook_body, path};

test_matrix!(
    apps;
    definitions_and_samples_need_no_token,
    real_client_habits_are_accepted,
    jsonp_wraps_the_envelope_for_safe_callback_names_only,
);

async fn definitions_and_samples_need_no_token(app: TestApp) {
    let client = &app.client;
    let expected: Value =
        serde_json::from_str(include_str!("../../../model/data/hook-definitions.json")).expect("json");
    let anonymous = client.send(Method::GET, "/v2/webhooks", None, None).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.body["page_size"], 9);
    assert!(anonymous.body.get("version").is_none(), "version only for authenticated requests");
    let items = anonymous.data()[2]["modifiers"]["type"]["items"].as_object().expect("notification types");
    assert!(!items.contains_key("system_alert") && !items.contains_key("webhook_disabled"));
    assert!(items.contains_key("voicemail_new"));

    let token = app.master_token().await;
    let admin = client.send(Method::GET, "/v2/webhooks", Some(&token), None).await;
    assert_eq!(admin.data(), &expected);
    assert!(admin.body["version"].is_string());

    let ids = client.send(Method::GET, "/v2/webhooks/samples", None, None).await;
    assert_eq!(
        ids.data(),
        &json!([
            "webhooks_channel_answer",
            "webhooks_channel_bridge",
            "webhooks_channel_create",
            "webhooks_channel_destroy",
            "webhooks_notifications",
            "webhooks_object",
            "webhooks_parking"
        ])
    );
    let object =
        client.send(Method::GET, "/v2/webhooks/samples/webhooks_object?filter_action=doc_created", None, None).await;
    assert_eq!(object.status, StatusCode::OK);
    assert!(object.body["page_size"].as_u64().is_some_and(|count| count >= 1));
    assert!(object.data().as_array().expect("an array").iter().all(|sample| sample["action"] == "doc_created"));
    let unknown = client.send(Method::GET, "/v2/webhooks/samples/webhooks_nothing", None, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.data(), &json!({"cause": "webhooks_nothing", "message": "bad identifier"}));

    let scoped = client.send(Method::GET, &path(&app.master_id, "/samples/webhooks_parking"), None, None).await;
    assert_eq!(scoped.status, StatusCode::UNAUTHORIZED, "the account-scoped samples need a token");
    let scoped = client.send(Method::GET, &path(&app.master_id, "/samples/webhooks_parking"), Some(&token), None).await;
    assert_eq!(scoped.data()[0]["event_name"], "PARK_PARKED");
}

async fn real_client_habits_are_accepted(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;
    let monster = json!({"data": {"name": "UI hook", "uri": "https://a.example/ui", "hook": "channel_create",
                                  "retries": "2", "enabled": "true", "include_subaccounts": "false",
                                  "ui_metadata": {"version": "4.3", "ui": "monster-ui"}, "group": "sales",
                                  "custom_request_headers": {"X-Tenant": "acme"}}});
    let created = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&monster)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!((&created.data()["retries"], &created.data()["enabled"]), (&json!(2), &json!(true)));
    assert_eq!(created.data()["group"], "sales");
    assert_eq!(created.data()["custom_request_headers"], json!({"X-Tenant": "acme"}));
    let id = created.data()["id"].as_str().expect("an id").to_owned();

    let get_with_body = client
        .send_raw(Method::GET, &path(account, &format!("/{id}")), Some(&token), "application/json", b"{}".to_vec())
        .await;
    assert_eq!(get_with_body.status, StatusCode::OK);
    let delete_with_body = client
        .send(
            Method::DELETE,
            &path(account, &format!("/{id}")),
            Some(&token),
            Some(&json!({"data": {"ui_metadata": {"ui": "monster-ui"}}})),
        )
        .await;
    assert_eq!(delete_with_body.status, StatusCode::OK);

    let private = json!({"data": {"name": "p", "uri": "https://a.example/p", "hook": "channel_create", "id": "0123456789abcdef0123456789abcdef",
                                  "pvt_account_id": "x", "_rev": "1-x", "disable_reason": "none"}});
    let created = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&private)).await;
    assert_ne!(created.data()["id"], "0123456789abcdef0123456789abcdef", "the server assigns ids");
    for key in ["pvt_account_id", "_rev", "disable_reason"] {
        assert!(created.data().get(key).is_none(), "{key} is never stored");
    }

    let curl_style = client
        .send_raw(
            Method::PUT,
            &path(account, ""),
            Some(&token),
            "application/x-www-form-urlencoded",
            hook_body().to_string().into_bytes(),
        )
        .await;
    assert_eq!(
        curl_style.status,
        StatusCode::CREATED,
        "JSON sent with curl's default form content type: {}",
        curl_style.body
    );
    let form = client
        .send_raw(
            Method::PUT,
            "/v2/api_auth",
            None,
            "application/x-www-form-urlencoded",
            format!("api_key={}", app.master_key).into_bytes(),
        )
        .await;
    assert_eq!(form.status, StatusCode::CREATED, "a form body is read as the data object: {}", form.body);

    let tunnelled = client.send(Method::POST, &path(account, "?verb=PUT"), Some(&token), Some(&hook_body())).await;
    assert_eq!(tunnelled.status, StatusCode::CREATED, "a method tunnelled through POST");
    let hook = tunnelled.data()["id"].as_str().expect("an id").to_owned();
    let hook_path = path(account, &format!("/{hook}"));
    // A verb that names no method is refused, not served as the POST; a tunnelled OPTIONS is no
    // preflight, and a method the path does not serve answers 405.
    for (verb, rule) in [(json!(5), "type"), (json!({}), "type"), (json!(""), "pattern"), (json!("a b"), "pattern")] {
        let mut body = hook_body();
        body["verb"] = verb.clone();
        let refused = client.send(Method::POST, &hook_path, Some(&token), Some(&body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "verb {verb}: {}", refused.body);
        assert_eq!(refused.data()["verb"][rule]["value"], verb, "{}", refused.body);
    }
    for verb in ["OPTIONS", "put", "then"] {
        let mut body = hook_body();
        body["verb"] = json!(verb);
        let refused = client.send(Method::POST, &hook_path, Some(&token), Some(&body)).await;
        assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED, "verb {verb}: {}", refused.body);
        assert_eq!(refused.body["message"], "invalid_method");
    }

    let request_id = reqwest::Client::new()
        .get(format!("{}/v2/webhooks", client.base_url()))
        .header("X-Request-ID", "abc-123")
        .send()
        .await
        .expect("an answer");
    assert_eq!(request_id.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc-123"));
    let body: Value = request_id.json().await.expect("json");
    assert_eq!(body["request_id"], "abc-123");

    let options = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}{}", client.base_url(), path(account, "")))
        .send()
        .await
        .expect("an answer");
    assert_eq!(options.status(), StatusCode::OK, "CORS preflight needs no token");
}

async fn jsonp_wraps_the_envelope_for_safe_callback_names_only(app: TestApp) {
    let get = |query: &'static str| {
        let url = format!("{}/v2/webhooks{query}", app.client.base_url());
        async move { reqwest::get(url).await.expect("an answer") }
    };
    let wrapped = get("?jsonp=Monster.callbacks.hooks_1").await;
    assert_eq!(wrapped.status(), StatusCode::OK);
    assert_eq!(wrapped.headers()["content-type"], "application/javascript");
    let body = wrapped.text().await.expect("a body");
    let json = body
        .strip_prefix("Monster.callbacks.hooks_1(")
        .and_then(|rest| rest.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not a JSONP call: {body}"));
    let envelope: Value = serde_json::from_str(json).expect("the envelope inside");
    assert_eq!(envelope["status"], "success");
    assert!(envelope["data"].as_array().is_some_and(|hooks| !hooks.is_empty()));

    for unsafe_name in ["?jsonp=alert(1)//", "?jsonp=a-b", "?jsonp=1abc", "?jsonp="] {
        let plain = get(unsafe_name).await;
        assert_eq!(plain.headers()["content-type"], "application/json", "{unsafe_name}");
        let envelope: Value = plain.json().await.expect("plain JSON");
        assert_eq!(envelope["status"], "success", "{unsafe_name}");
    }
}
