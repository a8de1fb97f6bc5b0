//! The per-request part of Crossbar's conventions, applied before routing: request id, credentials,
//! the JSON (or form) body, method tunnelling, CORS, and the `X-Request-ID` answer header.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName,
    HeaderValue, TRANSFER_ENCODING,
};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{HttpMessage, ResponseError};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tracing::Instrument;
use webhooks_model::errors::ValidationErrors;
use webhooks_model::ids::AccountId;

use super::error::ApiError;
use crate::ApiState;
use crate::auth::authenticate;

tokio::task_local! {
    static META: RequestMeta;
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
const X_PRETTY_PRINT: HeaderName = HeaderName::from_static("x-pretty-print");
const X_AUTH_ACCOUNT_ID: HeaderName = HeaderName::from_static("x-auth-account-id");

/// What the envelope of every response needs to know about its request.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The client's `X-Request-ID`, or a generated 32-hex id.
    pub request_id: String,
    /// This server's node name.
    pub node: Arc<str>,
    /// The token the client sent, echoed as `auth_token`.
    pub auth_token: Option<String>,
    /// The account that token acts as, once verified.
    pub caller: Option<AccountId>,
    /// Pretty-print the response.
    pub pretty: bool,
    /// `?jsonp=<function>`: the response is that function called with the envelope.
    pub jsonp: Option<String>,
}

impl RequestMeta {
    /// True when the request carried a valid token.
    pub fn authenticated(&self) -> bool {
        self.caller.is_some()
    }
}

/// Whether `name` can be a JSONP callback without letting a page inject script: a dotted
/// JavaScript identifier path of sane length. Other names are ignored and plain JSON answered.
fn jsonp_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|part| {
            part.chars().next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == '$')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

/// The meta of the request being served, when called inside the Crossbar middleware.
pub fn current() -> Option<RequestMeta> {
    META.try_with(Clone::clone).ok()
}

/// The request body as the middleware read it, kept in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// No body at all.
    Empty,
    /// A JSON value (form bodies are converted to a JSON object).
    Json(Arc<Value>),
    /// A body that starts as a JSON array, kept as text: an array carries no envelope fields for
    /// the middleware, and a handler reading its items one by one need not build the whole value.
    /// Parsed (and found valid or not) when a handler asks for the value.
    Array(Bytes),
    /// Not parseable: the parser's message.
    Invalid(String),
}

/// The Crossbar middleware; see the module documentation.
pub async fn middleware(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = request.app_data::<Data<ApiState>>().cloned();
    let node: Arc<str> = state.as_ref().map_or_else(|| Arc::from("webhooks"), |state| state.node());
    let limit = state.as_ref().map_or(1 << 20, |state| state.settings.api.max_body_bytes);
    let request_id = header_text(&request, &X_REQUEST_ID)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .unwrap_or_else(webhooks_model::ids::random_id);
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes()).into_owned().collect();
    let query_flag = |name: &str| query.iter().any(|(key, value)| key == name && value == "true");
    let pretty = query_flag("pretty_print") || header_text(&request, &X_PRETTY_PRINT).as_deref() == Some("true");

    let jsonp =
        query.iter().find(|(key, _)| key == "jsonp").map(|(_, name)| name.clone()).filter(|name| jsonp_safe(name));
    let mut meta = RequestMeta { request_id, node, auth_token: None, caller: None, pretty, jsonp };
    let mut early: Option<ApiError> = None;

    let body = if request.method() == Method::OPTIONS {
        Body::Empty
    } else {
        match read_body(&mut request, limit).await {
            Ok(body) => body,
            Err(error) => {
                early = Some(error);
                Body::Empty
            }
        }
    };

    let envelope_text = |key: &str| envelope_value(&body, key).and_then(Value::as_str).map(str::to_owned);
    let token = header_text(&request, &X_AUTH_TOKEN)
        .or_else(|| {
            header_text(&request, &AUTHORIZATION)
                .and_then(|value| value.strip_prefix("Bearer ").map(|token| token.trim().to_owned()))
        })
        .or_else(|| query.iter().find(|(key, _)| key == "auth_token").map(|(_, value)| value.clone()))
        .or_else(|| envelope_text("auth_token"))
        .filter(|token| !token.is_empty());
    if let Some(token) = token {
        let verified = match &state {
            Some(state) => authenticate(state, &token, header_text(&request, &X_AUTH_ACCOUNT_ID).as_deref()).await,
            None => Err(ApiError::InvalidCredentials),
        };
        match verified {
            Ok(caller) => meta.caller = Some(caller),
            Err(error) => early = early.or(Some(error)),
        }
        meta.auth_token = Some(token);
    }

    // A preflight is a real OPTIONS request; a POST tunnelled to OPTIONS is routed like any other.
    let is_preflight = request.method() == Method::OPTIONS;
    // Crossbar lets clients tunnel a method through POST, in the query string or the envelope;
    // a verb that names no method is refused rather than silently served as the POST.
    if request.method() == Method::POST {
        let verb = query
            .iter()
            .find(|(key, _)| key == "verb")
            .map(|(_, value)| Value::String(value.clone()))
            .or_else(|| envelope_value(&body, "verb").cloned());
        match verb.map(|verb| tunnelled_method(&verb).map_err(|detail| (verb, detail))) {
            None => {}
            Some(Ok(method)) => request.head_mut().method = method,
            Some(Err((verb, (rule, message)))) => {
                let detail = json!({"message": message, "value": verb});
                early = early.or(Some(ApiError::Validation(ValidationErrors::single("verb", rule, detail))));
            }
        }
    }
    request.extensions_mut().insert(body);

    let request_id = meta.request_id.clone();
    // Every log line of the request carries its id; the account is recorded once authorized.
    let span = tracing::info_span!(
        "http.request",
        request.id = %request_id,
        http.method = %request.method(),
        http.path = %request.path(),
        account.id = tracing::field::Empty,
    );
    let mut response = META
        .scope(meta, async move {
            if let Some(error) = early {
                return Ok(request.into_response(error.error_response()).map_into_right_body());
            }
            if is_preflight {
                let answer = actix_web::HttpResponse::build(StatusCode::OK)
                    .insert_header((CONTENT_TYPE, "application/json"))
                    .body("{}");
                return Ok(request.into_response(answer).map_into_right_body());
            }
            next.call(request).await.map(ServiceResponse::map_into_left_body)
        })
        .instrument(span)
        .await?;

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID, value);
    }
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers
        .insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS, HEAD, PATCH"));
    // Crossbar's lists (Monster UI sends X-Kazoo-Cluster-ID when a cluster id is configured, and
    // If-Match on conditional writes), and the headers this service reads besides.
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Content-Type, Depth, User-Agent, X-Http-Method-Override, X-File-Size, X-Requested-With, If-Modified-Since, X-File-Name, Cache-Control, X-Auth-Token, X-Kazoo-Cluster-ID, If-Match, X-Auth-Account-ID, X-Request-ID, X-Pretty-Print, Authorization",
        ),
    );
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Type, X-Auth-Token, X-Request-ID, X-Kazoo-Cluster-ID, Location, Etag, ETag"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    Ok(response)
}

/// Reads and parses the body, refusing more than `limit` bytes.
async fn read_body(request: &mut ServiceRequest, limit: usize) -> Result<Body, ApiError> {
    let declared = header_text(request, &CONTENT_LENGTH).and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // The body ends where its framing says: at the last chunk, else after the declared length
    // (nothing without one). Reading no further matters for a CONNECT and an `Upgrade: websocket`
    // request: actix hands their payload over as a stream that ends only with the connection,
    // and they are served as the plain requests they also are.
    let chunked = header_text(request, &TRANSFER_ENCODING)
        .is_some_and(|encoding| encoding.to_ascii_lowercase().contains("chunked"));
    let framed = if chunked { None } else { Some(declared.unwrap_or(0)) };
    let mut payload = request.take_payload();
    // Room for the declared length at once: growing by chunks copies a large body many times.
    let mut bytes = BytesMut::with_capacity(declared.unwrap_or(0));
    loop {
        let wanted = framed.map_or(usize::MAX, |length| length - bytes.len());
        if wanted == 0 {
            break;
        }
        let Some(chunk) = payload.next().await else { break };
        let chunk = chunk.map_err(|error| ApiError::InvalidJson(format!("the body could not be read: {error}")))?;
        // What a stream carries past the declared length is not this request's.
        let chunk = &chunk[..chunk.len().min(wanted)];
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        bytes.extend_from_slice(chunk);
    }
    let Some(&first) = bytes.iter().find(|byte| !byte.is_ascii_whitespace()) else {
        return Ok(Body::Empty);
    };
    let is_form = header_text(request, &CONTENT_TYPE)
        .is_some_and(|content_type| content_type.starts_with("application/x-www-form-urlencoded"));
    // `curl -d '{...}'` sends JSON labelled as a form; Crossbar reads such a body as JSON.
    if is_form && first != b'{' {
        return Ok(Body::Json(Arc::new(form_to_json(&bytes))));
    }
    if first == b'[' {
        return Ok(Body::Array(bytes.freeze()));
    }
    Ok(match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => Body::Json(Arc::new(value)),
        Err(error) => Body::Invalid(error.to_string()),
    })
}

/// Crossbar converts form bodies to JSON: each pair becomes a member; a `data` member holding JSON
/// text is parsed, and pairs without a `data` member are taken as the data itself.
fn form_to_json(bytes: &[u8]) -> Value {
    let mut fields = Map::new();
    for (key, value) in url::form_urlencoded::parse(bytes) {
        let parsed = if key == "data" {
            serde_json::from_str(&value).unwrap_or(Value::String(value.into_owned()))
        } else {
            Value::String(value.into_owned())
        };
        fields.insert(key.into_owned(), parsed);
    }
    if fields.contains_key("data") {
        Value::Object(fields)
    } else {
        let mut envelope = Map::new();
        envelope.insert("data".into(), Value::Object(fields));
        Value::Object(envelope)
    }
}

/// The method a tunnelling `verb` names (any case), or the rule it breaks and why.
fn tunnelled_method(verb: &Value) -> Result<Method, (&'static str, &'static str)> {
    let text = verb.as_str().ok_or(("type", "Value did not match type(s): string"))?;
    Method::from_bytes(text.to_ascii_uppercase().as_bytes()).map_err(|_| ("pattern", "verb must name an HTTP method"))
}

/// A member of the body's envelope (a JSON object body).
fn envelope_value<'a>(body: &'a Body, key: &str) -> Option<&'a Value> {
    match body {
        Body::Json(value) => value.get(key),
        _ => None,
    }
}

fn header_text(request: &ServiceRequest, name: &HeaderName) -> Option<String> {
    request.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}
