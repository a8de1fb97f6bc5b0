//! Kazoo mode's mirror of hook writes into Kazoo's CouchDB (a `pouchdb-server` behind a proxy
//! that can cut it off): created, auto-disabled, re-enabled and deleted hooks reach it in Kazoo's
//! format, and while CouchDB is unreachable the API answers as usual and the writes wait.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_bus::Outgoing;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::notice::{Action, Change};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::couch::CouchStandIn;
use webhooks_test_support::kazoo::{CrossbarStandIn, SUB1, token};
use webhooks_test_support::proxy::Proxy;

use crate::kazoo_accounts::kazoo_app_with;

/// Waits until CouchDB's copy of hook `id` satisfies `condition` (`None`: no document).
async fn mirrored(
    couch: &CouchStandIn,
    id: &WebhookId,
    what: &str,
    condition: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let url = format!("{}/webhooks/{id}", couch.url());
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client.get(&url).send().await.expect("CouchDB answers");
        let doc = if answer.status().is_success() { Some(answer.json::<Value>().await.expect("JSON")) } else { None };
        if condition(doc.as_ref()) {
            return doc;
        }
        assert!(Instant::now() < deadline, "CouchDB's copy is not {what}: {doc:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create(app: &TestApp, name: &str) -> WebhookId {
    let body = json!({"data": {"name": name, "uri": "https://hooks.example.com/mirrored", "hook": "channel_create"}});
    let created = app
        .client
        .send(Method::PUT, &format!("/v2/accounts/{SUB1}/webhooks"), Some(&token("user_auth")), Some(&body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.data()["id"].as_str().expect("an id").parse().expect("a hook id")
}

#[tokio::test(flavor = "multi_thread")]
async fn hook_writes_reach_kazoos_couchdb_and_wait_while_it_is_unreachable() {
    let couch = CouchStandIn::start().await;
    let address = couch.url().trim_start_matches("http://").parse().expect("an address");
    let proxy = Proxy::start(address).await;
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app_with(&crossbar, |topology, kazoo| {
        topology.kazoo_couch = true;
        kazoo.couch_url = Some(format!("http://{}", proxy.address()));
    })
    .await;

    let hook = create(&app, "mirrored").await;
    let doc = mirrored(&couch, &hook, "written", |doc: Option<&Value>| doc.is_some()).await.expect("a document");
    assert_eq!((doc["name"].as_str(), doc["enabled"].as_bool()), (Some("mirrored"), Some(true)));
    assert_eq!((doc["pvt_type"].as_str(), doc["pvt_account_id"].as_str()), (Some("webhook"), Some(SUB1)));

    // The dispatcher's auto-disable, and its notice.
    let owner: AccountId = SUB1.parse().expect("an id");
    assert!(app.store.auto_disable_webhook(&owner, &hook, "too many failed attempts").await.expect("disabled"));
    let change = Change::Webhook { action: Action::Edited, id: hook.clone(), account_id: owner.clone() };
    app.bus.publish(Outgoing::change_notice(app.bus.topology(), &change, "dispatcher")).await.expect("announced");
    let disabled =
        |doc: Option<&Value>| doc.is_some_and(|doc| doc["pvt_disabled_message"] == "too many failed attempts");
    let doc = mirrored(&couch, &hook, "auto-disabled", disabled).await.expect("a document");
    assert_eq!(doc["enabled"], false);

    let reenable = json!({"data": {"re-enable": true}});
    let path = format!("/v2/accounts/{SUB1}/webhooks");
    let answer = app.client.send(Method::PATCH, &path, Some(&token("user_auth")), Some(&reenable)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let enabled = |doc: Option<&Value>| {
        doc.is_some_and(|doc| doc["enabled"] == true && doc.get("pvt_disabled_message").is_none())
    };
    mirrored(&couch, &hook, "re-enabled", enabled).await;

    // CouchDB unreachable: the API answers as usual, and the writes wait.
    proxy.cut();
    let started = Instant::now();
    let later = create(&app, "created while CouchDB is away").await;
    let deleted = app.client.send(Method::DELETE, &format!("{path}/{hook}"), Some(&token("user_auth")), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered without waiting for CouchDB: {:?}",
        started.elapsed()
    );
    proxy.restore();
    mirrored(&couch, &later, "written once CouchDB is back", |doc: Option<&Value>| doc.is_some()).await;
    mirrored(&couch, &hook, "deleted once CouchDB is back", |doc: Option<&Value>| doc.is_none()).await;
}
