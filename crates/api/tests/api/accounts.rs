//! Accounts through the API: their life with their hooks, and what each may reach.

use reqwest::{Method, StatusCode};
use serde_json::json;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::test_matrix;

use crate::{hook_body, hook_document, path};

test_matrix!(
    apps;
    sibling_accounts_are_isolated_and_parents_reach_children,
    accounts_are_created_read_updated_and_deleted_with_their_hooks,
);

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
