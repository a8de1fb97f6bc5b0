//! `/v2/accounts/{A}/webhooks/attempts`, `/v2/accounts/{A}/webhooks/{id}/attempts`, the
//! redeliveries (`.../attempts/{attempt_id}/resend` and `.../attempts/replay`) and the test
//! callout `.../webhooks/{id}/test`.

use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use serde_json::{Value, json};
use webhooks_model::errors::ValidationErrors;
use webhooks_model::hooks::HookType;
use webhooks_model::ids::{EventId, WebhookId};
use webhooks_model::job::{DeliveryJob, JobEvent, job_for_document};
use webhooks_model::payload::{Finishing, HookView};
use webhooks_model::samples::test_delivery;
use webhooks_model::time::{gregorian_now, parse_instant, unix_millis};
use webhooks_storage::{Attempt, RedeliveryError, Webhook};

use super::webhooks::{load, parse_hook_id};
use crate::auth::Scope;
use crate::crossbar::{ApiError, Envelope, PageInfo, Reply};
use crate::operations::Unpublished;
use crate::query::QueryParams;
use crate::{ApiState, operations};

/// Crossbar's widest `created_from`..`created_to` span: 31 days and one hour.
const MAXIMUM_RANGE: i64 = 2_682_000;

/// Attempts of every hook of the account.
pub async fn account_attempts(state: Data<ApiState>, scope: Scope, request: HttpRequest) -> Result<Reply, ApiError> {
    list(&state, &scope, None, request.query_string()).await
}

/// Attempts of one hook of the account; under any other account the hook is not found, as it is
/// not found by a read of the hook itself.
pub async fn hook_attempts(
    state: Data<ApiState>,
    scope: Scope,
    request: HttpRequest,
    path: Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let hook = load(&state, &scope, &path.1).await?;
    list(&state, &scope, Some(&hook.id), request.query_string()).await
}

/// `PUT .../webhooks/{id}/attempts/{attempt_id}/resend`: delivers the attempt's job again, to
/// the hook as configured now, with the same event id; 202 once the broker has it.
pub async fn resend(
    state: Data<ApiState>,
    scope: Scope,
    path: Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (_, raw_hook, attempt) = path.into_inner();
    let hook = parse_hook_id(&raw_hook)?;
    let job = operations::resend(&state.store, &attempt, Some((&scope.account.id, &hook)))
        .await
        .map_err(|error| refusal(error, &raw_hook, &attempt))?;
    let event_id = job.event_id.clone();
    publish(&state, vec![job]).await?;
    tracing::info!(account.id = %scope.account.id, hook.id = %hook, event.id = %event_id, "delivery resent");
    Ok(Reply::ok(json!({"resent": 1, "event_id": event_id})).with_status(StatusCode::ACCEPTED).without_revision())
}

/// `PUT .../webhooks/{id}/attempts/replay` with `{"data": {"since": T, "dry_run": B}}`: delivers
/// again every event of the hook whose latest record since `T` is a failure; with `dry_run`,
/// only counts them.
pub async fn replay(
    state: Data<ApiState>,
    scope: Scope,
    path: Path<(String, String)>,
    body: Envelope,
) -> Result<Reply, ApiError> {
    let data = body.data_object()?;
    let since = match data.get("since") {
        // A whole number however it is spelled (`0.0` is JSON's integer 0 too); gregorian seconds
        // start at year 1, so a negative count names no time.
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|seconds| seconds.fract() == 0.0 && seconds.abs() < 1e18)
                    .map(|seconds| seconds as i64)
            })
            .filter(|seconds| *seconds >= 0)
            .ok_or(None),
        Some(Value::String(text)) => parse_instant(text).map_err(|why| Some(why.to_string())),
        _ => Err(None),
    };
    let since = since.map_err(|cause| {
        let mut detail =
            json!({"message": "since must be gregorian seconds or RFC 3339 text", "value": data.get("since")});
        if let Some(cause) = cause {
            detail["cause"] = Value::String(cause);
        }
        ApiError::from(ValidationErrors::single("since", "type", detail))
    })?;
    let dry_run = match data.get("dry_run") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(ValidationErrors::single(
                "dry_run",
                "type",
                json!({"message": "Value did not match type(s): boolean", "target": "boolean", "value": other}),
            )
            .into());
        }
    };
    let raw_hook = &path.1;
    let hook = parse_hook_id(raw_hook)?;
    let jobs = operations::replay(&state.store, &hook, Some(&scope.account.id), since)
        .await
        .map_err(|error| refusal(error, raw_hook, ""))?;
    let count = jobs.len();
    if dry_run {
        return Ok(Reply::ok(json!({"would_replay": count})).without_revision());
    }
    publish(&state, jobs).await?;
    tracing::info!(account.id = %scope.account.id, hook.id = %hook, count, since, "failed deliveries replayed");
    Ok(Reply::ok(json!({"replayed": count})).with_status(StatusCode::ACCEPTED).without_revision())
}

/// How often a test waits for its attempt record to appear.
const TEST_POLL: Duration = Duration::from_millis(100);

/// `PUT .../webhooks/{id}/test`: sends the hook's sample payload to its URI now, once, whatever
/// the hook's state, without touching its failure count. Answers 200 with the attempt record once
/// a dispatcher has written it, or 202 with the event id when that takes longer than the
/// configured wait (the record then appears among the hook's attempts).
pub async fn test(state: Data<ApiState>, scope: Scope, path: Path<(String, String)>) -> Result<Reply, ApiError> {
    let hook = load(&state, &scope, &path.1).await?;
    let finishing = Finishing { cluster_id: &state.settings.cluster_id, compat: state.settings.kazoo.payload_compat };
    let job = test_job(&hook, &finishing)?;
    let event_id = job.event_id.clone();
    publish(&state, vec![job]).await?;
    tracing::info!(account.id = %scope.account.id, hook.id = %hook.id, event.id = %event_id, "test callout sent");
    let deadline = Instant::now() + Duration::from_secs(state.settings.api.test_wait_seconds);
    loop {
        if let Some(attempt) = state.store.event_attempt(&hook.account_id, &hook.id, event_id.as_str()).await? {
            return Ok(Reply::ok(attempt_view(attempt)).without_revision());
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(TEST_POLL).await;
    }
    let pending = json!({"event_id": event_id, "status": "pending"});
    Ok(Reply::ok(pending).with_status(StatusCode::ACCEPTED).without_revision())
}

/// The test callout of `hook`: its type's sample, finished for it, sent once.
fn test_job(hook: &Webhook, finishing: &Finishing<'_>) -> Result<DeliveryJob, ApiError> {
    let view = HookType::parse(&hook.hook).map(|hook_type| HookView::of(hook_type, &hook.doc));
    let delivery = view.and_then(|view| test_delivery(&view, finishing)).ok_or_else(|| ApiError::Refused {
        message: "no test payload",
        reason: format!("hooks of type {} have no sample payload to send", hook.hook),
    })?;
    let event = JobEvent {
        event_id: EventId::random(),
        hook_event: delivery.hook_event.to_owned(),
        payload: delivery.payload.into(),
        published_at_ms: unix_millis().unsigned_abs(),
    };
    let mut job = job_for_document(event, hook.id.clone(), hook.account_id.clone(), &hook.doc);
    job.target.retries = 0;
    job.test = true;
    Ok(job)
}

/// Publishes `jobs` for the dispatchers ([`operations::publish_jobs`]).
async fn publish(state: &ApiState, jobs: Vec<DeliveryJob>) -> Result<(), ApiError> {
    operations::publish_jobs(&state.bus, jobs, |_| {}).await.map_err(|Unpublished { source, .. }| {
        tracing::error!(error = %source, "redelivery jobs not published");
        ApiError::Unavailable("the message bus did not accept the deliveries; nothing was sent")
    })
}

/// The API's answer to a refused redelivery: 404 for what does not exist, 400 for what cannot
/// be delivered again.
fn refusal(error: RedeliveryError, hook: &str, attempt: &str) -> ApiError {
    let refused =
        |reason: &RedeliveryError| ApiError::Refused { message: "not redeliverable", reason: reason.to_string() };
    match error {
        RedeliveryError::UnknownAttempt => ApiError::BadIdentifier(attempt.to_owned()),
        RedeliveryError::UnknownHook => ApiError::BadIdentifier(hook.to_owned()),
        RedeliveryError::NotKept | RedeliveryError::HookDisabled => refused(&error),
        RedeliveryError::Storage(error) => error.into(),
    }
}

async fn list(state: &ApiState, scope: &Scope, hook: Option<&WebhookId>, query: &str) -> Result<Reply, ApiError> {
    let query = QueryParams::parse(query);
    let (from, to) = time_window(&query)?;
    let page = query.page(state.settings.api.default_page_size)?;
    let filters = query.filters();
    let found = state.store.list_attempts(&scope.account.id, hook, from, to, &page).await?;
    // Each record is moved into its view, not copied: a listing without pagination may hold
    // thousands, each with its request and response bodies.
    let items = found
        .items
        .into_iter()
        .filter(|attempt| filters.is_empty() || filters.accept(&stored_attempt(attempt)))
        .map(attempt_view)
        .collect();
    Ok(Reply::listing(items, PageInfo { start_key: page.start_key, next_start_key: found.next_start_key }))
}

/// The attempt's public fields plus `id` (what a resend names) and `timestamp` (its creation,
/// gregorian seconds). The job kept with the record stays private.
fn attempt_view(attempt: Attempt) -> Value {
    let mut fields = attempt.doc;
    fields.insert("id".into(), Value::String(attempt.id));
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
    let to = bound("created_to")?.unwrap_or_else(gregorian_now);
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
