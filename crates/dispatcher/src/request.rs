//! The HTTP request of one callout (docs/kazoo.md#requests), built from a job without I/O.
//!
//! - `get`: the form-encoded payload in the query string, no body, no `Content-Type`.
//! - `post`/`put` + `form-data`: the form-encoded payload, `application/x-www-form-urlencoded`.
//! - `post`/`put` + `json`: the payload as compact JSON, `application/json` (Kazoo pretty-prints;
//!   receivers parse JSON either way).
//!
//! Every request carries `X-Hook-ID`, `X-Account-ID` (the hook owner) and `X-Event-ID` (stable
//! across retries), then the hook's custom headers, then `traceparent` unless the hook sets its
//! own, then the Standard Webhooks headers when the hook has a signing key.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use webhooks_model::form;
use webhooks_model::job::{DeliveryJob, Payload};
use webhooks_model::trace::{TRACE_PARENT_HEADER, TraceParent};
use webhooks_model::webhook::{CalloutUri, Format, HttpVerb, UncallableUri};

use crate::signing::SigningKey;

/// One callout, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct CalloutRequest {
    /// `GET`, `POST` or `PUT`.
    pub method: Method,
    /// Where it goes (for GET with the payload in the query string), or why it cannot go anywhere.
    pub target: Result<CalloutUri, UncallableUri>,
    /// Headers in the order sent, with their case as sent.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes (empty for GET).
    pub body: Bytes,
    /// Custom headers that were left out, by name, with why (logged once by the caller).
    pub skipped_headers: Vec<(String, &'static str)>,
}

/// How a payload travels: as JSON, or form-encoded (a form body or a GET's query string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Compact JSON.
    Json,
    /// `application/x-www-form-urlencoded` (ASCII).
    Form,
}

impl Encoding {
    /// How `job`'s payload travels.
    pub fn of(job: &DeliveryJob) -> Self {
        match (job.target.http_verb, job.target.format) {
            (HttpVerb::Get, _) | (_, Format::FormData) => Self::Form,
            (_, Format::Json) => Self::Json,
        }
    }

    /// `payload` encoded.
    pub fn encode(self, payload: &Payload) -> Bytes {
        match self {
            Self::Json => Bytes::copy_from_slice(payload.json().as_bytes()),
            Self::Form => Bytes::from(form::encode(payload.fields())),
        }
    }
}

/// The encoded payload of each of `jobs`, in order: encoded once per payload and encoding, however
/// many jobs share them (an event's hooks mostly do).
pub fn encode_payloads(jobs: &[DeliveryJob]) -> Vec<Bytes> {
    let mut encoded = HashMap::new();
    jobs.iter()
        .map(|job| {
            let encoding = Encoding::of(job);
            let key = (job.payload.addr(), encoding);
            encoded.entry(key).or_insert_with(|| encoding.encode(&job.payload)).clone()
        })
        .collect()
}

/// The request for `job`, whose payload is `encoded` as [`Encoding::of`] the job says, in the trace
/// `trace_parent` (the callout's own span in the job's trace), signed with `key` at `timestamp`
/// (Unix seconds) when given.
pub fn build_request(
    job: &DeliveryJob,
    encoded: Bytes,
    trace_parent: &TraceParent,
    key: Option<&SigningKey>,
    timestamp: i64,
) -> CalloutRequest {
    let callout = job.target.uri.callout().cloned().map_err(Clone::clone);
    let (method, target, body, content_type) = match (job.target.http_verb, job.target.format) {
        // A form is ASCII.
        (HttpVerb::Get, _) => (
            Method::GET,
            callout.and_then(|callout| callout.with_query(std::str::from_utf8(&encoded).unwrap_or_default())),
            Bytes::new(),
            None,
        ),
        (verb, Format::FormData) => (method_of(verb), callout, encoded, Some("application/x-www-form-urlencoded")),
        (verb, Format::Json) => (method_of(verb), callout, encoded, Some("application/json")),
    };
    let mut headers = vec![
        ("X-Hook-ID".to_owned(), job.hook_id.to_string()),
        ("X-Account-ID".to_owned(), job.account_id.to_string()),
        ("X-Event-ID".to_owned(), job.event_id.to_string()),
    ];
    if let Some(content_type) = content_type {
        headers.push(("Content-Type".to_owned(), content_type.to_owned()));
    }
    let mut skipped_headers = Vec::new();
    for (name, value) in job.target.custom_request_headers.iter().flat_map(|headers| headers.iter()) {
        match custom_header(name, value) {
            Ok(value) => headers.push((name.clone(), value)),
            Err(why) => skipped_headers.push((name.clone(), why)),
        }
    }
    // A hook that sets its own trace parent keeps it.
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(TRACE_PARENT_HEADER)) {
        headers.push((TRACE_PARENT_HEADER.to_owned(), trace_parent.to_string()));
    }
    if let Some(key) = key {
        headers.push(("webhook-id".to_owned(), job.event_id.to_string()));
        headers.push(("webhook-timestamp".to_owned(), timestamp.to_string()));
        headers.push(("webhook-signature".to_owned(), key.sign(job.event_id.as_str(), timestamp, &body)));
    }
    CalloutRequest { method, target, headers, body, skipped_headers }
}

/// The HTTP method of a body-carrying verb.
fn method_of(verb: HttpVerb) -> Method {
    match verb {
        HttpVerb::Get => Method::GET,
        HttpVerb::Post => Method::POST,
        HttpVerb::Put => Method::PUT,
    }
}

/// The value of a custom header, or why it is left out.
fn custom_header(name: &str, value: &Value) -> Result<String, &'static str> {
    let Value::String(value) = value else { return Err("value is not a string") };
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err("not a valid header name");
    }
    // The API refuses these too; the check here keeps documents stored by older versions from
    // overriding the transport's, ours or the signature's headers.
    if webhooks_model::webhook::RESERVED_REQUEST_HEADERS.iter().any(|reserved| reserved.eq_ignore_ascii_case(name)) {
        return Err("reserved header");
    }
    if HeaderValue::from_str(value).is_err() {
        return Err("not a valid header value");
    }
    Ok(value.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use webhooks_model::webhook::DeliveryTarget;

    use super::*;

    fn job(verb: HttpVerb, format: Format) -> DeliveryJob {
        DeliveryJob {
            event_id: "0a1b2c3d4e".into(),
            hook_id: "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".parse().expect("hook id"),
            account_id: "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("account id"),
            hook_event: "object".into(),
            target: DeliveryTarget {
                uri: "https://hooks.example.com/in".into(),
                http_verb: verb,
                format,
                retries: 2,
                custom_request_headers: None,
            },
            attempt: 0,
            custom_data: None,
            payload: json!({"a": "x y", "b": {"c": 1}}).as_object().cloned().unwrap_or_default().into(),
            published_at_ms: 0,
            test: false,
            trace_parent: None,
        }
    }

    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn trace() -> TraceParent {
        TRACE.parse().expect("valid")
    }

    fn build_request(job: &DeliveryJob, trace: &TraceParent, key: Option<&SigningKey>, at: i64) -> CalloutRequest {
        super::build_request(job, Encoding::of(job).encode(&job.payload), trace, key, at)
    }

    #[test]
    fn jobs_sharing_a_payload_share_its_encoding() {
        let (json, form) = (job(HttpVerb::Post, Format::Json), job(HttpVerb::Get, Format::Json));
        let other = DeliveryJob { payload: Payload::default(), ..json.clone() };
        let encoded = encode_payloads(&[json.clone(), form.clone(), json.clone(), other]);
        assert_eq!(encoded, [r#"{"a":"x y","b":{"c":1}}"#, "a=x+y&b[c]=1", r#"{"a":"x y","b":{"c":1}}"#, "{}"]);
        // The third is the first's bytes, not a copy.
        assert_eq!(encoded[0].as_ptr(), encoded[2].as_ptr());
    }

    fn url(request: &CalloutRequest) -> String {
        request.target.as_ref().map(|target| target.uri().to_string()).unwrap_or_default()
    }

    fn names(request: &CalloutRequest) -> Vec<&str> {
        request.headers.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn a_get_carries_the_payload_in_the_query_and_nothing_else() {
        let request = build_request(&job(HttpVerb::Get, Format::Json), &trace(), None, 0);
        assert_eq!(request.method, Method::GET);
        assert_eq!(url(&request), "https://hooks.example.com/in?a=x+y&b[c]=1");
        assert!(request.body.is_empty());
        assert_eq!(names(&request), ["X-Hook-ID", "X-Account-ID", "X-Event-ID", "traceparent"]);
    }

    #[test]
    fn form_and_json_bodies_carry_their_content_type() {
        let form = build_request(&job(HttpVerb::Post, Format::FormData), &trace(), None, 0);
        assert_eq!((form.method.as_str(), url(&form).as_str()), ("POST", "https://hooks.example.com/in"));
        assert_eq!(form.body, "a=x+y&b[c]=1");
        assert_eq!(form.headers[3], ("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        let json = build_request(&job(HttpVerb::Put, Format::Json), &trace(), None, 0);
        assert_eq!(json.method, Method::PUT);
        assert_eq!(json.body, r#"{"a":"x y","b":{"c":1}}"#);
        assert_eq!(json.headers[3], ("Content-Type".into(), "application/json".into()));
        assert_eq!(json.headers[2], ("X-Event-ID".into(), "0a1b2c3d4e".into()));
    }

    #[test]
    fn custom_headers_follow_ours_and_bad_ones_are_skipped() {
        let mut job = job(HttpVerb::Post, Format::Json);
        job.target.custom_request_headers = json!({
            "X-Tenant": "acme", "Authorization": "Bearer t", "content-type": "text/plain",
            "X-Event-Id": "forged", "X-Number": 5, "Bad Name": "v", "X-Bad-Value": "a\nb"
        })
        .as_object()
        .cloned()
        .map(Box::new);
        let request = build_request(&job, &trace(), None, 0);
        assert_eq!(
            &request.headers[4..],
            [
                ("X-Tenant".to_owned(), "acme".to_owned()),
                ("Authorization".to_owned(), "Bearer t".to_owned()),
                ("traceparent".to_owned(), TRACE.to_owned())
            ]
        );
        let skipped: Vec<_> = request.skipped_headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(skipped, ["content-type", "X-Event-Id", "X-Number", "Bad Name", "X-Bad-Value"]);
    }

    #[test]
    fn a_hooks_own_trace_parent_is_sent_instead_of_ours() {
        let mut job = job(HttpVerb::Post, Format::Json);
        let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        job.target.custom_request_headers = json!({"TraceParent": own}).as_object().cloned().map(Box::new);
        let request = build_request(&job, &trace(), None, 0);
        let sent: Vec<_> =
            request.headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case("traceparent")).collect();
        assert_eq!(sent, [&("TraceParent".to_owned(), own.to_owned())]);
        // One the hook set but that cannot be sent leaves ours in place.
        job.target.custom_request_headers = json!({"traceparent": "a\nb"}).as_object().cloned().map(Box::new);
        let request = build_request(&job, &trace(), None, 0);
        assert_eq!(request.headers.last(), Some(&("traceparent".to_owned(), TRACE.to_owned())));
    }

    #[test]
    fn a_signed_request_signs_the_exact_body_with_the_event_id() {
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret");
        let request = build_request(&job(HttpVerb::Post, Format::FormData), &trace(), Some(&key), 1_700_000_000);
        let tail = &request.headers[request.headers.len() - 3..];
        assert_eq!(tail[0], ("webhook-id".into(), "0a1b2c3d4e".into()));
        assert_eq!(tail[1], ("webhook-timestamp".into(), "1700000000".into()));
        assert_eq!(tail[2].1, key.sign("0a1b2c3d4e", 1_700_000_000, b"a=x+y&b[c]=1"));
        let get = build_request(&job(HttpVerb::Get, Format::FormData), &trace(), Some(&key), 1_700_000_000);
        let signature = &get.headers[get.headers.len() - 1].1;
        assert_eq!(signature, &key.sign("0a1b2c3d4e", 1_700_000_000, b""));
    }

    #[test]
    fn an_unsigned_request_has_no_signature_headers() {
        let request = build_request(&job(HttpVerb::Post, Format::Json), &trace(), None, 1);
        assert!(request.headers.iter().all(|(name, _)| !name.starts_with("webhook-")));
    }
}
