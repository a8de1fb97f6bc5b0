//! Kazoo mode's accounts: copied from a Crossbar stand-in at start, on Kazoo-format account
//! notices published on a real RabbitMQ, on demand, and by the periodic reconciliation; account
//! routes refused; no account notice of ours on Kazoo's `configuration` exchange.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_bus::{Bus, Outgoing, Topology};
use webhooks_model::config::KazooConfig;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::notice::CONFIGURATION_EXCHANGE;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::{Observer, amqp_url, eventually, topology, unique_prefix};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::kazoo::{
    CrossbarStandIn, KID, MASTER, MASTER_API_KEY, RESELLER, SIBLING, SUB1, SUB2, account_notice, api_claims, mint,
    token,
};

/// The API in Kazoo mode against `crossbar` (which serves the fixture tree), on a RabbitMQ
/// topology of its own, reconciling every `reconcile` seconds; returns once the tree is copied.
async fn kazoo_app(crossbar: &CrossbarStandIn, reconcile: u64) -> TestApp {
    kazoo_app_with(crossbar, |_, kazoo| kazoo.accounts_reconcile_seconds = reconcile).await
}

/// [`kazoo_app`], its topology and Kazoo settings changed by `configure` first.
pub(crate) async fn kazoo_app_with(
    crossbar: &CrossbarStandIn,
    configure: impl FnOnce(&mut Topology, &mut KazooConfig),
) -> TestApp {
    crossbar.put_fixture_tree();
    let mut topology = topology(&unique_prefix("kazoo-accounts"));
    topology.accounts_from_kazoo = true;
    let mut kazoo = KazooConfig {
        crossbar_url: Some(crossbar.url()),
        api_key: Some(MASTER_API_KEY.to_owned()),
        ..KazooConfig::default()
    };
    configure(&mut topology, &mut kazoo);
    let bus = Bus::connect(Some(&amqp_url()), topology).await.expect("RabbitMQ is reachable");
    let settings = webhooks_api::ApiSettings { kazoo, ..TestApp::settings() };
    let app = TestApp::spawn_with(TestDatabase::sqlite().await, bus, settings).await;
    let store = app.store.clone();
    eventually("the fixture tree is copied", || {
        let store = store.clone();
        async move { store.account(&id(SIBLING)).await.ok().flatten().is_some() }
    })
    .await;
    app
}

fn id(text: &str) -> AccountId {
    text.parse().expect("an account id")
}

/// A Kazoo API-key token of `account`.
fn token_of(account: &str) -> String {
    mint(&json!({"alg": "RS256", "typ": "JWT", "kid": KID}), &api_claims(account))
}

/// Publishes Kazoo's data manager's notice of `event` on account `account`.
async fn publish_notice(bus: &Bus, event: &str, account: &str) {
    let (routing_key, body) = account_notice(event, account);
    bus.publish(Outgoing::new(CONFIGURATION_EXCHANGE, &routing_key, body.to_string())).await.expect("published");
}

fn hook_body() -> Value {
    json!({"data": {"name": "kazoo", "uri": "https://hooks.example.com/kazoo", "hook": "channel_create",
                    "include_subaccounts": true}})
}

async fn create_hook(app: &TestApp, account: &str, token: &str) -> WebhookId {
    let path = format!("/v2/accounts/{account}/webhooks");
    let created = app.client.send(Method::PUT, &path, Some(token), Some(&hook_body())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.data()["id"].as_str().expect("an id").parse().expect("a hook id")
}

/// The ids of the stored descendants of `account`.
async fn descendants(app: &TestApp, account: &str) -> Vec<AccountId> {
    app.store.descendants(&id(account)).await.expect("the store answers").into_iter().map(|a| a.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_created_in_kazoo_gets_a_hook_within_a_second() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 300).await;
    let mut ours = Observer::bind(&app.bus, &app.bus.topology().accounts_exchange(), "#").await;
    let mut kazoos = Observer::bind(&app.bus, CONFIGURATION_EXCHANGE, "*.accounts.account.*").await;

    let account = AccountId::generate();
    crossbar.put_account(account.as_str(), "Fresh Customer", Some(RESELLER), json!({"reseller_id": RESELLER}));
    let created_at = Instant::now();
    publish_notice(&app.bus, "doc_created", account.as_str()).await;
    create_hook(&app, account.as_str(), &token("reseller_api_auth")).await;
    assert!(created_at.elapsed() < Duration::from_secs(1), "took {:?}", created_at.elapsed());

    let stored = app.store.account(&account).await.expect("the store answers").expect("the account is copied");
    assert_eq!(stored.tree, [id(MASTER), id(RESELLER)]);
    assert_eq!(stored.name, "Fresh Customer");
    assert_eq!(stored.doc["reseller_id"], RESELLER);
    // Routers hear of it on this system's own exchange; Kazoo's exchange carries only Kazoo's.
    let (routing_key, _) = ours.next_mentioning(account.as_str()).await;
    assert_eq!(routing_key, format!("doc_created.accounts.account.{account}"));
    let (_, kazoo_notice) = kazoos.next_mentioning(account.as_str()).await;
    assert_eq!(kazoo_notice["App-Name"], "datamgr");
    assert!(kazoos.quiet_about(account.as_str(), Duration::from_millis(500)).await, "no notice of ours");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_in_kazoo_moves_the_subtree_and_its_permissions() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 300).await;
    let below = AccountId::generate();
    crossbar.put_account(below.as_str(), "Below Beta", Some(SUB2), json!({}));
    publish_notice(&app.bus, "doc_created", below.as_str()).await;
    let reseller_hook = create_hook(&app, RESELLER, &token("reseller_api_auth")).await;

    // Kazoo moves sub2, with the account below it, from the reseller to the sibling, and sends
    // one notice per account whose tree changed.
    crossbar.move_account(SUB2, SIBLING);
    for account in [SUB2, below.as_str()] {
        publish_notice(&app.bus, "doc_edited", account).await;
    }
    let store = app.store.clone();
    let moved = below.clone();
    eventually("the subtree is moved", || {
        let (store, moved) = (store.clone(), moved.clone());
        async move {
            let expected = [id(MASTER), id(SIBLING), id(SUB2)];
            store.account(&moved).await.ok().flatten().is_some_and(|account| account.tree == expected)
        }
    })
    .await;
    assert_eq!(descendants(&app, RESELLER).await, [id(SUB1)], "the reseller's include_subaccounts stops at sub1");
    let under_sibling = descendants(&app, SIBLING).await;
    assert!(under_sibling.contains(&id(SUB2)) && under_sibling.contains(&below), "{under_sibling:?}");
    assert!(app.store.webhook_by_id(&reseller_hook).await.expect("the store answers").is_some());

    let hooks_of_sub2 = format!("/v2/accounts/{SUB2}/webhooks");
    let refused = app.client.send(Method::GET, &hooks_of_sub2, Some(&token("reseller_api_auth")), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let allowed = app.client.send(Method::GET, &hooks_of_sub2, Some(&token("sibling_api_auth")), None).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_in_kazoo_removes_the_accounts_hooks() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 300).await;
    let hook = create_hook(&app, SUB2, &token_of(SUB2)).await;
    crossbar.remove_account(SUB2);
    publish_notice(&app.bus, "doc_deleted", SUB2).await;
    let store = app.store.clone();
    eventually("sub2 and its hook are gone", || {
        let (store, hook) = (store.clone(), hook.clone());
        async move {
            store.account(&id(SUB2)).await.ok().flatten().is_none()
                && store.webhook_by_id(&hook).await.ok().flatten().is_none()
        }
    })
    .await;
    assert!(app.store.account(&id(SUB1)).await.expect("the store answers").is_some(), "its sibling stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_notice_is_repaired_by_the_reconciliation() {
    let crossbar = CrossbarStandIn::start().await;
    crossbar.set_page_size(2);
    let app = kazoo_app(&crossbar, 1).await;
    let mut kazoos = Observer::bind(&app.bus, CONFIGURATION_EXCHANGE, "*.accounts.account.*").await;

    // Kazoo's bulk jobs send no notices: an account appears, another is disabled and renamed.
    let account = AccountId::generate();
    crossbar.put_account(account.as_str(), "Bulk Customer", Some(SIBLING), json!({}));
    crossbar.put_account(SUB1, "Acme Customer (closed)", Some(RESELLER), json!({"enabled": false}));
    let store = app.store.clone();
    let added = account.clone();
    eventually("the reconciliation copies both", || {
        let (store, added) = (store.clone(), added.clone());
        async move {
            let sub1 = store.account(&id(SUB1)).await.ok().flatten();
            store.account(&added).await.ok().flatten().is_some()
                && sub1.is_some_and(|sub1| sub1.doc["enabled"] == false && sub1.name == "Acme Customer (closed)")
        }
    })
    .await;
    assert!(kazoos.quiet_about(account.as_str(), Duration::from_millis(500)).await, "nothing said on configuration");
    assert!(crossbar.requests().iter().any(|request| request.query_param("start_key").is_some()), "paginated");
}

#[tokio::test(flavor = "multi_thread")]
async fn account_routes_answer_as_crossbar_without_the_accounts_module() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 300).await;
    let master = token("master_api_auth");
    let sub1 = format!("/v2/accounts/{SUB1}");
    let api_key = format!("{sub1}/api_key");
    let body = json!({"data": {"name": "renamed"}});
    let login = json!({"data": {"api_key": MASTER_API_KEY}});
    for (method, path, body) in [
        (Method::PUT, sub1.as_str(), Some(&body)),
        (Method::POST, sub1.as_str(), Some(&body)),
        (Method::PATCH, sub1.as_str(), Some(&body)),
        (Method::DELETE, sub1.as_str(), None),
        (Method::GET, api_key.as_str(), None),
        (Method::PUT, "/v2/api_auth", Some(&login)),
    ] {
        let answer = app.client.send(method.clone(), path, Some(&master), body).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}: {}", answer.body);
        // Crossbar's answer when no loaded module allows a method on a path.
        assert_eq!(answer.body["error"], "404", "{method} {path}");
        assert_eq!(answer.body["message"], "not_found", "{method} {path}");
        assert_eq!(answer.data(), &json!({"message": "not found"}), "{method} {path}");
        assert_eq!(answer.body["status"], "error");
    }
    let read = app.client.send(Method::GET, &sub1, Some(&master), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.data()["name"], "Acme Customer");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_is_read_on_demand_for_a_verified_token_only() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 300).await;
    // No notice: Kazoo's was lost, and the next reconciliation is minutes away.
    let account = AccountId::generate();
    crossbar.put_account(account.as_str(), "Unannounced", Some(SIBLING), json!({}));
    let path = format!("/v2/accounts/{account}/webhooks");

    let anonymous = app.client.send(Method::GET, &path, None, None).await;
    assert_eq!(anonymous.status, StatusCode::NOT_FOUND, "{}", anonymous.body);
    let reads = |crossbar: &CrossbarStandIn| crossbar.count("GET", &format!("/v2/accounts/{account}"));
    assert_eq!(reads(&crossbar), 0, "an anonymous request costs Crossbar nothing");

    create_hook(&app, account.as_str(), &token("sibling_api_auth")).await;
    assert_eq!(reads(&crossbar), 1);
    let stored = app.store.account(&account).await.expect("the store answers").expect("copied on demand");
    assert_eq!(stored.tree, [id(MASTER), id(SIBLING)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_named_by_a_tokens_as_is_read_on_demand() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 300).await;
    // Kazoo has just created it under the reseller; no notice has come yet.
    let account = AccountId::generate();
    crossbar.put_account(account.as_str(), "Brand New", Some(RESELLER), json!({}));
    let mut claims = api_claims(RESELLER);
    claims["as"] = json!({"account_id": account.as_str(), "owner_id": "8e248327b85591955749e53ea45b6baa"});
    let acting = mint(&json!({"alg": "RS256", "typ": "JWT", "kid": KID}), &claims);

    create_hook(&app, account.as_str(), &acting).await;
    assert_eq!(crossbar.count("GET", &format!("/v2/accounts/{account}")), 1, "read once, for the token");
    let stored = app.store.account(&account).await.expect("the store answers").expect("copied on demand");
    assert_eq!(stored.tree, [id(MASTER), id(RESELLER)]);
    // Acting as the new account, the reseller no longer reaches its own hooks.
    let reseller =
        app.client.send(Method::GET, &format!("/v2/accounts/{RESELLER}/webhooks"), Some(&acting), None).await;
    assert_eq!(reseller.status, StatusCode::FORBIDDEN, "{}", reseller.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconciliation_keeps_an_account_created_after_its_listing() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 1).await;
    // Kazoo creates an account a reconciliation's listing does not show yet; a request copies it.
    let account = AccountId::generate();
    crossbar.put_account(account.as_str(), "Just Created", Some(SIBLING), json!({}));
    crossbar.leave_out_of_listings(account.as_str());
    let hook = create_hook(&app, account.as_str(), &token("sibling_api_auth")).await;

    let path = format!("/v2/accounts/{account}");
    eventually("a reconciliation reads the unlisted account again", || {
        let reads = crossbar.count("GET", &path);
        async move { reads >= 2 }
    })
    .await;
    let stored = app.store.account(&account).await.expect("the store answers");
    assert!(stored.is_some(), "kept: Kazoo still has it");
    let hooks = app.store.webhook(&account, &hook).await.expect("the store answers");
    assert!(hooks.is_some(), "with its hook");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routers_lookup_copies_the_account_and_announces_it_even_unchanged() {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(&crossbar, 300).await;
    let topology = app.bus.topology().clone();
    let mut announced = Observer::bind(&app.bus, &topology.accounts_exchange(), "*.accounts.account.*").await;
    // An event named an account Kazoo has just created; its notice has not come.
    let account = AccountId::generate();
    crossbar.put_account(account.as_str(), "Called Already", Some(SIBLING), json!({}));
    let lookup = || Outgoing::new(&topology.accounts_exchange(), &topology.account_lookup_routing_key(&account), "{}");

    app.bus.publish(lookup()).await.expect("published");
    let (routing_key, _) = announced.next_mentioning(account.as_str()).await;
    assert!(routing_key.ends_with(&format!(".accounts.account.{account}")), "{routing_key}");
    let stored = app.store.account(&account).await.expect("the store answers").expect("copied");
    assert_eq!(stored.tree, [id(MASTER), id(SIBLING)]);
    // A router that missed the notice asks again: nothing to write, announced all the same.
    while !announced.quiet_about(account.as_str(), Duration::from_millis(300)).await {}
    app.bus.publish(lookup()).await.expect("published");
    let (routing_key, _) = announced.next_mentioning(account.as_str()).await;
    assert_eq!(routing_key, format!("doc_edited.accounts.account.{account}"));
    assert_eq!(crossbar.count("GET", &format!("/v2/accounts/{account}")), 2, "read for each lookup");
}
