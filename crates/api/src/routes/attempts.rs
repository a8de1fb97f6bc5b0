//! `/v2/accounts/{A}/webhooks/attempts` and `/v2/accounts/{A}/webhooks/{id}/attempts`.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use actix_web::web::{Data, Path};
use serde_json::{Value, json};
use webhooks_model::errors::ValidationErrors;
use webhooks_model::ids::WebhookId;
use webhooks_model::time::gregorian_from_unix;
use webhooks_storage::Attempt;

use crate::ApiState;
use crate::auth::Scope;
use crate::crossbar::{ApiError, PageInfo, Reply};
use crate::query::QueryParams;

/// Crossbar's widest `created_from`..`created_to` span: 31 days and one hour.
const MAXIMUM_RANGE: i64 = 2_682_000;

/// Attempts of every hook of the account.
pub async fn account_attempts(state: Data<ApiState>, scope: Scope, request: HttpRequest) -> Result<Reply, ApiError> {
    list(&state, &scope, None, request.query_string()).await
}

/// Attempts of one hook of the account; a hook of another account has none here.
pub async fn hook_attempts(
    state: Data<ApiState>,
    scope: Scope,
    request: HttpRequest,
    path: Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let raw_id = &path.1;
    let id: WebhookId = raw_id.parse().map_err(|_| ApiError::BadIdentifier(raw_id.clone()))?;
    list(&state, &scope, Some(&id), request.query_string()).await
}

async fn list(state: &ApiState, scope: &Scope, hook: Option<&WebhookId>, query: &str) -> Result<Reply, ApiError> {
    let query = QueryParams::parse(query);
    let (from, to) = time_window(&query)?;
    let page = query.page(state.settings.default_page_size)?;
    let filters = query.filters();
    let found = state.store.list_attempts(&scope.account.id, hook, from, to, &page).await?;
    let items = found
        .items
        .iter()
        .filter(|attempt| filters.is_empty() || filters.accept(&stored_attempt(attempt)))
        .map(attempt_view)
        .collect();
    Ok(Reply::listing(items, PageInfo { start_key: page.start_key, next_start_key: found.next_start_key }))
}

/// The attempt's public fields plus `timestamp` (its creation, gregorian seconds).
fn attempt_view(attempt: &Attempt) -> Value {
    let mut fields = attempt.doc.clone();
    fields.insert("timestamp".into(), Value::from(attempt.created));
    Value::Object(fields)
}

/// The attempt as Kazoo stores it, for the `filter_*` parameters.
fn stored_attempt(attempt: &Attempt) -> Value {
    let mut fields = attempt.doc.clone();
    fields.insert("pvt_type".into(), Value::String("webhook_attempt".into()));
    fields.insert("pvt_account_id".into(), Value::String(attempt.account_id.to_string()));
    fields.insert("pvt_created".into(), Value::from(attempt.created));
    fields.insert("pvt_modified".into(), Value::from(attempt.created));
    Value::Object(fields)
}

/// `created_from`/`created_to` with Crossbar's defaults and checks.
fn time_window(query: &QueryParams) -> Result<(i64, i64), ApiError> {
    let bound = |name: &str| -> Result<Option<i64>, ApiError> {
        match query.get(name) {
            None => Ok(None),
            Some(text) => text.trim().parse::<i64>().map(Some).map_err(|_| {
                ValidationErrors::single(
                    name,
                    "type",
                    json!({"message": "Value did not match type(s): integer", "target": "integer", "value": text}),
                )
                .into()
            }),
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64);
    let to = bound("created_to")?.unwrap_or_else(|| gregorian_from_unix(now));
    let from = bound("created_from")?.unwrap_or(to - MAXIMUM_RANGE);
    if to < from {
        return Err(ValidationErrors::single(
            "created_from",
            "date_range",
            json!({"message": format!("created_to {to} is prior to created_from {from}"), "cause": from}),
        )
        .into());
    }
    if to - from > MAXIMUM_RANGE {
        return Err(ValidationErrors::single(
            "created_from",
            "date_range",
            json!({
                "message": format!("created_to {to} is more than {MAXIMUM_RANGE} seconds from created_from {from}"),
                "cause": to
            }),
        )
        .into());
    }
    Ok((from, to))
}
