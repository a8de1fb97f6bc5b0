//! The API over real HTTP on 127.0.0.1, on SQLite and on a real PostgreSQL database.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_storage::NewAttempt;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::{Backend, connect, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::store::create_hook;
use webhooks_test_support::test_matrix;

test_matrix!(
    on_sqlite => TestApp::spawn(TestDatabase::sqlite().await).await,
    on_postgres => TestApp::spawn(TestDatabase::postgres().await).await;
    a_hook_is_created_listed_fetched_replaced_patched_and_deleted,
    every_error_class_has_crossbar_status_and_shape,
    sibling_accounts_are_isolated_and_parents_reach_children,
    listings_paginate_descending_and_filter,
    bulk_reenable_touches_only_auto_disabled_hooks,
    attempts_are_listed_newest_first_within_the_window,
    definitions_and_samples_need_no_token,
    accounts_are_created_read_updated_and_deleted_with_their_hooks,
    real_client_habits_are_accepted,
    signing_secrets_are_write_only_and_shown_as_signed,
    jsonp_wraps_the_envelope_for_safe_callback_names_only,
);

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_answers_503_at_once_and_the_api_recovers_by_itself() {
    let app = TestApp::spawn(TestDatabase::postgres().await).await;
    let token = app.master_token().await;
    let listing = path(&app.master_id, "");
    let created = app.client.send(Method::PUT, &listing, Some(&token), Some(&hook_body())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    app.database().set_reachable(false).await;
    let requests = [
        (Method::GET, listing.clone(), None),
        (Method::PUT, listing.clone(), Some(hook_body())),
        (Method::GET, format!("/v2/accounts/{}/children", app.master_id), None),
        (Method::GET, path(&app.master_id, "/attempts"), None),
    ];
    for (method, route, body) in &requests {
        let started = std::time::Instant::now();
        let answer = app.client.send(method.clone(), route, Some(&token), body.as_ref()).await;
        let waited = started.elapsed();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{method} {route}: {}", answer.body);
        assert_eq!(answer.body["error"], "503");
        assert_eq!(answer.body["message"], "datastore_unreachable");
        assert_eq!(answer.body["status"], "error");
        assert_eq!(answer.body["data"], json!({"message": "datastore timeout"}));
        assert!(answer.header("x-request-id").is_some());
        assert!(waited < std::time::Duration::from_secs(1), "{method} {route} answered after {waited:?}");
    }

    app.database().set_reachable(true).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listed = loop {
        let answer = app.client.send(Method::GET, &listing, Some(&token), None).await;
        if answer.status == StatusCode::OK || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let hooks = listed.data().as_array().map(Vec::len);
    assert_eq!(hooks, Some(1), "the create refused during the outage wrote nothing: {}", listed.body);
}

/// The hook most tests create.
fn hook_document() -> Value {
    json!({"name": "New Calls", "uri": "https://hooks.example.com/calls/new", "http_verb": "post",
           "hook": "channel_create", "retries": 3})
}

/// [`hook_document`] in its envelope.
fn hook_body() -> Value {
    json!({"data": hook_document()})
}

fn path(account: &str, rest: &str) -> String {
    format!("/v2/accounts/{account}/webhooks{rest}")
}

async fn a_hook_is_created_listed_fetched_replaced_patched_and_deleted(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;

    let created = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&hook_body())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.data()["id"].as_str().expect("an id").to_owned();
    assert!(id.parse::<WebhookId>().is_ok());
    assert_eq!(created.header("location"), Some(id.as_str()));
    assert_eq!(
        created.data(),
        &json!({"name": "New Calls", "uri": "https://hooks.example.com/calls/new", "http_verb": "post",
                "hook": "channel_create", "retries": 3, "enabled": true, "format": "form-data",
                "include_internal_legs": true, "id": id})
    );
    let revision = created.body["revision"].as_str().expect("a revision").to_owned();
    assert_eq!(created.body["status"], "success");

    let listed = client.send(Method::GET, &path(account, ""), Some(&token), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.data(),
        &json!([{"id": id, "hook": "channel_create", "name": "New Calls",
                 "uri": "https://hooks.example.com/calls/new", "enabled": true}])
    );
    assert_eq!(listed.body["page_size"], 1);
    assert!(listed.body.get("next_start_key").is_none());

    let fetched = client.send(Method::GET, &path(account, &format!("/{id}")), Some(&token), None).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.data(), created.data());
    assert_eq!(fetched.body["revision"], revision.as_str());
    assert_eq!(fetched.header("etag"), Some(format!("\"{revision}\"").as_str()));

    let replaced = client
        .send(
            Method::POST,
            &path(account, &format!("/{id}")),
            Some(&token),
            Some(&json!({"data": {"name": "Objects", "uri": "http://hooks.example.com/o", "hook": "object",
                                  "custom_data": {"type": "user", "action": "all"}, "ui_metadata": {"origin": "test"}}})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.data()["retries"], 2, "an omitted field reverts to its default");
    assert_eq!(replaced.data()["ui_metadata"], json!({"origin": "test"}));
    assert_ne!(replaced.body["revision"], revision.as_str());

    let patched = client
        .send(
            Method::PATCH,
            &path(account, &format!("/{id}")),
            Some(&token),
            Some(&json!({"data": {"enabled": false, "ui_metadata": null}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.data()["enabled"], false);
    assert_eq!(patched.data()["custom_data"], json!({"type": "user", "action": "all"}));
    assert!(patched.data().get("ui_metadata").is_none(), "null removes a key");

    let deleted = client.send(Method::DELETE, &path(account, &format!("/{id}")), Some(&token), None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.data()["_read_only"], json!({"deleted": true}));
    assert_eq!(deleted.data()["id"], id.as_str());

    let gone = client.send(Method::GET, &path(account, &format!("/{id}")), Some(&token), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.data(), &json!({"cause": id, "message": "bad identifier"}));
    let empty = client.send(Method::GET, &path(account, ""), Some(&token), None).await;
    assert_eq!((empty.data(), &empty.body["page_size"]), (&json!([]), &json!(0)));
}

async fn every_error_class_has_crossbar_status_and_shape(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;
    let check = |answer: &webhooks_test_support::http::Answer, status: StatusCode, message: &str, data: Value| {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.body["status"], "error");
        assert_eq!(answer.body["error"], status.as_str());
        assert_eq!(answer.body["message"], message);
        assert_eq!(answer.body["data"], data);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(answer.header("x-request-id").is_some_and(|id| !id.is_empty()));
    };

    let no_token = client.send(Method::GET, &path(account, ""), None, None).await;
    check(&no_token, StatusCode::UNAUTHORIZED, "invalid_credentials", json!({"message": "invalid credentials"}));

    let bad_token = client.send(Method::GET, &path(account, ""), Some("forged.token.value"), None).await;
    check(&bad_token, StatusCode::UNAUTHORIZED, "invalid credentials", json!({}));

    let wrong_method = client.send(Method::POST, &path(account, ""), Some(&token), Some(&hook_body())).await;
    check(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "invalid_method", json!({"message": "method not allowed"}));
    assert_eq!(wrong_method.header("allow"), Some("GET, PUT, PATCH"));

    let bad_account = client.send(Method::GET, "/v2/accounts/nothex/webhooks", Some(&token), None).await;
    check(&bad_account, StatusCode::NOT_FOUND, "bad identifier", json!({"message": "invalid account_id 'nothex'"}));

    let unknown = AccountId::generate().to_string();
    let unknown_account = client.send(Method::GET, &path(&unknown, ""), Some(&token), None).await;
    check(
        &unknown_account,
        StatusCode::NOT_FOUND,
        "bad_identifier",
        json!({"cause": unknown, "message": "bad identifier"}),
    );

    let hook_id = WebhookId::generate().to_string();
    let unknown_hook = client.send(Method::GET, &path(account, &format!("/{hook_id}")), Some(&token), None).await;
    check(
        &unknown_hook,
        StatusCode::NOT_FOUND,
        "bad_identifier",
        json!({"cause": hook_id, "message": "bad identifier"}),
    );

    let no_path =
        client.send(Method::GET, &path(account, &format!("/{hook_id}/attempts/more")), Some(&token), None).await;
    check(&no_path, StatusCode::NOT_FOUND, "not_found", json!({"message": "not found"}));

    let malformed = client
        .send_raw(Method::PUT, &path(account, ""), Some(&token), "application/json", b"{\"data\": {".to_vec())
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.body["message"], "validation error");
    assert_eq!(malformed.data()["json"]["invalid"]["target"], "body");
    assert!(malformed.data()["json"]["invalid"]["message"].as_str().is_some_and(|text| !text.is_empty()));

    let no_envelope = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&json!({"name": "x"}))).await;
    assert_eq!(no_envelope.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_envelope.data()["data"]["required"]["message"],
        "the request body must be a JSON object with a 'data' member"
    );
    // An array body is read only when the handler asks: the same answers as any other body.
    let array = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&json!([{"data": {}}]))).await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        array.data()["data"]["required"]["message"],
        "the request body must be a JSON object with a 'data' member"
    );
    let broken_array =
        client.send_raw(Method::PUT, &path(account, ""), Some(&token), "application/json", b"[{".to_vec()).await;
    assert_eq!(broken_array.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken_array.data()["json"]["invalid"]["message"], "EOF while parsing an object at line 1 column 2");

    let huge = json!({"data": {"name": "x".repeat(70 * 1024)}});
    let too_large = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&huge)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.body["error"], "413");

    let invalid = client
        .send(Method::PUT, &path(account, ""), Some(&token), Some(&json!({"data": {"uri": "https://a.example", "hook": "channel_create", "http_verb": "delete", "retries": 9}})))
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.body["message"], "validation error");
    assert_eq!(
        invalid.data()["name"],
        json!({"required": {"message": "Field is required but missing", "value": "name"}})
    );
    assert_eq!(invalid.data()["http_verb"]["enum"]["target"], json!(["get", "post", "put"]));
    assert_eq!(
        invalid.data()["retries"],
        json!({"maximum": {"message": "Value must be at most 4", "target": 4, "value": 9}})
    );

    let replace_missing =
        client.send(Method::POST, &path(account, &format!("/{hook_id}")), Some(&token), Some(&hook_body())).await;
    assert_eq!(replace_missing.status, StatusCode::NOT_FOUND, "a valid body for a missing hook is 404");
    let replace_invalid = client
        .send(Method::POST, &path(account, &format!("/{hook_id}")), Some(&token), Some(&json!({"data": {}})))
        .await;
    assert_eq!(replace_invalid.status, StatusCode::BAD_REQUEST, "validation comes before the existence check");

    let page = client.send(Method::GET, &path(account, "?page_size=0"), Some(&token), None).await;
    check(&page, StatusCode::NOT_FOUND, "faulty_request", json!({"message": "page size must be at least 1"}));

    let system_write = client.send(Method::PUT, "/v2/webhooks", None, Some(&hook_body())).await;
    assert_eq!(system_write.status, StatusCode::UNAUTHORIZED);
    let system_write = client.send(Method::PUT, "/v2/webhooks", Some(&token), Some(&hook_body())).await;
    check(&system_write, StatusCode::FORBIDDEN, "forbidden", json!({"message": "forbidden"}));
}

async fn sibling_accounts_are_isolated_and_parents_reach_children(app: TestApp) {
    let master = app.master_token().await;
    let client = &app.client;
    let (parent, parent_key) = client.create_account(&master, &app.master_id, "reseller").await;
    let parent_token = client.token(&parent_key).await;
    let (left, left_key) = client.create_account(&parent_token, &parent, "left").await;
    let (right, right_key) = client.create_account(&parent_token, &parent, "right").await;
    let left_token = client.token(&left_key).await;
    let right_token = client.token(&right_key).await;

    let hook = client.create_hook(&left_token, &left, &hook_document()).await;

    for (method, body) in [(Method::GET, None), (Method::PUT, Some(hook_body()))] {
        let answer = client.send(method, &path(&left, ""), Some(&right_token), body.as_ref()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "a sibling is refused");
    }
    let up = client.send(Method::GET, &path(&parent, ""), Some(&left_token), None).await;
    assert_eq!(up.status, StatusCode::FORBIDDEN, "a child cannot act on its parent");

    let through_sibling = client.send(Method::GET, &path(&right, &format!("/{hook}")), Some(&right_token), None).await;
    assert_eq!(through_sibling.status, StatusCode::NOT_FOUND, "a hook is reachable only under its own account");
    let delete_through_sibling =
        client.send(Method::DELETE, &path(&right, &format!("/{hook}")), Some(&right_token), None).await;
    assert_eq!(delete_through_sibling.status, StatusCode::NOT_FOUND);

    let by_parent = client.send(Method::GET, &path(&left, &format!("/{hook}")), Some(&parent_token), None).await;
    assert_eq!(by_parent.status, StatusCode::OK);
    let by_master = client.send(Method::GET, &path(&left, &format!("/{hook}")), Some(&master), None).await;
    assert_eq!(by_master.status, StatusCode::OK);
    let parent_list = client.send(Method::GET, &path(&parent, ""), Some(&parent_token), None).await;
    assert_eq!(parent_list.data(), &json!([]), "a listing holds the account's own hooks only");
}

async fn listings_paginate_descending_and_filter(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;
    let mut ids = Vec::new();
    for index in 0..5 {
        let hook = if index % 2 == 0 { "channel_create" } else { "channel_answer" };
        let document = json!({"name": format!("hook {index}"), "uri": "https://a.example/x", "hook": hook, "group": "g"});
        ids.push(client.create_hook(&token, account, &document).await.to_string());
    }
    ids.sort();
    ids.reverse();

    let mut seen = Vec::new();
    let mut start_key: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &start_key {
            Some(key) => format!("?page_size=2&start_key={key}"),
            None => "?page_size=2".to_owned(),
        };
        let page = client.send(Method::GET, &path(account, &query), Some(&token), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        for item in page.data().as_array().expect("an array") {
            assert_eq!(item["group"], "g");
            seen.push(item["id"].as_str().expect("an id").to_owned());
        }
        match page.body.get("next_start_key").and_then(Value::as_str) {
            Some(next) => start_key = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!((pages, &seen), (3, &ids), "three pages, descending by id");

    let ascending =
        client.send(Method::GET, &path(account, "?paginate=false&ascending=true"), Some(&token), None).await;
    let ascending_ids: Vec<&str> =
        ascending.data().as_array().expect("an array").iter().filter_map(|item| item["id"].as_str()).collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.reverse();
    assert_eq!(ascending_ids, expected);

    let filtered = client.send(Method::GET, &path(account, "?filter_hook=channel_answer"), Some(&token), None).await;
    assert_eq!(filtered.body["page_size"], 2);
    let filtered = client
        .send(
            Method::GET,
            &path(account, "?filter_pvt_type=webhook&filter_not_hook=channel_answer"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(filtered.body["page_size"], 3);
}

async fn bulk_reenable_touches_only_auto_disabled_hooks(app: TestApp) {
    let master = app.master_token().await;
    let client = &app.client;
    let (child, child_key) = client.create_account(&master, &app.master_id, "child").await;
    let child_token = client.token(&child_key).await;
    let create = |account: String, token: String, enabled: bool| {
        let client = client.clone();
        async move {
            let body = json!({"data": {"name": "h", "uri": "https://a.example/x", "hook": "channel_create", "enabled": enabled}});
            let created = client.send(Method::PUT, &path(&account, ""), Some(&token), Some(&body)).await;
            created.data()["id"].as_str().expect("an id").to_owned()
        }
    };
    let auto_parent = create(app.master_id.clone(), master.clone(), true).await;
    let manual_parent = create(app.master_id.clone(), master.clone(), false).await;
    let auto_child = create(child.clone(), child_token.clone(), true).await;
    for (account, hook) in [(&app.master_id, &auto_parent), (&child, &auto_child)] {
        let disabled = app
            .store
            .disable_webhook(&account.parse().expect("id"), &hook.parse().expect("id"), "too many failed attempts")
            .await
            .expect("disabled");
        assert!(disabled);
    }

    let shown = client.send(Method::GET, &path(&app.master_id, &format!("/{auto_parent}")), Some(&master), None).await;
    assert_eq!(
        (&shown.data()["enabled"], &shown.data()["disable_reason"]),
        (&json!(false), &json!("too many failed attempts"))
    );
    let listed = client.send(Method::GET, &path(&child, ""), Some(&child_token), None).await;
    assert_eq!(listed.data()[0]["disable_reason"], "too many failed attempts");

    let missing =
        client.send(Method::PATCH, &path(&app.master_id, ""), Some(&master), Some(&json!({"data": {}}))).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.data(),
        &json!({"re-enable": {"required": {"message": "re-enable is required to patch collections"}}})
    );
    let wrong = client
        .send(Method::PATCH, &path(&app.master_id, ""), Some(&master), Some(&json!({"data": {"re-enable": "yes"}})))
        .await;
    assert_eq!(
        wrong.data(),
        &json!({"re-enable": {"enum": {"message": "value not found in enumerated list of values", "target": [true]}}})
    );

    let account_only = client
        .send(Method::PATCH, &path(&app.master_id, ""), Some(&master), Some(&json!({"data": {"re-enable": true}})))
        .await;
    assert_eq!((account_only.status, account_only.data()), (StatusCode::OK, &json!("hooks updated")));
    let parent_hook =
        client.send(Method::GET, &path(&app.master_id, &format!("/{auto_parent}")), Some(&master), None).await;
    assert_eq!(parent_hook.data()["enabled"], true);
    assert!(parent_hook.data().get("disable_reason").is_none());
    let manual =
        client.send(Method::GET, &path(&app.master_id, &format!("/{manual_parent}")), Some(&master), None).await;
    assert_eq!(manual.data()["enabled"], false, "a hook disabled by hand stays disabled");
    let child_hook = client.send(Method::GET, &path(&child, &format!("/{auto_child}")), Some(&master), None).await;
    assert_eq!(child_hook.data()["enabled"], false, "descendants are untouched without /descendants");

    let tree = client
        .send(
            Method::PATCH,
            &format!("/v2/accounts/{}/descendants/webhooks?re-enable=true", app.master_id),
            Some(&master),
            None,
        )
        .await;
    assert_eq!(tree.data(), &json!("hooks updated"));
    let child_hook = client.send(Method::GET, &path(&child, &format!("/{auto_child}")), Some(&master), None).await;
    assert_eq!(child_hook.data()["enabled"], true);
}

async fn attempts_are_listed_newest_first_within_the_window(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;
    let hook: WebhookId = WebhookId::generate();
    let other_hook: WebhookId = WebhookId::generate();
    // A hook's attempts are listed only while the hook is the account's.
    for id in [&hook, &other_hook] {
        let document = json!({"name": "h", "uri": "https://a.example/x", "hook": "channel_create"});
        create_hook(&app.store, id, &account.parse().expect("id"), &document).await;
    }
    let now = webhooks_model::time::gregorian_now();
    let attempt = |hook: &WebhookId, created: i64, event: &str| {
        let mut doc = Map::new();
        doc.insert("hook_id".into(), json!(hook));
        doc.insert("hook_event".into(), json!("CHANNEL_CREATE"));
        doc.insert("event_id".into(), json!(event));
        doc.insert("result".into(), json!("failure"));
        doc.insert("retries_left".into(), json!(1));
        NewAttempt {
            id: webhooks_model::ids::random_id(),
            account_id: account.parse().expect("id"),
            hook_id: hook.clone(),
            created,
            doc,
            job: None,
        }
    };
    let attempts = vec![
        attempt(&hook, now - 30, "e1"),
        attempt(&hook, now - 20, "e2"),
        attempt(&other_hook, now - 10, "e3"),
        attempt(&hook, now - 3_000_000, "old"),
    ];
    app.store.insert_attempts(&attempts).await.expect("attempts stored");

    let all = client.send(Method::GET, &path(account, "/attempts"), Some(&token), None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let events: Vec<&str> =
        all.data().as_array().expect("an array").iter().filter_map(|item| item["event_id"].as_str()).collect();
    assert_eq!(events, ["e3", "e2", "e1"]);
    let ids: Vec<&str> =
        all.data().as_array().expect("an array").iter().filter_map(|item| item["id"].as_str()).collect();
    assert_eq!(ids, [attempts[2].id.as_str(), &attempts[1].id, &attempts[0].id]);
    assert_eq!(all.data()[0]["timestamp"], now - 10);
    assert_eq!(all.data()[0]["retries_left"], 1);

    let per_hook =
        client.send(Method::GET, &path(account, &format!("/{hook}/attempts?page_size=1")), Some(&token), None).await;
    assert_eq!(per_hook.data()[0]["event_id"], "e2");
    let next = per_hook.body["next_start_key"].as_str().expect("a next page").to_owned();
    let second = client
        .send(
            Method::GET,
            &path(account, &format!("/{hook}/attempts?page_size=1&start_key={next}")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(second.data()[0]["event_id"], "e1");
    assert!(second.body.get("next_start_key").is_none());

    let window = client
        .send(
            Method::GET,
            &path(account, &format!("/attempts?created_from={}&created_to={}", now - 3_000_001, now - 2_999_999)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(window.data()[0]["event_id"], "old");

    let reversed =
        client.send(Method::GET, &path(account, "/attempts?created_from=200&created_to=100"), Some(&token), None).await;
    assert_eq!(reversed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reversed.data(),
        &json!({"created_from": {"date_range": {"message": "created_to 100 is prior to created_from 200", "cause": 200}}})
    );
    let wide = client
        .send(Method::GET, &path(account, "/attempts?created_from=0&created_to=2682001"), Some(&token), None)
        .await;
    assert_eq!(
        wide.data(),
        &json!({"created_from": {"date_range": {"message": "created_to 2682001 is more than 2682000 seconds from created_from 0", "cause": 2682001}}})
    );
}

async fn definitions_and_samples_need_no_token(app: TestApp) {
    let client = &app.client;
    let expected: Value = serde_json::from_str(include_str!("../../../model/data/hook-definitions.json")).expect("json");
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

async fn accounts_are_created_read_updated_and_deleted_with_their_hooks(app: TestApp) {
    let master = app.master_token().await;
    let client = &app.client;
    let (child, child_key) = client.create_account(&master, &app.master_id, "child").await;
    let (grandchild, _) = client.create_account(&master, &child, "grandchild").await;

    let fetched = client.send(Method::GET, &format!("/v2/accounts/{child}"), Some(&master), None).await;
    assert_eq!(fetched.data()["name"], "child");
    // Names are stored as text of their own: blank ones and ones holding NUL are refused.
    for (name, rule) in [(" \t", "required"), ("a\u{0}b", "pattern")] {
        let refused = client
            .send(Method::POST, &format!("/v2/accounts/{child}"), Some(&master), Some(&json!({"data": {"name": name}})))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{name:?}: {}", refused.body);
        assert!(refused.data()["name"][rule]["message"].is_string(), "{}", refused.body);
    }
    let updated = client
        .send(
            Method::POST,
            &format!("/v2/accounts/{child}"),
            Some(&master),
            Some(&json!({"data": {"name": "child", "ui_flags": {"colour": "blue"}}})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    let fetched = client.send(Method::GET, &format!("/v2/accounts/{child}"), Some(&master), None).await;
    assert_eq!(fetched.data()["ui_flags"], json!({"colour": "blue"}), "unknown account fields are kept");

    let children =
        client.send(Method::GET, &format!("/v2/accounts/{}/children", app.master_id), Some(&master), None).await;
    assert_eq!(children.data().as_array().map(Vec::len), Some(1));
    let descendants =
        client.send(Method::GET, &format!("/v2/accounts/{}/descendants", app.master_id), Some(&master), None).await;
    let names: Vec<&str> =
        descendants.data().as_array().expect("an array").iter().filter_map(|item| item["name"].as_str()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"grandchild"));
    let grand = descendants
        .data()
        .as_array()
        .expect("an array")
        .iter()
        .find(|item| item["id"] == grandchild.as_str())
        .expect("listed");
    assert_eq!(grand["tree"], json!([app.master_id, child]));

    let refused = client.send(Method::DELETE, &format!("/v2/accounts/{child}"), Some(&master), None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "an account with sub-accounts is not deleted");

    let grand_key = client.send(Method::GET, &format!("/v2/accounts/{grandchild}/api_key"), Some(&master), None).await;
    let grand_token = client.token(grand_key.data()["api_key"].as_str().expect("a key")).await;
    let hook = client.send(Method::PUT, &path(&grandchild, ""), Some(&grand_token), Some(&hook_body())).await;
    let hook_id: WebhookId = hook.data()["id"].as_str().expect("an id").parse().expect("a hook id");
    let deleted = client.send(Method::DELETE, &format!("/v2/accounts/{grandchild}"), Some(&master), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let grandchild_id: AccountId = grandchild.parse().expect("an id");
    assert!(app.store.webhook(&grandchild_id, &hook_id).await.expect("a lookup").is_none(), "its hooks go with it");
    let stale = client.send(Method::GET, &path(&grandchild, ""), Some(&grand_token), None).await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
    let orphan_token = client.send(Method::GET, &format!("/v2/accounts/{child}"), Some(&grand_token), None).await;
    assert_eq!(orphan_token.status, StatusCode::UNAUTHORIZED, "a deleted account's token is refused");
    let _ = child_key;
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

async fn signing_secrets_are_write_only_and_shown_as_signed(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAAAAAAAAAAAAAAA".to_owned();
    let mut body = hook_body();
    body["data"]["signing_secret"] = json!(secret);
    let created = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.data()["signed"], true);
    assert!(created.data().get("signing_secret").is_none(), "never returned");
    assert!(!created.body.to_string().contains(&secret), "the secret appears nowhere in the answer");
    let id = created.data()["id"].as_str().expect("an id").to_owned();
    let hook_id: WebhookId = id.parse().expect("a hook id");
    assert_eq!(app.store.signing_secret(&hook_id).await.expect("reads").as_deref(), Some(secret.as_str()));

    let listed = client.send(Method::GET, &path(account, ""), Some(&token), None).await;
    assert_eq!(listed.data()[0]["signed"], true);
    // A client sending the document back (with the read-only `signed`) keeps the secret.
    let mut round_trip = json!({"data": created.data().clone()});
    round_trip["data"]["name"] = json!("renamed");
    let replaced = client.send(Method::POST, &path(account, &format!("/{id}")), Some(&token), Some(&round_trip)).await;
    assert_eq!((replaced.status, &replaced.data()["signed"]), (StatusCode::OK, &json!(true)), "{}", replaced.body);
    assert_eq!(app.store.signing_secret(&hook_id).await.expect("reads").as_deref(), Some(secret.as_str()));

    let bad = json!({"data": {"signing_secret": "not-a-secret"}});
    let refused = client.send(Method::PATCH, &path(account, &format!("/{id}")), Some(&token), Some(&bad)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body["data"]["signing_secret"]["pattern"]["message"].is_string(), "{}", refused.body);
    assert!(!refused.body.to_string().contains("not-a-secret"), "the rejected value is not echoed");

    let unsign = json!({"data": {"signing_secret": null}});
    let unsigned = client.send(Method::PATCH, &path(account, &format!("/{id}")), Some(&token), Some(&unsign)).await;
    assert_eq!(unsigned.status, StatusCode::OK);
    assert!(unsigned.data().get("signed").is_none() && unsigned.data().get("signing_secret").is_none());
    assert_eq!(app.store.signing_secret(&hook_id).await.expect("reads"), None);
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

/// An app refusing private targets, as deployed, taking bodies of the default 1 MiB.
async fn deployed_app() -> TestApp {
    let bus = connect(Backend::InProcess, &unique_prefix("test-api-hostile")).await;
    let mut settings = TestApp::settings();
    settings.allow_private_targets = false;
    settings.api.max_body_bytes = 1 << 20;
    TestApp::spawn_with(TestDatabase::sqlite().await, bus, settings).await
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_uris_are_refused_naming_the_uri_and_the_reason() {
    let app = deployed_app().await;
    let token = app.master_token().await;
    let hooks = path(&app.master_id, "");
    let with_uri = |uri: &str| json!({"data": {"name": "n", "uri": uri, "hook": "channel_create"}});
    let loopback = "address 127.0.0.1 is not a public address";
    for (uri, cause) in [
        ("http://2130706433/a", loopback),
        ("http://0x7f.0.0.1/a", loopback),
        ("http://0177.0.0.1/a", loopback),
        ("http://127.1/a", loopback),
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is not a public address"),
        ("http://100.64.0.1/a", "address 100.64.0.1 is not a public address"),
        ("http://198.18.0.1/a", "address 198.18.0.1 is not a public address"),
        ("http://203.0.113.9/a", "address 203.0.113.9 is not a public address"),
        ("http://[::ffff:127.0.0.1]/a", "address ::ffff:127.0.0.1 is not a public address"),
        ("http://[64:ff9b:1::5db8:d822]/a", "address 64:ff9b:1::5db8:d822 is not a public address"),
        ("http://[2001::5db8:d822]/a", "address 2001::5db8:d822 is not a public address"),
        ("http://[2002:c0a8:101::1]/a", "address 2002:c0a8:101::1 is not a public address"),
        ("http://[fd00:ec2::254]/a", "address fd00:ec2::254 is not a public address"),
        ("http://[3fff::1]/a", "address 3fff::1 is not a public address"),
        ("http://api.localhost/a", "host 'api.localhost' is blacklisted"),
        ("http:///127.0.0.1/a", "is not written scheme://host"),
        ("gopher://hooks.example.com/a", "scheme 'gopher' is not http or https"),
    ] {
        let refused = app.client.send(Method::PUT, &hooks, Some(&token), Some(&with_uri(uri))).await;
        assert_eq!(
            (refused.status, &refused.body["message"], refused.data()),
            (
                StatusCode::BAD_REQUEST,
                &json!("validation error"),
                &json!({"uri": {"error": {"message": "invalid client URL", "cause": cause, "value": uri}}})
            ),
            "{uri}"
        );
    }
    let listed = app.client.send(Method::GET, &hooks, Some(&token), None).await;
    assert_eq!(listed.data(), &json!([]), "nothing refused was stored");

    for uri in ["https://hooks.example.com/a", "http://93.184.216.34/a", "http://[2001:4860:4860::8888]/a"] {
        let created = app.client.send(Method::PUT, &hooks, Some(&token), Some(&with_uri(uri))).await;
        assert_eq!((created.status, &created.data()["uri"]), (StatusCode::CREATED, &json!(uri)), "{}", created.body);
    }
    // An update is checked as a creation is.
    let id = app.client.send(Method::GET, &hooks, Some(&token), None).await.data()[0]["id"].clone();
    let hook = path(&app.master_id, &format!("/{}", id.as_str().expect("an id")));
    let patch = json!({"data": {"uri": "http://0x7f.1/a"}});
    let refused = app.client.send(Method::PATCH, &hook, Some(&token), Some(&patch)).await;
    assert_eq!(
        (refused.status, refused.data()),
        (
            StatusCode::BAD_REQUEST,
            &json!({"uri": {"error": {"message": "invalid client URL", "cause": loopback, "value": "http://0x7f.1/a"}}})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_strings_of_a_hook_are_refused_and_never_stored() {
    let app = deployed_app().await;
    let token = app.master_token().await;
    let hooks = path(&app.master_id, "");
    let long_uri = format!("https://hooks.example.com/{}", "a".repeat(100_000));
    let cases = [
        (
            json!({"name": "n", "uri": long_uri, "hook": "channel_create"}),
            json!({"uri": {"maxLength": {"message": "String must not be more than 2048 characters", "target": 2048}}}),
        ),
        (
            json!({"name": "n".repeat(129), "uri": "https://hooks.example.com/a", "hook": "channel_create"}),
            json!({"name": {"maxLength": {"message": "String must not be more than 128 characters", "target": 128}}}),
        ),
        (
            json!({"name": "n", "uri": "https://hooks.example.com/a", "hook": "channel_create",
                   "custom_request_headers": {"X-Long": "v".repeat(4097)}}),
            json!({"custom_request_headers.X-Long": {"maxLength": {
                "message": "String must not be more than 4096 characters", "target": 4096}}}),
        ),
    ];
    for (data, expected) in cases {
        let refused = app.client.send(Method::PUT, &hooks, Some(&token), Some(&json!({"data": data}))).await;
        assert_eq!((refused.status, &refused.body["message"]), (StatusCode::BAD_REQUEST, &json!("validation error")));
        assert_eq!(refused.data(), &expected);
    }
    let listed = app.client.send(Method::GET, &hooks, Some(&token), None).await;
    assert_eq!(listed.data(), &json!([]), "nothing refused was stored");
}

/// A response read off a raw connection: status, headers (names lower-cased), JSON body.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl RawAnswer {
    /// The answer, once `received` holds its head and its `Content-Length` body.
    fn parse(received: &[u8]) -> Option<RawAnswer> {
        let head_end = received.windows(4).position(|window| window == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&received[..head_end]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().expect("a status code");
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().expect("a length"));
        let body = received.get(head_end + 4..head_end + 4 + length)?;
        Some(RawAnswer { status, headers, body: serde_json::from_slice(body).expect("a JSON body") })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(found, _)| found == name).map(|(_, value)| value.as_str())
    }
}

/// Writes `request` on a new connection to `app`, leaving it open as a tunnelling client would,
/// and reads the answer; fails unless it comes whole within 5 s.
async fn raw_exchange(app: &TestApp, request: &str) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.client.base_url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("a connection");
    stream.write_all(request.as_bytes()).await.expect("the request is written");
    let mut received = Vec::new();
    let reading = async {
        loop {
            if let Some(answer) = RawAnswer::parse(&received) {
                return answer;
            }
            let mut chunk = [0; 4096];
            let read = stream.read(&mut chunk).await.expect("the connection reads");
            assert!(read > 0, "closed before a whole answer: {:?}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&chunk[..read]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), reading)
        .await
        .unwrap_or_else(|_| panic!("no answer within 5 s to {request:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_and_upgrade_requests_get_a_prompt_crossbar_answer() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let method_not_allowed = json!({"message": "method not allowed"});

    let connect = raw_exchange(&app, "CONNECT /v2/webhooks HTTP/1.1\r\nHost: api\r\n\r\n").await;
    assert_eq!((connect.status, &connect.body["message"]), (405, &json!("invalid_method")), "{connect:?}");
    assert_eq!((&connect.body["data"], connect.header("allow")), (&method_not_allowed, Some("GET, PUT, PATCH")));
    // What would follow on the connection is the tunnel's, not a next request: it is closed.
    assert_eq!(connect.header("connection"), Some("close"));
    let account =
        raw_exchange(&app, &format!("CONNECT {} HTTP/1.1\r\nHost: api\r\n\r\n", path(&app.master_id, ""))).await;
    assert_eq!((account.status, account.header("allow")), (405, Some("GET, PUT, PATCH")), "{account:?}");
    // The form a proxy's client sends names no path this server has.
    let tunnel = raw_exchange(&app, "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n").await;
    assert_eq!((tunnel.status, &tunnel.body["data"]), (404, &json!({"message": "not found"})), "{tunnel:?}");

    // An upgrade this server does not speak is ignored: the request is served as plain HTTP/1.1.
    let websocket = "GET /v2/webhooks HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let upgraded = raw_exchange(&app, websocket).await;
    assert_eq!((upgraded.status, &upgraded.body["status"]), (200, &json!("success")), "{upgraded:?}");
    assert_eq!(upgraded.body["data"].as_array().map(Vec::len), Some(9), "the hook definitions");
    assert_eq!((upgraded.header("upgrade"), upgraded.header("connection")), (None, Some("close")));
    let bare = raw_exchange(&app, "GET /v2/webhooks HTTP/1.1\r\nHost: api\r\nUpgrade: websocket\r\n\r\n").await;
    assert_eq!(bare.status, 200, "{bare:?}");
    // With a body: exactly its declared length is read.
    let auth = json!({"data": {"api_key": app.master_key}}).to_string();
    let put = format!(
        "PUT /v2/api_auth HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{auth}",
        auth.len()
    );
    let authenticated = raw_exchange(&app, &put).await;
    assert_eq!(authenticated.status, 201, "{authenticated:?}");
    assert!(authenticated.body["auth_token"].is_string(), "{authenticated:?}");
}
