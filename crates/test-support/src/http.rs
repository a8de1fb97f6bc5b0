//! A small Crossbar client over real HTTP.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::WebhookId;

/// One answer: status, headers, and the body parsed as JSON (`Value::Null` when it is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The parsed body.
    pub body: Value,
}

impl Answer {
    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A client bound to one base URL.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the server at `base_url` (`http://127.0.0.1:PORT`).
    pub fn new(base_url: &str) -> Self {
        Self { base_url: base_url.trim_end_matches('/').to_owned(), http: reqwest::Client::new() }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends `method path` with an optional token and JSON body.
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(request).await
    }

    /// Sends `method path` with exactly `headers` and an optional JSON body, as a browser would
    /// (a `Content-Type` on a GET without a body included).
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        self.finish(request).await
    }

    /// Sends a raw body with a content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        self.finish(request).await
    }

    async fn finish(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("the body is readable");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    /// `PUT /v2/api_auth` with `api_key`; the token.
    pub async fn token(&self, api_key: &str) -> String {
        let answer = self.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": api_key}}))).await;
        assert_eq!(answer.status, StatusCode::CREATED, "api_auth: {}", answer.body);
        answer.body["auth_token"].as_str().expect("a token").to_owned()
    }

    /// Creates a sub-account of `parent` named `name`; its id and API key.
    pub async fn create_account(&self, token: &str, parent: &str, name: &str) -> (String, String) {
        self.create_account_from(token, parent, &json!({"name": name})).await
    }

    /// Creates a sub-account of `parent` from `document` (the envelope's `data`); its id and API
    /// key.
    pub async fn create_account_from(&self, token: &str, parent: &str, document: &Value) -> (String, String) {
        let answer = self
            .send(Method::PUT, &format!("/v2/accounts/{parent}"), Some(token), Some(&json!({"data": document})))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "create account: {}", answer.body);
        let id = answer.data()["id"].as_str().expect("an id").to_owned();
        let key = self.send(Method::GET, &format!("/v2/accounts/{id}/api_key"), Some(token), None).await;
        (id, key.data()["api_key"].as_str().expect("a key").to_owned())
    }

    /// Creates a hook of `account` from `document` (the envelope's `data`) through the API; its id.
    pub async fn create_hook(&self, token: &str, account: &str, document: &Value) -> WebhookId {
        let path = format!("/v2/accounts/{account}/webhooks");
        let answer = self.send(Method::PUT, &path, Some(token), Some(&json!({"data": document}))).await;
        assert_eq!(answer.status, StatusCode::CREATED, "create hook: {}", answer.body);
        answer.data()["id"].as_str().expect("an id").parse().expect("a hook id")
    }
}
