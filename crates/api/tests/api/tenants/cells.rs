//! What a cell sends, what an answered cell must have acted on, and the transports a token may
//! take.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_storage::PageRequest;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::http::Answer;

use super::world::hook_body;
use super::{CALLERS, Caller, Cell, SECRET, Target, Tenant, World};

/// The request body of a cell.
pub(super) fn body(world: &World, cell: Cell<'_>) -> Option<Value> {
    let route = cell.route;
    let account = match cell.target {
        Target::Tenant(tenant) => Some(world.member(tenant)),
        _ => None,
    };
    Some(match (&route.method, route.path) {
        (&Method::PUT, "/v2/api_auth") => {
            let key = match cell.target {
                Target::Tenant(tenant) => world.member(tenant).key.clone(),
                _ => world.unknown_key.clone(),
            };
            json!({"data": {"api_key": key}})
        }
        (&Method::POST, "/v2/events") => json!({
            "Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": random_id(),
            "Custom-Channel-Vars": {"Account-ID": world.member(Tenant::Sub).id}}),
        (&Method::PUT, "/v2/accounts/{A}") => json!({"data": {"name": "created by the matrix"}}),
        // The account as it was created: a replacement keeps the reseller's flag.
        (&Method::POST, "/v2/accounts/{A}") => match account {
            Some(member) => json!({"data": member.document}),
            None => json!({"data": {"name": "nobody"}}),
        },
        (&Method::PATCH, "/v2/accounts/{A}") => json!({"data": {"matrix": "patched"}}),
        (&Method::PATCH, path) if path.ends_with("/webhooks") => json!({"data": {"re-enable": true}}),
        (&Method::PATCH, "/v2/accounts/{A}/webhooks/{H}") => {
            json!({"data": {"name": "patched", "signing_secret": SECRET}})
        }
        (&Method::PUT, path) if path.ends_with("/replay") => json!({"data": {"since": 0}}),
        (&Method::PUT, path) if path.ends_with("/test") || path.ends_with("/resend") => return None,
        (&Method::PUT | &Method::POST | &Method::PATCH, _) => hook_body("written by the matrix"),
        _ => return None,
    })
}

/// Checks that an answered cell acted on the account, hook or attempt in its path (and, for the
/// creations, only made the one document, which is then removed again).
pub(super) async fn acted_on(
    app: &TestApp,
    world: &World,
    cell: Cell<'_>,
    hook: &WebhookId,
    answer: &Answer,
) -> Result<(), String> {
    let store = &app.store;
    let master = &world.member(Tenant::Master).token;
    let data = answer.data();
    let account = match cell.target {
        Target::Tenant(tenant) => Some(world.member(tenant)),
        _ => None,
    };
    let ids = |items: &Value| -> Vec<String> {
        items.as_array().into_iter().flatten().filter_map(|item| item["id"].as_str()).map(str::to_owned).collect()
    };
    let route = cell.route;
    let check = |holds: bool, what: &str| if holds { Ok(()) } else { Err(format!("{what}: {data}")) };
    match (&route.method, route.path) {
        (_, path) if path.contains("{H}") && path.ends_with("/attempts") => {
            let owner = account.ok_or("no account")?;
            check(
                data == &json!([{"event_id": owner.event, "result": "failure", "hook_id": hook.as_str(),
                                   "id": owner.attempt, "timestamp": data[0]["timestamp"]}]),
                "the hook's own attempt",
            )
        }
        (&Method::GET, "/v2/accounts/{A}/webhooks/attempts") => {
            let owner = account.ok_or("no account")?;
            let events: Vec<&str> =
                data.as_array().into_iter().flatten().filter_map(|item| item["event_id"].as_str()).collect();
            check(events == [owner.event.as_str()], "the account's own attempts")
        }
        (&Method::GET, "/v2/accounts/{A}/webhooks" | "/v2/accounts/{A}/descendants/webhooks") => {
            let owner = account.ok_or("no account")?;
            let page = PageRequest::default();
            let stored = store.list_webhooks(&owner.id, &page).await.map_err(|error| error.to_string())?;
            let stored: Vec<String> = stored.items.iter().map(|hook| hook.id.to_string()).collect();
            check(ids(data) == stored, "the account's own hooks")
        }
        (&Method::PUT, "/v2/accounts/{A}/webhooks" | "/v2/accounts/{A}/descendants/webhooks") => {
            let owner = account.ok_or("no account")?;
            let id: WebhookId = data["id"].as_str().and_then(|id| id.parse().ok()).ok_or("no hook id")?;
            let stored = store.webhook(&owner.id, &id).await.map_err(|error| error.to_string())?;
            check(stored.is_some(), "a hook of the account in the path")?;
            let path = format!("/v2/accounts/{}/webhooks/{id}", owner.id);
            let removed = app.client.send(Method::DELETE, &path, Some(master), None).await;
            check(removed.status == StatusCode::OK, "removed again")
        }
        (&Method::GET | &Method::POST | &Method::PATCH, "/v2/accounts/{A}/webhooks/{H}") => {
            check(data["id"] == hook.as_str(), "the hook in the path")
        }
        (&Method::DELETE, "/v2/accounts/{A}/webhooks/{H}") => {
            let owner = account.ok_or("no account")?;
            let stored = store.webhook(&owner.id, hook).await.map_err(|error| error.to_string())?;
            check(data["id"] == hook.as_str() && stored.is_none(), "the hook in the path, deleted")
        }
        (_, path) if path.ends_with("/test") => {
            check(data["status"] == "pending" && data["event_id"].is_string(), "a pending test")
        }
        (_, path) if path.ends_with("/replay") => check(data == &json!({"replayed": 1}), "one failure replayed"),
        (_, path) if path.ends_with("/resend") => {
            let owner = account.ok_or("no account")?;
            check(data == &json!({"resent": 1, "event_id": owner.event}), "the attempt's event resent")
        }
        (&Method::GET | &Method::POST | &Method::PATCH, "/v2/accounts/{A}") => {
            let owner = account.ok_or("no account")?;
            check(data["id"] == owner.id.as_str(), "the account in the path")
        }
        (&Method::PUT, "/v2/accounts/{A}") => {
            let owner = account.ok_or("no account")?;
            let id: AccountId = data["id"].as_str().and_then(|id| id.parse().ok()).ok_or("no account id")?;
            let stored = store.account(&id).await.map_err(|error| error.to_string())?;
            check(stored.is_some_and(|child| child.parent_id.as_ref() == Some(&owner.id)), "a child of the account")?;
            let removed = app.client.send(Method::DELETE, &format!("/v2/accounts/{id}"), Some(master), None).await;
            check(removed.status == StatusCode::OK, "removed again")
        }
        (&Method::DELETE, "/v2/accounts/{A}") => {
            let owner = account.ok_or("no account")?;
            let stored = store.account(&owner.id).await.map_err(|error| error.to_string())?;
            check(data["id"] == owner.id.as_str() && stored.is_none(), "the account in the path, deleted")
        }
        (&Method::GET, "/v2/accounts/{A}/children") => {
            let owner = account.ok_or("no account")?;
            let stored = store.children(&owner.id).await.map_err(|error| error.to_string())?;
            check(ids(data) == stored.iter().map(|child| child.id.to_string()).collect::<Vec<_>>(), "its children")
        }
        (&Method::GET, "/v2/accounts/{A}/descendants") => {
            let owner = account.ok_or("no account")?;
            let stored = store.descendants(&owner.id).await.map_err(|error| error.to_string())?;
            check(ids(data) == stored.iter().map(|child| child.id.to_string()).collect::<Vec<_>>(), "its descendants")
        }
        (&Method::GET, "/v2/accounts/{A}/api_key") => {
            let owner = account.ok_or("no account")?;
            check(data == &json!({"api_key": owner.key}), "its API key")
        }
        (&Method::PUT, "/v2/api_auth") => {
            let owner = account.ok_or("no account")?;
            check(data["account_id"] == owner.id.as_str() && answer.body["auth_token"].is_string(), "its token")
        }
        (&Method::POST, "/v2/events") => check(data == &json!({"accepted": 1}), "one event"),
        _ => Ok(()),
    }
}

/// Every credential, sent each way Crossbar reads a token (header, bearer, query string,
/// envelope), answers as it does in the header.
pub(super) async fn every_credential_is_read_from_every_transport(
    app: &TestApp,
    world: &World,
    failures: &mut Vec<String>,
) -> usize {
    let sub = &world.member(Tenant::Sub).id;
    let path = format!("/v2/accounts/{sub}/webhooks");
    let http = reqwest::Client::new();
    let mut cells = 0;
    for caller in CALLERS {
        let Some(token) = world.token(caller) else { continue };
        let allowed = matches!(caller, Caller::Token(tenant) if tenant.may_act_on(Tenant::Sub));
        let url = format!("{}{path}", app.client.base_url());
        let mut enveloped = hook_body("sent with a token in the envelope");
        enveloped["auth_token"] = json!(token);
        for (transport, request) in [
            ("bearer", http.put(&url).bearer_auth(token).json(&hook_body("bearer"))),
            ("query", http.put(format!("{url}?auth_token={token}")).json(&hook_body("query"))),
            ("envelope", http.put(&url).json(&enveloped)),
        ] {
            cells += 1;
            let response = request.send().await.expect("an answer");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let want = if caller.has_invalid_token() {
                (StatusCode::UNAUTHORIZED, json!("invalid credentials"))
            } else if allowed {
                (StatusCode::CREATED, Value::Null)
            } else {
                (StatusCode::FORBIDDEN, json!("forbidden"))
            };
            if (status, body.get("message").cloned().unwrap_or(Value::Null)) != want {
                failures.push(format!("{caller:?} PUT {path} with the token in the {transport}: {status} {body}"));
            }
            if let Some(id) = body["data"]["id"].as_str().filter(|_| status == StatusCode::CREATED) {
                let removed = app
                    .client
                    .send(Method::DELETE, &format!("{path}/{id}"), Some(&world.member(Tenant::Master).token), None)
                    .await;
                assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
            }
        }
    }
    cells
}
