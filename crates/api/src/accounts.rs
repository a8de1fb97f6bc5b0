//! Accounts as the webhooks feature needs them: the master account, sub-accounts and their tree.

use serde_json::{Map, Value};
use webhooks_model::ids::AccountId;
use webhooks_storage::{Account, NewAccount, StorageError, Store};

/// A fresh API key: 64 lowercase hex characters, like Kazoo's.
pub fn generate_api_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Makes sure the master (super-duper admin) account exists, with `configured_key` as its API key
/// when one is configured. Returns the master and, when it was created with a generated key,
/// that key (to be shown once).
pub async fn bootstrap_master(
    store: &Store,
    configured_key: Option<&str>,
) -> Result<(Account, Option<String>), StorageError> {
    let api_key = configured_key.map_or_else(generate_api_key, str::to_owned);
    let candidate = NewAccount {
        id: AccountId::generate(),
        name: "master".into(),
        parent: None,
        api_key: api_key.clone(),
        superduper_admin: true,
        doc: Map::new(),
    };
    let (mut master, created) = store.bootstrap_master(&candidate).await?;
    if let Some(key) = configured_key
        && master.api_key != key
    {
        // The configured key is the operator's word: it replaces whatever was stored.
        store.set_api_key(&master.id, key).await?;
        master.api_key = key.to_owned();
    }
    let shown = (created && configured_key.is_none()).then_some(api_key);
    Ok((master, shown))
}

/// The public view of an account: `id`, `name`, the fields clients stored, and its tree.
pub fn account_view(account: &Account) -> Value {
    let mut fields = Map::new();
    fields.insert("id".into(), Value::String(account.id.to_string()));
    fields.insert("name".into(), Value::String(account.name.clone()));
    for (key, value) in &account.doc {
        fields.entry(key.clone()).or_insert_with(|| value.clone());
    }
    if account.superduper_admin {
        fields.insert("superduper_admin".into(), Value::Bool(true));
    }
    Value::Object(fields)
}

/// The summary of an account in children and descendants listings.
pub fn account_summary(account: &Account) -> Value {
    let mut fields = Map::new();
    fields.insert("id".into(), Value::String(account.id.to_string()));
    fields.insert("name".into(), Value::String(account.name.clone()));
    if let Some(realm) = account.doc.get("realm") {
        fields.insert("realm".into(), realm.clone());
    }
    fields.insert("tree".into(), Value::Array(account.tree.iter().map(|id| Value::String(id.to_string())).collect()));
    Value::Object(fields)
}
