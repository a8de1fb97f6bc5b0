//! Hooks through the API: their life from creation to deletion, listings, bulk re-enabling, signing
//! secrets, and the attempts listed.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use webhooks_model::ids::WebhookId;
use webhooks_storage::NewAttempt;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::store::create_hook;
use webhooks_test_support::test_matrix;

use crate::{hook_body, path};

test_matrix!(
    apps;
    a_hook_is_created_listed_fetched_replaced_patched_and_deleted,
    listings_paginate_descending_and_filter,
    bulk_reenable_touches_only_auto_disabled_hooks,
    signing_secrets_are_write_only_and_shown_as_signed,
    attempts_are_listed_newest_first_within_the_window,
);

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

async fn listings_paginate_descending_and_filter(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;
    let mut ids = Vec::new();
    for index in 0..5 {
        let hook = if index % 2 == 0 { "channel_create" } else { "channel_answer" };
        let document =
            json!({"name": format!("hook {index}"), "uri": "https://a.example/x", "hook": hook, "group": "g"});
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
