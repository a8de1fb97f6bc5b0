//! `/v2/accounts/{A}/webhooks...`: list, create, fetch, replace, patch, delete, bulk re-enable.

use actix_web::HttpRequest;
use actix_web::web::{Data, Path};
use serde_json::{Map, Value, json};
use webhooks_model::errors::ValidationErrors;
use webhooks_model::ids::WebhookId;
use webhooks_model::webhook::{ValidationContext, WebhookDocument, merge_patch, validate_webhook};
use webhooks_storage::{StorageError, Webhook};

use crate::auth::Scope;
use crate::crossbar::{ApiError, Envelope, PageInfo, Reply};
use crate::query::QueryParams;
use crate::{ApiState, operations};

/// `GET /v2/accounts/{A}/webhooks`: hook summaries, descending by id, paginated and filtered,
/// from the account's hook list in memory.
pub async fn list(state: Data<ApiState>, scope: Scope, request: HttpRequest) -> Result<Reply, ApiError> {
    let query = QueryParams::parse(request.query_string());
    let page = query.page(state.settings.api.default_page_size)?;
    let filters = query.filters();
    if let Some(key) = &page.start_key {
        key.parse::<WebhookId>().map_err(|_| StorageError::InvalidStartKey)?;
    }
    let hooks = state.hook_lists.of(&state.store, &scope.account.id, summary).await?;
    let found = page.slice(&hooks, |listed| listed.hook.id.as_str());
    let items = found
        .items
        .into_iter()
        .filter(|listed| filters.is_empty() || filters.accept(&stored_document(&listed.hook)))
        .map(|listed| listed.summary.clone())
        .collect();
    Ok(Reply::listing(items, PageInfo { start_key: page.start_key, next_start_key: found.next_start_key }))
}

/// `PUT /v2/accounts/{A}/webhooks`: validates and stores a new hook with a server-chosen id.
pub async fn create(state: Data<ApiState>, scope: Scope, body: Envelope) -> Result<Reply, ApiError> {
    let document = validate(&state, &scope, body.data_object()?)?;
    let created =
        operations::create_webhook(&state.store, WebhookId::generate(), scope.account.id.clone(), document).await?;
    let hook = state.announce(created);
    tracing::info!(account.id = %hook.account_id, hook.id = %hook.id, "webhook created");
    Ok(Reply::created(public_view(&hook), hook.id.as_str(), &hook.revision))
}

/// `GET /v2/accounts/{A}/webhooks/{id}`.
pub async fn fetch(state: Data<ApiState>, scope: Scope, path: Path<(String, String)>) -> Result<Reply, ApiError> {
    let hook = load(&state, &scope, &path.1).await?;
    Ok(Reply::document(public_view(&hook), &hook.revision))
}

/// `POST /v2/accounts/{A}/webhooks/{id}`: full replacement; the body is validated before the hook
/// is looked up, as in Crossbar.
pub async fn replace(
    state: Data<ApiState>,
    scope: Scope,
    path: Path<(String, String)>,
    body: Envelope,
) -> Result<Reply, ApiError> {
    let document = validate(&state, &scope, body.data_object()?)?;
    let stored = load(&state, &scope, &path.1).await?;
    save(&state, &stored, document).await
}

/// `PATCH /v2/accounts/{A}/webhooks/{id}`: shallow merge, then the same validation as a create.
pub async fn patch(
    state: Data<ApiState>,
    scope: Scope,
    path: Path<(String, String)>,
    body: Envelope,
) -> Result<Reply, ApiError> {
    let changes = body.data_object()?;
    let stored = load(&state, &scope, &path.1).await?;
    let merged = merge_patch(&current_fields(&stored), changes);
    let document = validate(&state, &scope, &merged)?;
    save(&state, &stored, document).await
}

/// `DELETE /v2/accounts/{A}/webhooks/{id}`: answers the deleted hook, marked read-only deleted.
pub async fn delete(state: Data<ApiState>, scope: Scope, path: Path<(String, String)>) -> Result<Reply, ApiError> {
    let id = parse_hook_id(&path.1)?;
    let deleted = operations::delete_webhook(&state.store, &scope.account.id, &id)
        .await?
        .ok_or_else(|| ApiError::BadIdentifier(path.1.clone()))?;
    let hook = state.announce(deleted);
    tracing::info!(account.id = %hook.account_id, hook.id = %hook.id, "webhook deleted");
    let mut view = public_view(&hook);
    if let Value::Object(fields) = &mut view {
        fields.insert("_read_only".into(), json!({"deleted": true}));
    }
    Ok(Reply::document(view, &hook.revision))
}

/// `PATCH /v2/accounts/{A}/webhooks` and `.../descendants/webhooks` with `re-enable: true`:
/// re-enables the auto-disabled hooks of the account (and of its descendants).
pub async fn reenable(
    state: Data<ApiState>,
    scope: Scope,
    request: HttpRequest,
    body: Envelope,
) -> Result<Reply, ApiError> {
    let from_body = body.data()?.and_then(|data| data.get("re-enable")).cloned();
    let query = QueryParams::parse(request.query_string());
    let flag = from_body.or_else(|| query.get("re-enable").map(|value| Value::String(value.to_owned())));
    match flag {
        None => {
            return Err(ValidationErrors::single(
                "re-enable",
                "required",
                json!({"message": "re-enable is required to patch collections"}),
            )
            .into());
        }
        Some(Value::Bool(true)) => {}
        Some(Value::String(text)) if text == "true" => {}
        Some(_) => {
            return Err(ValidationErrors::single(
                "re-enable",
                "enum",
                json!({"message": "value not found in enumerated list of values", "target": [true]}),
            )
            .into());
        }
    }
    let include_descendants = request.path().ends_with("/descendants/webhooks");
    let reenabled = operations::reenable_hooks(&state.store, &scope.account.id, include_descendants).await?;
    let count = state.announce(reenabled);
    tracing::info!(account.id = %scope.account.id, count, include_descendants, "auto-disabled webhooks re-enabled");
    Ok(Reply::ok(Value::String("hooks updated".into())))
}

fn validate(state: &ApiState, scope: &Scope, data: &Map<String, Value>) -> Result<WebhookDocument, ApiError> {
    let context = ValidationContext {
        definitions: &state.definitions,
        superduper_admin: scope.caller.superduper_admin,
        allow_private_targets: state.settings.allow_private_targets,
    };
    Ok(validate_webhook(data, &context)?)
}

pub(super) fn parse_hook_id(raw: &str) -> Result<WebhookId, ApiError> {
    raw.parse().map_err(|_| ApiError::BadIdentifier(raw.to_owned()))
}

/// The hook `raw_id` of the account in the path: a hook of any other account is not found.
pub(super) async fn load(state: &ApiState, scope: &Scope, raw_id: &str) -> Result<Webhook, ApiError> {
    let id = parse_hook_id(raw_id)?;
    state.store.webhook(&scope.account.id, &id).await?.ok_or_else(|| ApiError::BadIdentifier(raw_id.to_owned()))
}

/// Stores a validated document over `stored` ([`operations::update_webhook`]).
async fn save(state: &ApiState, stored: &Webhook, document: WebhookDocument) -> Result<Reply, ApiError> {
    let updated = operations::update_webhook(&state.store, stored, document)
        .await?
        .ok_or_else(|| ApiError::BadIdentifier(stored.id.to_string()))?;
    let hook = state.announce(updated);
    tracing::info!(account.id = %hook.account_id, hook.id = %hook.id, "webhook updated");
    Ok(Reply::document(public_view(&hook), &hook.revision))
}

/// The public document: stored fields, `id`, and the derived state: `disable_reason` for an
/// auto-disabled hook, `signed` for one with a signing secret (never the secret itself).
pub fn public_view(hook: &Webhook) -> Value {
    let mut fields = current_fields(hook);
    fields.insert("id".into(), Value::String(hook.id.to_string()));
    insert_state(hook, &mut fields);
    Value::Object(fields)
}

fn insert_state(hook: &Webhook, fields: &mut Map<String, Value>) {
    if let Some(reason) = disable_reason(hook) {
        fields.insert("disable_reason".into(), Value::String(reason.to_owned()));
    }
    if hook.signed {
        fields.insert("signed".into(), Value::Bool(true));
    }
}

/// The stored fields with `enabled` as the store has it now: the auto-disabler and the bulk
/// re-enable change the flag without rewriting the client's document.
fn current_fields(hook: &Webhook) -> Map<String, Value> {
    let mut fields = hook.doc.clone();
    fields.insert("enabled".into(), Value::Bool(hook.enabled));
    fields
}

fn disable_reason(hook: &Webhook) -> Option<&str> {
    hook.disabled_reason.as_deref().filter(|_| !hook.enabled)
}

/// The listing summary of a hook (docs/kazoo.md#listing-summary).
fn summary(hook: &Webhook) -> Value {
    let mut fields = Map::new();
    fields.insert("id".into(), Value::String(hook.id.to_string()));
    for key in ["hook", "name", "uri"] {
        if let Some(value) = hook.doc.get(key) {
            fields.insert(key.into(), value.clone());
        }
    }
    fields.insert("enabled".into(), Value::Bool(hook.enabled));
    if let Some(group) = hook.doc.get("group") {
        fields.insert("group".into(), group.clone());
    }
    insert_state(hook, &mut fields);
    Value::Object(fields)
}

/// The document as Kazoo stores it, private fields included, for the `filter_*` parameters.
fn stored_document(hook: &Webhook) -> Value {
    let mut fields = current_fields(hook);
    fields.insert("id".into(), Value::String(hook.id.to_string()));
    fields.insert("pvt_type".into(), Value::String("webhook".into()));
    fields.insert("pvt_account_id".into(), Value::String(hook.account_id.to_string()));
    fields.insert("pvt_created".into(), Value::from(hook.created));
    fields.insert("pvt_modified".into(), Value::from(hook.modified));
    if let Some(reason) = &hook.disabled_reason {
        fields.insert("pvt_disabled_message".into(), Value::String(reason.clone()));
    }
    Value::Object(fields)
}
