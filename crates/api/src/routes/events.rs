//! `POST /v2/events`: Kazoo events handed over HTTP, for publishers without AMQP and for the
//! embedded mode. Each is published on the exchange and routing key a Kazoo publisher would use,
//! so the router sees no difference; only a `traceparent` header is added, so the request's trace
//! goes on in the router.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::Data;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tracing::Instrument;
use webhooks_bus::Outgoing;
use webhooks_bus::trace::continue_trace;
use webhooks_model::errors::ValidationErrors;
use webhooks_model::event::{EventError, KazooEvent, address, read_event};
use webhooks_model::trace::{TRACE_PARENT_HEADER, TraceParent};

use crate::ApiState;
use crate::auth::Caller;
use crate::crossbar::{ApiError, Envelope, Reply};

/// Accepts one event or an array of them, bare or inside a `{"data": ...}` envelope. Only the
/// master account may publish. All events are checked before any is published, so a request is
/// published whole or not at all; 202 once the broker has confirmed every one.
///
/// The events continue the request's trace (its valid `traceparent` header), else start one.
pub async fn ingest(
    state: Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    body: Envelope,
) -> Result<Reply, ApiError> {
    let inbound: Option<TraceParent> = request
        .headers()
        .get(TRACE_PARENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let span = tracing::info_span!("events.ingest", trace_id = tracing::field::Empty);
    let trace_parent = continue_trace(&span, inbound.as_ref());
    publish_events(&state, &caller, body, &trace_parent).instrument(span).await
}

/// [`ingest`] inside its span: every message carries `trace_parent`.
async fn publish_events(
    state: &ApiState,
    caller: &Caller,
    body: Envelope,
    trace_parent: &TraceParent,
) -> Result<Reply, ApiError> {
    if !caller.0.superduper_admin {
        return Err(ApiError::Forbidden);
    }
    let events = match body.array_text() {
        // An array is read item by item: each event only as far as it must be checked, and
        // published as the text it came as.
        Some(text) => {
            let items: Vec<&RawValue> =
                serde_json::from_slice(text).map_err(|error| ApiError::InvalidJson(error.to_string()))?;
            let mut events = Vec::with_capacity(items.len());
            for item in items {
                let read =
                    read_event(item.get().as_bytes()).map_err(|error| ApiError::InvalidJson(error.to_string()))?;
                events.push((read, Some(text.slice_ref(item.get().as_bytes()))));
            }
            events
        }
        None => match unwrap_envelope(body.into_json()?) {
            Some(Value::Array(events)) => events.into_iter().map(|event| (event, None)).collect(),
            Some(event @ Value::Object(_)) => vec![(event, None)],
            _ => Vec::new(),
        },
    };
    if events.is_empty() {
        return Err(ValidationErrors::single(
            "data",
            "type",
            json!({"message": "the body must be a Kazoo event object or a non-empty array of them"}),
        )
        .into());
    }
    let mut errors = ValidationErrors::new();
    let mut messages = Vec::with_capacity(events.len());
    let single = events.len() == 1;
    for (index, (event, text)) in events.into_iter().enumerate() {
        // A single event's errors name its fields; an array's carry the item's index first.
        let prefix = if single { String::new() } else { format!("{index}.") };
        match checked_address(&event) {
            // The broker would refuse the publish: refused here, naming the field that made it long.
            Ok((_, routing_key)) if routing_key.len() > MAX_ROUTING_KEY_BYTES => {
                let message = format!(
                    "the routing key of this event is {} bytes long, above the broker's {MAX_ROUTING_KEY_BYTES}",
                    routing_key.len()
                );
                errors.add(&format!("{prefix}{}", keyed_field(&event)), "maxLength", json!({"message": message}));
            }
            Ok((exchange, routing_key)) => {
                let message = match text {
                    Some(text) => Outgoing::persistent(exchange, &routing_key, text),
                    // The parsed event itself: the in-process router reads it without parsing again.
                    None => Outgoing::persistent_value(exchange, &routing_key, event),
                };
                messages.push(message.with_trace_parent(trace_parent));
            }
            Err(error) => {
                let (field, rule) = error_field(&error);
                errors.add(&format!("{prefix}{field}"), rule, json!({"message": error.to_string()}));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let accepted = messages.len();
    state.bus.publish_all(messages).await.map_err(|error| {
        tracing::error!(error = %error, "ingested events not published");
        ApiError::Unavailable("the message bus did not accept the events; nothing was published")
    })?;
    tracing::debug!(accepted, "events ingested");
    Ok(Reply::ok(json!({"accepted": accepted})).without_revision().with_status(StatusCode::ACCEPTED))
}

/// AMQP's limit on a routing key (a short string).
const MAX_ROUTING_KEY_BYTES: usize = 255;

/// The field whose value an event's routing key mostly carries.
fn keyed_field(event: &Value) -> &'static str {
    match event.get("Event-Category").and_then(Value::as_str) {
        Some("call_event") => "Call-ID",
        Some("configuration") => "ID",
        Some("sms" | "mms") => "Message-ID",
        _ => "Event-Name",
    }
}

/// A `{"data": ...}` envelope's content; a Kazoo event itself never has a `data` member.
fn unwrap_envelope(body: Option<Value>) -> Option<Value> {
    match body {
        Some(Value::Object(mut fields)) if fields.len() == 1 && fields.contains_key("data") => fields.remove("data"),
        other => other,
    }
}

/// Where a Kazoo publisher would send `event`. Events this system deliberately does not deliver
/// are accepted (the router drops them as it drops them from the bus); malformed ones are not.
fn checked_address(event: &Value) -> Result<(&'static str, String), EventError> {
    let (exchange, routing_key) = address(event)?;
    match KazooEvent::parse(&routing_key, event) {
        Err(error) if !error.is_ignored() => Err(error),
        _ => Ok((exchange, routing_key)),
    }
}

/// The field and rule a malformed event is reported under.
fn error_field(error: &EventError) -> (&'static str, &'static str) {
    match error {
        EventError::NotAnObject => ("data", "type"),
        EventError::MissingField(field) => (field, "required"),
        EventError::InvalidField { field, .. } => (field, "pattern"),
        EventError::IncompleteNotification { field, .. } => (field, "required"),
        EventError::UnknownKind(_) => ("Event-Category", "required"),
        EventError::UnsupportedCategory(_) => ("Event-Category", "enum"),
        _ => ("Event-Name", "enum"),
    }
}
