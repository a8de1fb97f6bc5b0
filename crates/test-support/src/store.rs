//! Accounts, hooks and attempts written straight into a store, as the services would store them.

use serde_json::{Map, Value, json};
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_model::job::DeliveryJob;
use webhooks_model::time::gregorian_now;
use webhooks_model::webhook::{DeliveryTarget, Format, HttpVerb, SecretChange};
use webhooks_storage::{Account, NewAccount, NewAttempt, NewWebhook, Store, Webhook};

/// A JSON object literal as a document.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Creates account `id` under `parent`, with document `doc` (an object).
pub async fn create_account(store: &Store, id: &AccountId, parent: Option<&Account>, doc: Value) -> Account {
    store
        .insert_account(&NewAccount {
            id: id.clone(),
            name: format!("account {id}"),
            parent: parent.map(|parent| (parent.id.clone(), parent.tree.clone())),
            api_key: uuid::Uuid::new_v4().simple().to_string(),
            superduper_admin: false,
            doc: object(doc),
        })
        .await
        .expect("account created")
}

/// A hook document of `hook_type` (named after it, calling `https://hooks.example.com/x` with a
/// JSON `post` and one retry), with the fields of `extra` (an object) set over these.
pub fn hook_document(hook_type: &str, extra: Value) -> Value {
    let mut document = object(json!({"name": format!("{hook_type} hook"), "uri": "https://hooks.example.com/x",
                                     "hook": hook_type, "http_verb": "post", "format": "json", "retries": 1}));
    document.extend(object(extra));
    Value::Object(document)
}

/// Hook `id` of `owner` from a webhook document, as the API stores it: its `hook`, `enabled` and
/// `include_subaccounts` fields are read from it, and its `id` and `pvt_*` fields left out of the
/// stored document.
pub fn new_webhook(id: &WebhookId, owner: &AccountId, document: &Value) -> NewWebhook {
    let mut doc = object(document.clone());
    doc.retain(|key, _| key != "id" && !key.starts_with("pvt_"));
    NewWebhook {
        id: id.clone(),
        account_id: owner.clone(),
        hook: doc.get("hook").and_then(Value::as_str).unwrap_or_default().to_owned(),
        enabled: doc.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        include_subaccounts: doc.get("include_subaccounts").and_then(Value::as_bool).unwrap_or(false),
        doc,
        secret: SecretChange::Keep,
    }
}

/// Hook `id` of `owner` as the store would read it back after storing `document` (see
/// [`new_webhook`]), for code that takes stored hooks without a store (the router's index).
pub fn stored_webhook(id: &WebhookId, owner: &AccountId, document: &Value) -> Webhook {
    let stored = new_webhook(id, owner, document);
    Webhook {
        id: stored.id,
        account_id: stored.account_id,
        hook: stored.hook,
        enabled: stored.enabled,
        include_subaccounts: stored.include_subaccounts,
        disabled_reason: None,
        doc: stored.doc,
        signed: false,
        revision: "1-00000000000000000000000000000000".to_owned(),
        created: 0,
        modified: 0,
    }
}

/// Creates hook `id` of `owner` from a webhook document (see [`new_webhook`]).
pub async fn create_hook(store: &Store, id: &WebhookId, owner: &AccountId, document: &Value) -> Webhook {
    store.insert_webhook(&new_webhook(id, owner, document)).await.expect("hook created")
}

/// A failed attempt of `hook` of `account` made a minute ago, delivering `event` to a port
/// nothing listens on, that kept its job (so it can be resent and replayed).
pub fn kept_failure(account: &AccountId, hook: &WebhookId, event: &str) -> NewAttempt {
    let job = DeliveryJob {
        event_id: event.into(),
        hook_id: hook.clone(),
        account_id: account.clone(),
        hook_event: "CHANNEL_CREATE".into(),
        target: DeliveryTarget {
            uri: "http://127.0.0.1:9/kept".into(),
            http_verb: HttpVerb::Post,
            format: Format::Json,
            retries: 0,
            custom_request_headers: None,
        },
        attempt: 0,
        custom_data: None,
        payload: object(json!({"call_id": event})).into(),
        published_at_ms: 1,
        test: false,
        trace_parent: None,
    };
    NewAttempt {
        id: random_id(),
        account_id: account.clone(),
        hook_id: hook.clone(),
        created: gregorian_now() - 60,
        doc: object(json!({"event_id": event, "result": "failure", "hook_id": hook.as_str()})),
        job: Some(job),
    }
}
