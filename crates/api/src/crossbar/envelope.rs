//! Crossbar's response envelope: `data` plus `request_id`, `timestamp`, `node`, `revision`, ...

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, ETAG, HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, Responder};
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use webhooks_model::time::{iso8601_from_unix, unix_seconds};

use super::request;

/// Pagination facts of a listing response.
#[derive(Debug, Clone, Default)]
pub struct PageInfo {
    /// The `start_key` the client sent, echoed back.
    pub start_key: Option<String>,
    /// The key of the next page; absent on the last page.
    pub next_start_key: Option<String>,
}

/// A successful answer: `data` and the envelope extras a handler may set.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    data: Value,
    revision: Option<String>,
    page: Option<PageInfo>,
    location: Option<String>,
    auth_token: Option<String>,
    hashed_revision: bool,
}

impl Reply {
    /// 200 with `data`; the revision is a hash of the rendered data.
    pub fn ok(data: Value) -> Self {
        Self {
            status: StatusCode::OK,
            data,
            revision: None,
            page: None,
            location: None,
            auth_token: None,
            hashed_revision: true,
        }
    }

    /// 201 for a created document: `Location` carries its id, `revision` its revision.
    pub fn created(data: Value, id: &str, revision: &str) -> Self {
        Self {
            status: StatusCode::CREATED,
            data,
            revision: Some(revision.to_owned()),
            page: None,
            location: Some(id.to_owned()),
            auth_token: None,
            hashed_revision: true,
        }
    }

    /// 200 for one document with its revision.
    pub fn document(data: Value, revision: &str) -> Self {
        Self::ok(data).with_revision(revision)
    }

    /// A listing: `page_size` is the number of items, plus the page keys.
    pub fn listing(items: Vec<Value>, page: PageInfo) -> Self {
        let mut reply = Self::ok(Value::Array(items));
        reply.page = Some(page);
        reply
    }

    /// Leaves `revision` out (Crossbar sends none for some action answers).
    pub fn without_revision(mut self) -> Self {
        self.hashed_revision = false;
        self
    }

    /// Answers with a new token in the envelope's `auth_token` (authentication answers).
    pub fn with_auth_token(mut self, token: String) -> Self {
        self.auth_token = Some(token);
        self
    }

    /// Changes the status code.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Sets the document revision (sent as `revision` and `ETag`).
    pub fn with_revision(mut self, revision: &str) -> Self {
        self.revision = Some(revision.to_owned());
        self
    }
}

impl Responder for Reply {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, request: &HttpRequest) -> HttpResponse {
        // `data` is serialized once: the listing revision hashes those very bytes.
        let data = serde_json::to_vec(&self.data).unwrap_or_default();
        let revision = match self.revision {
            Some(revision) => Some(revision),
            None if self.hashed_revision => Some(hex::encode(Md5::digest(&data))),
            None => None,
        };
        let mut fields = Map::new();
        if let Some(page) = self.page {
            let count = self.data.as_array().map_or(0, Vec::len);
            fields.insert("page_size".into(), Value::from(count));
            if let Some(start_key) = page.start_key {
                fields.insert("start_key".into(), Value::String(start_key));
            }
            if let Some(next) = page.next_start_key {
                fields.insert("next_start_key".into(), Value::String(next));
            }
        }
        if let Some(revision) = &revision {
            fields.insert("revision".into(), Value::String(revision.clone()));
        }
        fields.insert("status".into(), Value::String("success".into()));
        if let Some(token) = self.auth_token {
            fields.insert("auth_token".into(), Value::String(token));
        }
        let mut response = render(self.status, &data, fields);
        let headers = response.headers_mut();
        if request.method() == actix_web::http::Method::GET
            && let Some(etag) = revision.and_then(|revision| HeaderValue::from_str(&format!("\"{revision}\"")).ok())
        {
            headers.insert(ETAG, etag);
        }
        if let Some(location) = self.location.and_then(|id| HeaderValue::from_str(&id).ok()) {
            headers.insert(LOCATION, location);
        }
        response
    }
}

/// Renders `data` (already serialized) and `fields` with the envelope members every response
/// carries.
pub(crate) fn render(status: StatusCode, data: &[u8], mut fields: Map<String, Value>) -> HttpResponse {
    let meta = request::current();
    if let Some(token) = meta.as_ref().and_then(|meta| meta.auth_token.clone()) {
        fields.entry("auth_token").or_insert(Value::String(token));
    }
    if let Some(meta) = &meta {
        fields.insert("node".into(), Value::String(meta.node.to_string()));
        fields.insert("request_id".into(), Value::String(meta.request_id.clone()));
        if meta.authenticated() {
            fields.insert("version".into(), Value::String(env!("CARGO_PKG_VERSION").into()));
        }
    }
    fields.insert("timestamp".into(), Value::String(iso8601_from_unix(unix_seconds())));
    let body = if meta.as_ref().is_some_and(|meta| meta.pretty) {
        let mut whole = Map::new();
        whole.insert("data".into(), serde_json::from_slice(data).unwrap_or(Value::Null));
        whole.extend(fields);
        serde_json::to_vec_pretty(&Value::Object(whole)).unwrap_or_default()
    } else {
        splice_data(data, &fields)
    };
    let mut response = HttpResponse::build(status);
    match meta.as_ref().and_then(|meta| meta.jsonp.as_deref()) {
        Some(callback) => {
            // JSONP (`?jsonp=NAME`): the envelope as the argument of the client's function.
            let mut script = Vec::with_capacity(body.len() + callback.len() + 3);
            script.extend_from_slice(callback.as_bytes());
            script.push(b'(');
            script.extend_from_slice(&body);
            script.extend_from_slice(b");");
            response.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/javascript")));
            response.body(script)
        }
        None => {
            response.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
            response.body(body)
        }
    }
}

/// `{"data":<data>,<fields>}` without serializing `data` again.
fn splice_data(data: &[u8], fields: &Map<String, Value>) -> Vec<u8> {
    let rest = serde_json::to_vec(fields).unwrap_or_else(|_| b"{}".to_vec());
    let mut body = Vec::with_capacity(data.len() + rest.len() + 9);
    body.extend_from_slice(b"{\"data\":");
    body.extend_from_slice(data);
    match rest.get(1..) {
        // `rest` is `{}` or `{"k":...}`: keep its members and its closing brace.
        Some(members) if rest.len() > 2 => {
            body.push(b',');
            body.extend_from_slice(members);
        }
        _ => body.push(b'}'),
    }
    body
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn spliced_envelopes_are_the_json_of_data_and_fields() {
        let mut fields = Map::new();
        fields.insert("status".into(), json!("success"));
        fields.insert("page_size".into(), json!(2));
        let body = splice_data(br#"[1,{"a":"b"}]"#, &fields);
        let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(parsed, json!({"data": [1, {"a": "b"}], "status": "success", "page_size": 2}));
        assert_eq!(
            serde_json::from_slice::<Value>(&splice_data(b"\"x\"", &Map::new())).expect("json"),
            json!({"data": "x"})
        );
    }
}
