//! Monster UI's webhooks app, replayed. The calls the real app made in a browser (log in, list,
//! create, turn off, edit, open the history, re-enable all, create in a new group, delete:
//! `fixtures/kazoo/monster-ui-requests.jsonl`) are sent, with the app's own headers and bodies,
//! to the API in Kazoo mode under a Kazoo user token. The calls Crossbar answers in a cluster
//! (login, the user, the account, the app store) are left out; every webhooks call must get the
//! recorded status, the recorded shape of `data`, and Crossbar's envelope.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::time::unix_millis;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::http::Answer;
use webhooks_test_support::kazoo::{self, CrossbarStandIn, SUB1, token};
use webhooks_test_support::test_matrix;

use crate::kazoo::{kazoo_app, kazoo_config};

test_matrix!(databases; monster_ui_s_session_gets_the_recorded_answers);

/// Hooks the recorded account held before the session (its first listing has three).
const HOOKS_BEFORE: usize = 3;

/// One recorded call.
struct Call {
    /// Its place in the recording, from 1.
    number: usize,
    method: Method,
    /// Path and query, placeholders in.
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    status: StatusCode,
    /// The recorded `{"status", "data"}`, `data` reduced to its shape.
    response: Value,
}

/// The recorded calls to webhooks paths, in order.
fn recorded_calls() -> Vec<Call> {
    let path = kazoo::fixture_path("monster-ui-requests.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let calls: Vec<Call> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("one JSON object a line"))
        .enumerate()
        .filter(|(_, call)| call["path"].as_str().is_some_and(|path| path.contains("/webhooks")))
        .map(|(index, call)| {
            let path = call["path"].as_str().expect("a path");
            let target = match call["query"].as_str() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            let headers = call["request_headers"]
                .as_object()
                .expect("request headers")
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().expect("a header value").to_owned()))
                .collect();
            Call {
                number: index + 1,
                method: call["method"].as_str().expect("a method").parse().expect("an HTTP method"),
                target,
                headers,
                body: Some(call["body"].clone()).filter(|body| !body.is_null()),
                status: StatusCode::from_u16(u16::try_from(call["status"].as_u64().expect("a status")).expect("a u16"))
                    .expect("a status code"),
                response: call["response"].clone(),
            }
        })
        .collect();
    assert_eq!(calls.len(), 20, "the recording's webhooks calls (13 to 29, and 31 to 33)");
    calls
}

/// What stands for each placeholder at this point of the session.
struct Placeholders {
    account: String,
    token: String,
    /// The hook created last.
    webhook: Option<String>,
}

impl Placeholders {
    fn fill(&self, text: &str) -> String {
        let filled = text
            .replace("{ACCOUNT_ID}", &self.account)
            .replace("{AUTH_TOKEN}", &self.token)
            .replace("{CACHE_BUSTER}", &unix_millis().to_string());
        match &self.webhook {
            Some(id) => filled.replace("{WEBHOOK_ID}", id).replace("{ID}", id),
            None => filled,
        }
    }

    fn fill_value(&self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.fill(text)),
            Value::Array(items) => items.iter().map(|item| self.fill_value(item)).collect(),
            Value::Object(map) => map.iter().map(|(key, item)| (key.clone(), self.fill_value(item))).collect(),
            other => other.clone(),
        }
    }
}

/// `data` reduced as the recording reduces it: an object to its sorted keys, an array to
/// `list[N]`, anything else kept.
fn shape(data: &Value) -> Value {
    match data {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            json!(keys)
        }
        Value::Array(items) => json!(format!("list[{}]", items.len())),
        other => other.clone(),
    }
}

/// Crossbar's envelope around every answer.
fn assert_envelope(answer: &Answer, token: &str, what: &str) {
    for key in ["status", "data", "request_id", "timestamp", "node", "version", "auth_token"] {
        assert!(answer.body.get(key).is_some(), "{what}: no `{key}` in {}", answer.body);
    }
    assert_eq!(answer.body["auth_token"], token, "{what}: the token is echoed");
    if answer.data().is_array() {
        assert!(answer.body.get("page_size").is_some(), "{what}: a listing carries page_size");
    }
}

async fn monster_ui_s_session_gets_the_recorded_answers(database: TestDatabase) {
    let crossbar = CrossbarStandIn::start().await;
    let app = kazoo_app(database, kazoo_config(&crossbar)).await;
    let user = token("user_auth");
    for n in 0..HOOKS_BEFORE {
        let document = json!({"name": format!("before {n}"), "uri": "https://hooks.example.com/before",
                              "hook": "channel_destroy"});
        app.client.create_hook(&user, SUB1, &document).await;
    }
    let mut placeholders = Placeholders { account: SUB1.to_owned(), token: user.clone(), webhook: None };
    for call in recorded_calls() {
        let what = format!("call {}: {} {}", call.number, call.method, call.target);
        let headers: Vec<(String, String)> =
            call.headers.iter().map(|(name, value)| (name.clone(), placeholders.fill(value))).collect();
        let body = call.body.as_ref().map(|body| placeholders.fill_value(body));
        let answer =
            app.client.send_as(call.method.clone(), &placeholders.fill(&call.target), &headers, body.as_ref()).await;

        assert_eq!(answer.status, call.status, "{what}: {}", answer.body);
        assert_envelope(&answer, &user, &what);
        assert_eq!(answer.body["status"], call.response["status"], "{what}");
        assert_eq!(shape(answer.data()), call.response["data"], "{what}: {}", answer.data());
        if call.method == Method::PUT {
            let created = answer.data()["id"].as_str().expect("the created hook's id");
            placeholders.webhook = Some(created.to_owned());
        }
    }
}
