//! The attempt record (docs/kazoo.md#attempt-records): what the dispatcher stores for each
//! delivery attempt, built here from what was sent and what came back, so the record's shape is
//! one pure function with its own tests.
//!
//! Kazoo's field names are kept (`hook_id`, `req_headers`, `resp_status_code`, `try`,
//! `retries_left`, ...); its defects are fixed: `retries_left` is always an integer (0 when no
//! retry follows), every 2xx is `success`, and `custom_data` is recorded. Fields of our own:
//! `failure_class`, `attempt`, `duration_ms`.

use std::fmt;

use serde_json::{Map, Value};

use crate::job::DeliveryJob;

/// How an attempt ended: a closed set, stored with every attempt as `failure_class`; every class
/// but `Success` is a failure, and every failure is retried (docs/kazoo.md#retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeClass {
    /// The server answered 2xx.
    Success,
    /// The server answered with another status.
    HttpStatus,
    /// No complete answer within the connect or total timeout.
    Timeout,
    /// The TCP connection could not be made (refused, unreachable, reset while connecting).
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The target resolved to an address hooks may not reach (docs/kazoo.md#target-checks).
    BlockedTarget,
    /// The connection broke while sending the request or reading the answer, or the answer was
    /// not HTTP.
    Io,
}

impl OutcomeClass {
    /// Every class, for exhaustive tests and documentation.
    pub const ALL: [OutcomeClass; 8] = [
        Self::Success,
        Self::HttpStatus,
        Self::Timeout,
        Self::Connect,
        Self::Dns,
        Self::Tls,
        Self::BlockedTarget,
        Self::Io,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::HttpStatus => "http_status",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::BlockedTarget => "blocked_target",
            Self::Io => "io",
        }
    }

    /// The class of an answer with `status`: success for any 2xx (Kazoo took only 200, and 201
    /// for PUT).
    pub fn of_status(status: u16) -> Self {
        if (200..300).contains(&status) { Self::Success } else { Self::HttpStatus }
    }
}

impl fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What came back from one callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The server answered.
    Response {
        /// The status code.
        status: u16,
        /// The response headers as received (recorded lower-cased).
        headers: Vec<(String, String)>,
        /// The response body, already cut to the configured cap.
        body: String,
    },
    /// No answer: the request itself failed.
    ClientError {
        /// Why (never [`OutcomeClass::Success`] or [`OutcomeClass::HttpStatus`]).
        class: OutcomeClass,
        /// Human-readable detail, recorded as `client_error` (e.g. `failed_connect: econnrefused`).
        text: String,
    },
}

impl Answer {
    /// The outcome class of this answer.
    pub fn class(&self) -> OutcomeClass {
        match self {
            Self::Response { status, .. } => OutcomeClass::of_status(*status),
            Self::ClientError { class, .. } => *class,
        }
    }

    /// Whether this answer is a success (any 2xx).
    pub fn is_success(&self) -> bool {
        self.class() == OutcomeClass::Success
    }
}

/// The request as it was sent, for the record.
#[derive(Debug, Clone, Copy)]
pub struct SentRequest<'a> {
    /// The request headers in the order sent, with their original case.
    pub headers: &'a [(String, String)],
    /// The body sent (empty for GET).
    pub body: &'a [u8],
}

/// Headers whose values are recorded exactly rather than lower-cased: a lower-cased base64
/// signature could no longer be compared with what the receiver logged.
const EXACT_VALUE_HEADERS: &[&str] = &["webhook-signature"];

/// The public fields of the attempt record of one attempt of `job` (docs/kazoo.md#attempt-records).
///
/// `retries_left` is how many more attempts of this delivery will be made (0 when none will:
/// success, exhausted retries, `410 Gone`, or a hook disabled meanwhile). `duration_ms` is the
/// time from sending to the end of the answer (or the error).
pub fn attempt_document(
    job: &DeliveryJob,
    request: SentRequest<'_>,
    answer: &Answer,
    retries_left: u8,
    duration_ms: u64,
) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("hook_id".into(), Value::from(job.hook_id.as_str()));
    doc.insert("hook_event".into(), Value::from(job.hook_event.as_str()));
    doc.insert("event_id".into(), Value::from(job.event_id.as_str()));
    // The hook's own URI: for GET the payload's query string is not part of it.
    doc.insert("uri".into(), Value::from(job.target.uri.as_str()));
    doc.insert("method".into(), Value::from(job.target.http_verb.as_str()));
    doc.insert("req_headers".into(), Value::Object(recorded_headers(request.headers)));
    doc.insert("req_body".into(), Value::from(String::from_utf8_lossy(request.body).into_owned()));
    if let Some(custom_data) = &job.custom_data {
        doc.insert("custom_data".into(), Value::Object(custom_data.clone()));
    }
    let success = answer.is_success();
    doc.insert("result".into(), Value::from(if success { "success" } else { "failure" }));
    match answer {
        Answer::Response { status, headers, body } => {
            if !success {
                doc.insert("reason".into(), Value::from("bad response code"));
            }
            doc.insert("resp_status_code".into(), Value::from(status.to_string()));
            doc.insert("resp_headers".into(), Value::Object(recorded_headers(headers)));
            doc.insert("resp_body".into(), Value::from(body.as_str()));
        }
        Answer::ClientError { text, .. } => {
            doc.insert("reason".into(), Value::from("kazoo http client error"));
            doc.insert("client_error".into(), Value::from(if text.is_empty() { "unknown" } else { text.as_str() }));
        }
    }
    // Kazoo's countdown: the attempts still allowed, this one included; `try` on answered
    // failures and `retries` on client errors in the original, both on every record here.
    let remaining = remaining_attempts(job);
    doc.insert("try".into(), Value::from(remaining));
    doc.insert("retries".into(), Value::from(remaining));
    doc.insert("retries_left".into(), Value::from(retries_left));
    doc.insert("failure_class".into(), Value::from(answer.class().as_str()));
    doc.insert("attempt".into(), Value::from(u16::from(job.attempt) + 1));
    doc.insert("duration_ms".into(), Value::from(duration_ms));
    if job.test {
        doc.insert("test".into(), Value::Bool(true));
    }
    doc
}

/// Attempts still allowed for `job`, this one included: `retries + 1 - attempt`, with `retries`
/// bounded to the schema's 4 and never below 1.
pub fn remaining_attempts(job: &DeliveryJob) -> u8 {
    (job.target.retries.min(crate::retry::MAX_RETRIES) + 1).saturating_sub(job.attempt).max(1)
}

/// Headers as an object with lower-cased names and values, as Kazoo records them; a repeated
/// name keeps its values joined with `, ` (the HTTP list form).
fn recorded_headers(headers: &[(String, String)]) -> Map<String, Value> {
    let mut recorded = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = if EXACT_VALUE_HEADERS.contains(&name.as_str()) { value.clone() } else { value.to_lowercase() };
        match recorded.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                recorded.insert(name, Value::from(value));
            }
        }
    }
    recorded
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::job::delivery::tests::attempted;
    use crate::webhook::{DeliveryTarget, Format, HttpVerb};

    fn job(verb: HttpVerb, retries: u8, attempt: u8) -> DeliveryJob {
        DeliveryJob {
            target: DeliveryTarget {
                uri: "https://hooks.example.com/in?token=abc".into(),
                http_verb: verb,
                format: Format::FormData,
                retries,
                custom_request_headers: None,
            },
            attempt,
            custom_data: Some(json!({"environment": "production"}).as_object().cloned().unwrap_or_default()),
            payload: Default::default(),
            published_at_ms: 0,
            trace_parent: None,
            ..attempted()
        }
    }

    fn headers() -> Vec<(String, String)> {
        vec![
            ("X-Hook-ID".into(), "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".into()),
            ("Content-Type".into(), "Application/X-WWW-Form-Urlencoded".into()),
            ("webhook-signature".into(), "v1,AbC=".into()),
        ]
    }

    #[test]
    fn an_answered_failure_records_the_response_and_kazoo_reason() {
        let job = job(HttpVerb::Post, 2, 0);
        let headers = headers();
        let answer = Answer::Response {
            status: 500,
            headers: vec![("Server".into(), "Nginx".into()), ("Vary".into(), "A".into()), ("vary".into(), "B".into())],
            body: "Oops".into(),
        };
        let doc = attempt_document(&job, SentRequest { headers: &headers, body: b"a=1" }, &answer, 2, 12);
        assert_eq!(
            Value::Object(doc),
            json!({
                "hook_id": "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
                "hook_event": "CHANNEL_CREATE",
                "event_id": "0a1b2c3d4e",
                "uri": "https://hooks.example.com/in?token=abc",
                "method": "post",
                "req_headers": {"x-hook-id": "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
                                "content-type": "application/x-www-form-urlencoded",
                                "webhook-signature": "v1,AbC="},
                "req_body": "a=1",
                "custom_data": {"environment": "production"},
                "result": "failure",
                "reason": "bad response code",
                "resp_status_code": "500",
                "resp_headers": {"server": "nginx", "vary": "a, b"},
                "resp_body": "Oops",
                "try": 3,
                "retries": 3,
                "retries_left": 2,
                "failure_class": "http_status",
                "attempt": 1,
                "duration_ms": 12
            })
        );
    }

    #[test]
    fn a_client_error_records_its_text_and_no_response_fields() {
        let job = job(HttpVerb::Get, 2, 2);
        let answer = Answer::ClientError { class: OutcomeClass::Connect, text: "failed_connect: econnrefused".into() };
        let doc = attempt_document(&job, SentRequest { headers: &[], body: b"" }, &answer, 0, 3);
        assert_eq!(doc["reason"], "kazoo http client error");
        assert_eq!(doc["client_error"], "failed_connect: econnrefused");
        assert_eq!(doc["failure_class"], "connect");
        assert_eq!(doc["method"], "get");
        assert_eq!(doc["req_body"], "");
        assert_eq!((&doc["try"], &doc["retries_left"], &doc["attempt"]), (&json!(1), &json!(0), &json!(3)));
        assert!(!doc.contains_key("resp_status_code") && !doc.contains_key("resp_body"));
    }

    #[test]
    fn an_empty_client_error_text_is_recorded_as_unknown() {
        let answer = Answer::ClientError { class: OutcomeClass::Io, text: String::new() };
        let doc = attempt_document(&job(HttpVerb::Post, 0, 0), SentRequest { headers: &[], body: b"" }, &answer, 0, 0);
        assert_eq!(doc["client_error"], "unknown");
    }

    #[test]
    fn every_2xx_is_a_success_for_every_verb() {
        for verb in [HttpVerb::Get, HttpVerb::Post, HttpVerb::Put] {
            for status in [200, 201, 202, 204, 299] {
                let answer = Answer::Response { status, headers: Vec::new(), body: String::new() };
                let doc = attempt_document(&job(verb, 2, 0), SentRequest { headers: &[], body: b"" }, &answer, 0, 1);
                assert_eq!(doc["result"], "success", "{verb} {status}");
                assert_eq!(doc["failure_class"], "success");
                assert!(!doc.contains_key("reason"));
            }
        }
        for status in [100, 199, 300, 301, 404, 410, 429, 500, 503] {
            assert_eq!(OutcomeClass::of_status(status), OutcomeClass::HttpStatus, "{status}");
        }
    }

    #[test]
    fn a_hook_without_custom_data_records_none() {
        let mut job = job(HttpVerb::Post, 2, 0);
        job.custom_data = None;
        let answer = Answer::Response { status: 200, headers: Vec::new(), body: String::new() };
        let doc = attempt_document(&job, SentRequest { headers: &[], body: b"" }, &answer, 0, 1);
        assert!(!doc.contains_key("custom_data"));
    }

    #[test]
    fn the_countdown_is_bounded_by_the_schema_and_never_below_one() {
        assert_eq!(remaining_attempts(&job(HttpVerb::Post, 0, 0)), 1);
        assert_eq!(remaining_attempts(&job(HttpVerb::Post, 4, 0)), 5);
        assert_eq!(remaining_attempts(&job(HttpVerb::Post, 200, 0)), 5);
        assert_eq!(remaining_attempts(&job(HttpVerb::Post, 4, 4)), 1);
        assert_eq!(remaining_attempts(&job(HttpVerb::Post, 1, 9)), 1);
    }

    #[test]
    fn class_names_are_distinct_snake_case() {
        let names: std::collections::HashSet<_> = OutcomeClass::ALL.iter().map(|class| class.as_str()).collect();
        assert_eq!(names.len(), OutcomeClass::ALL.len());
        assert!(names.iter().all(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
