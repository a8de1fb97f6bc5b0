//! System-scope paths: the hook definitions and the sample payloads. They need no token.

use actix_web::HttpRequest;
use actix_web::web::{Data, Path};
use serde_json::Value;
use webhooks_model::samples;

use crate::ApiState;
use crate::auth::{Caller, OptionalCaller, Scope};
use crate::crossbar::{ApiError, PageInfo, Reply};
use crate::query::QueryParams;

/// `GET /v2/webhooks`: the available hook types, descending by name.
pub async fn definitions(state: Data<ApiState>, caller: OptionalCaller) -> Result<Reply, ApiError> {
    let items = state.definitions.listing(caller.is_superduper_admin());
    Ok(Reply::listing(items, PageInfo::default()))
}

/// Writes on `/v2/webhooks...` are refused: 401 without a token, 403 with one.
pub async fn refuse(_caller: Caller) -> Result<Reply, ApiError> {
    Err(ApiError::Forbidden)
}

/// `GET /v2/webhooks/samples`.
pub async fn sample_ids() -> Result<Reply, ApiError> {
    Ok(ids_reply())
}

/// `GET /v2/accounts/{A}/webhooks/samples`.
pub async fn account_sample_ids(_scope: Scope) -> Result<Reply, ApiError> {
    Ok(ids_reply())
}

/// `GET /v2/webhooks/samples/{id}`.
pub async fn sample(request: HttpRequest, path: Path<String>) -> Result<Reply, ApiError> {
    sample_reply(&path.into_inner(), request.query_string())
}

/// `GET /v2/accounts/{A}/webhooks/samples/{id}`.
pub async fn account_sample(
    _scope: Scope,
    request: HttpRequest,
    path: Path<(String, String)>,
) -> Result<Reply, ApiError> {
    sample_reply(&path.into_inner().1, request.query_string())
}

fn ids_reply() -> Reply {
    let ids = samples::sample_ids().iter().map(|id| Value::String((*id).to_owned())).collect();
    Reply::ok(Value::Array(ids)).without_revision()
}

/// The sample payloads of `id`, narrowed by the query's filters.
fn sample_reply(id: &str, query: &str) -> Result<Reply, ApiError> {
    let payloads = samples::sample(id).ok_or_else(|| ApiError::BadIdentifier(id.to_owned()))?;
    let filters = QueryParams::parse(query).filters();
    let items = payloads.into_iter().filter(|payload| filters.accept(payload)).collect();
    Ok(Reply::listing(items, PageInfo::default()))
}
