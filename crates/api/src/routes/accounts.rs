//! `/v2/api_auth` and `/v2/accounts/{A}...`: tokens, sub-accounts and their tree.

use actix_web::web::Data;
use serde_json::{Map, Value, json};
use webhooks_model::errors::ValidationErrors;
use webhooks_model::ids::AccountId;
use webhooks_storage::NewAccount;

use crate::accounts::{account_summary, account_view, generate_api_key};
use crate::auth::Scope;
use crate::crossbar::{ApiError, Envelope, PageInfo, Reply};
use crate::{ApiState, operations};

/// `PUT /v2/api_auth`: trades an account's API key for a token.
pub async fn api_auth(state: Data<ApiState>, body: Envelope) -> Result<Reply, ApiError> {
    let data = body.data_object()?;
    let Some(api_key) = data.get("api_key").and_then(Value::as_str).filter(|key| !key.is_empty()) else {
        return Err(ValidationErrors::single(
            "api_key",
            "required",
            json!({"message": "Field is required but missing", "value": "api_key"}),
        )
        .into());
    };
    let account = state.store.account_by_api_key(api_key).await?.ok_or(ApiError::InvalidCredentials)?;
    let token = state.tokens.issue(&account.id);
    let reseller_id = account.tree.first().unwrap_or(&account.id).to_string();
    let data = json!({
        "account_id": account.id,
        "account_name": account.name,
        "apps": [],
        "is_reseller": account.superduper_admin,
        "language": "en-us",
        "reseller_id": reseller_id,
    });
    tracing::info!(account.id = %account.id, "token issued");
    Ok(Reply::ok(data).with_status(actix_web::http::StatusCode::CREATED).with_auth_token(token))
}

/// `GET /v2/accounts/{A}`.
pub async fn fetch(scope: Scope) -> Result<Reply, ApiError> {
    Ok(Reply::document(account_view(&scope.account), &scope.account.revision))
}

/// `PUT /v2/accounts/{A}`: creates a sub-account of `A`.
pub async fn create_child(state: Data<ApiState>, scope: Scope, body: Envelope) -> Result<Reply, ApiError> {
    let (name, doc) = account_fields(body.data_object()?)?;
    let new = NewAccount {
        id: AccountId::generate(),
        name,
        parent: Some((scope.account.id.clone(), scope.account.tree.clone())),
        api_key: generate_api_key(),
        superduper_admin: false,
        doc,
    };
    let account = state.announce(operations::create_account(&state.store, &new).await?);
    tracing::info!(account.id = %account.id, parent.id = %scope.account.id, "account created");
    Ok(Reply::created(account_view(&account), account.id.as_str(), &account.revision))
}

/// `POST /v2/accounts/{A}`: replaces the account document (unknown fields kept as sent).
pub async fn replace(state: Data<ApiState>, scope: Scope, body: Envelope) -> Result<Reply, ApiError> {
    let (name, doc) = account_fields(body.data_object()?)?;
    update(&state, &scope, &name, &doc).await
}

/// `PATCH /v2/accounts/{A}`: merges into the account document.
pub async fn patch(state: Data<ApiState>, scope: Scope, body: Envelope) -> Result<Reply, ApiError> {
    let mut merged = match account_view(&scope.account) {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    for (key, value) in body.data_object()? {
        if value.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    let (name, doc) = account_fields(&merged)?;
    update(&state, &scope, &name, &doc).await
}

async fn update(state: &ApiState, scope: &Scope, name: &str, doc: &Map<String, Value>) -> Result<Reply, ApiError> {
    let updated = operations::update_account(&state.store, &scope.account.id, name, doc)
        .await?
        .ok_or_else(|| ApiError::BadIdentifier(scope.account.id.to_string()))?;
    let account = state.announce(updated);
    Ok(Reply::document(account_view(&account), &account.revision))
}

/// `DELETE /v2/accounts/{A}`: removes the account with its webhooks and attempts. The master
/// account, the caller's own account and accounts that still have sub-accounts are refused.
pub async fn delete(state: Data<ApiState>, scope: Scope) -> Result<Reply, ApiError> {
    let account = &scope.account;
    if account.id == scope.caller.id {
        return Err(ApiError::Forbidden);
    }
    let deleted = operations::delete_account(&state.store, &account.id)
        .await?
        .ok_or_else(|| ApiError::BadIdentifier(account.id.to_string()))?;
    state.announce(deleted);
    tracing::info!(account.id = %account.id, "account deleted");
    let mut view = account_view(account);
    if let Value::Object(fields) = &mut view {
        fields.insert("_read_only".into(), json!({"deleted": true}));
    }
    Ok(Reply::document(view, &account.revision))
}

/// `GET /v2/accounts/{A}/children`.
pub async fn children(state: Data<ApiState>, scope: Scope) -> Result<Reply, ApiError> {
    let accounts = state.store.children(&scope.account.id).await?;
    Ok(Reply::listing(accounts.iter().map(account_summary).collect(), PageInfo::default()))
}

/// `GET /v2/accounts/{A}/descendants`.
pub async fn descendants(state: Data<ApiState>, scope: Scope) -> Result<Reply, ApiError> {
    let accounts = state.store.descendants(&scope.account.id).await?;
    Ok(Reply::listing(accounts.iter().map(account_summary).collect(), PageInfo::default()))
}

/// `GET /v2/accounts/{A}/api_key`.
pub async fn api_key(scope: Scope) -> Result<Reply, ApiError> {
    Ok(Reply::ok(json!({"api_key": scope.account.api_key})))
}

/// The name and the other public fields of an account document from a client; private and
/// read-only fields are dropped.
fn account_fields(data: &Map<String, Value>) -> Result<(String, Map<String, Value>), ApiError> {
    let name = match data.get("name") {
        // The name is stored as text of its own, which PostgreSQL cannot hold with NUL in it.
        Some(Value::String(name)) if name.contains('\0') => {
            return Err(ValidationErrors::single(
                "name",
                "pattern",
                json!({"message": "must not contain NUL characters", "value": name}),
            )
            .into());
        }
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(other) if !other.is_string() => {
            return Err(ValidationErrors::single(
                "name",
                "type",
                json!({"message": "Value did not match type(s): string", "target": "string", "value": other}),
            )
            .into());
        }
        _ => {
            return Err(ValidationErrors::single(
                "name",
                "required",
                json!({"message": "Field is required but missing", "value": "name"}),
            )
            .into());
        }
    };
    let doc = data
        .iter()
        .filter(|(key, _)| {
            !matches!(key.as_str(), "name" | "id" | "superduper_admin" | "_read_only")
                && !key.starts_with('_')
                && !key.starts_with("pvt_")
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok((name, doc))
}
