//! Accounts and hooks written straight into a store, as the API would store them.

use serde_json::{Map, Value};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::webhook::SecretChange;
use webhooks_storage::{Account, NewAccount, NewWebhook, Store, Webhook};

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

/// Creates hook `id` of `owner` from a webhook document: its `hook`, `enabled` and
/// `include_subaccounts` fields are read from it, and its `id` and `pvt_*` fields left out of
/// the stored document, as the API does.
pub async fn create_hook(store: &Store, id: &WebhookId, owner: &AccountId, document: &Value) -> Webhook {
    let mut doc = object(document.clone());
    doc.retain(|key, _| key != "id" && !key.starts_with("pvt_"));
    store
        .insert_webhook(&NewWebhook {
            id: id.clone(),
            account_id: owner.clone(),
            hook: doc.get("hook").and_then(Value::as_str).unwrap_or_default().to_owned(),
            enabled: doc.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            include_subaccounts: doc.get("include_subaccounts").and_then(Value::as_bool).unwrap_or(false),
            doc,
            secret: SecretChange::Keep,
        })
        .await
        .expect("hook created")
}
