//! A client of Kazoo's Crossbar: the master account's session (`PUT /v2/api_auth` with the
//! configured API key, logged in again when Crossbar answers 401), the token signing keys
//! (`GET /v2/auth/keys`, `GET /v2/auth/keys/{KID}`) and `POST /v2/auth/tokeninfo`.
//!
//! Every read as the master account goes through [`CrossbarClient::get`], which answers the whole
//! envelope, so that account reads (`/v2/accounts/{A}`, `.../descendants` page by page with
//! `start_key`) are one call each beside the key reads.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use url::Url;
use webhooks_model::config::{KazooConfig, redact_url};

/// Why a call to Crossbar failed.
#[derive(Debug, thiserror::Error)]
pub enum CrossbarError {
    /// `kazoo.crossbar_url` is not an `http` or `https` URL.
    #[error("kazoo.crossbar_url '{0}' is not an http(s) URL")]
    InvalidUrl(String),
    /// The HTTP client could not be built.
    #[error("building the Crossbar client: {0}")]
    Client(#[source] reqwest::Error),
    /// No answer: connection refused, timeout, broken connection.
    #[error("Crossbar cannot be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// Crossbar answered with an error status.
    #[error("Crossbar answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The envelope's `message`, when there is one.
        message: String,
    },
    /// A success whose body is not the expected envelope.
    #[error("unexpected answer from Crossbar: {0}")]
    Unexpected(String),
    /// A read as the master account without `kazoo.api_key`.
    #[error("kazoo.api_key is not set, so the service cannot log in to Crossbar")]
    NoApiKey,
}

impl CrossbarError {
    /// True when Crossbar answered 401: the credentials (or the token asked about) are not valid.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Refused { status, .. } if *status == StatusCode::UNAUTHORIZED)
    }

    /// True when Crossbar answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// The Crossbar of one Kazoo cluster, shared by the tasks that call it.
pub struct CrossbarClient {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
    /// The master account's current auth token, once logged in.
    session: Mutex<Option<String>>,
    /// The account the API key logged in as.
    account_id: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for CrossbarClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key and the session token are credentials.
        f.debug_struct("CrossbarClient").field("base", &redact_url(self.base.as_str())).finish_non_exhaustive()
    }
}

impl CrossbarClient {
    /// A client of the Crossbar at `kazoo.crossbar_url`, logging in with `kazoo.api_key`.
    pub fn new(config: &KazooConfig) -> Result<Self, CrossbarError> {
        let text = config.crossbar_url.clone().unwrap_or_default();
        let base = Url::parse(&text)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base())
            .ok_or(CrossbarError::InvalidUrl(text))?;
        let timeout = Duration::from_secs(config.request_timeout_seconds.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Crossbar is reached directly, like Kazoo's own services reach it: a proxy variable
            // meant for something else must not reroute the service's credentials.
            .no_proxy()
            .build()
            .map_err(CrossbarError::Client)?;
        Ok(Self {
            http,
            base,
            api_key: config.api_key.clone(),
            session: Mutex::new(None),
            account_id: std::sync::OnceLock::new(),
        })
    }

    /// The URL of `segments` (each percent-encoded as needed) under the base URL.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one request; the parsed body of a 2xx answer.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, CrossbarError> {
        let mut request =
            self.http.request(method, self.url(segments)).query(query).header("Accept", "application/json");
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        // The URL stays out of the error: the base URL may carry credentials.
        let unreachable = |error: reqwest::Error| CrossbarError::Unreachable(error.without_url());
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or_default().to_owned();
            return Err(CrossbarError::Refused { status, message });
        }
        if body.is_object() {
            Ok(body)
        } else {
            Err(CrossbarError::Unexpected(format!("a {status} answer without a JSON envelope")))
        }
    }

    /// Logs in with the master API key; the new session token.
    async fn login(&self) -> Result<String, CrossbarError> {
        let api_key = self.api_key.as_deref().ok_or(CrossbarError::NoApiKey)?;
        let body = json!({"data": {"api_key": api_key}});
        let answer = self.send(Method::PUT, &["v2", "api_auth"], &[], None, Some(body)).await?;
        let token = answer["auth_token"].as_str().filter(|token| !token.is_empty());
        let token = token.ok_or_else(|| CrossbarError::Unexpected("api_auth answered no auth_token".into()))?;
        if let Some(account_id) = answer["data"]["account_id"].as_str() {
            // The key is one account's for good: the first answer stands.
            let _ = self.account_id.set(account_id.to_owned());
        }
        tracing::info!(crossbar = %redact_url(self.base.as_str()), "logged in to Crossbar with the master API key");
        Ok(token.to_owned())
    }

    /// The session token: the current one, or a new one when there is none or when `stale` is
    /// the current one (Crossbar refused it). Callers refused together log in once.
    async fn session(&self, stale: Option<&str>) -> Result<String, CrossbarError> {
        let mut session = self.session.lock().await;
        match session.as_deref() {
            Some(current) if stale != Some(current) => Ok(current.to_owned()),
            _ => {
                let token = self.login().await?;
                *session = Some(token.clone());
                Ok(token)
            }
        }
    }

    /// `GET` of `segments` with `query` as the master account: the answer's whole envelope
    /// (`data`, and `next_start_key` on a paginated listing). A 401 (the session expired, or
    /// Kazoo's signing key was reset) logs in again and asks once more.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, CrossbarError> {
        let token = self.session(None).await?;
        match self.send(Method::GET, segments, query, Some(&token), None).await {
            Err(error) if error.is_unauthorized() => {
                let token = self.session(Some(&token)).await?;
                self.send(Method::GET, segments, query, Some(&token), None).await
            }
            answered => answered,
        }
    }

    /// The account the configured API key logs in as (Crossbar's `api_auth` answer), logging in
    /// when the service has not yet.
    pub async fn own_account_id(&self) -> Result<String, CrossbarError> {
        if self.account_id.get().is_none() {
            self.session(None).await?;
        }
        self.account_id
            .get()
            .cloned()
            .ok_or_else(|| CrossbarError::Unexpected("api_auth answered no account_id".into()))
    }

    /// The ids of the token signing keys (`GET /v2/auth/keys`).
    pub async fn key_ids(&self) -> Result<Vec<String>, CrossbarError> {
        let answer = self.get(&["v2", "auth", "keys"], &[]).await?;
        let ids = answer["data"].as_array().ok_or_else(|| CrossbarError::Unexpected("keys: no list".into()))?;
        Ok(ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    }

    /// The PEM of signing key `kid` (`GET /v2/auth/keys/{KID}`), or `None` when Crossbar knows no
    /// such key.
    pub async fn public_key_pem(&self, kid: &str) -> Result<Option<String>, CrossbarError> {
        match self.get(&["v2", "auth", "keys", kid], &[]).await {
            Ok(answer) => match answer["data"]["public_key_pem"].as_str() {
                Some(pem) => Ok(Some(pem.to_owned())),
                None => Err(CrossbarError::Unexpected(format!("key {kid}: no public_key_pem"))),
            },
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Crossbar's own check of `token` (`POST /v2/auth/tokeninfo`, which needs no
    /// authentication): the account data when valid, [`CrossbarError::is_unauthorized`] when
    /// Crossbar refuses it.
    pub async fn tokeninfo(&self, token: &str) -> Result<Value, CrossbarError> {
        let body = json!({"data": {"token": token}});
        let answer = self.send(Method::POST, &["v2", "auth", "tokeninfo"], &[], None, Some(body)).await?;
        Ok(answer["data"].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<CrossbarClient, CrossbarError> {
        CrossbarClient::new(&KazooConfig { crossbar_url: Some(url.into()), ..KazooConfig::default() })
    }

    #[test]
    fn paths_are_joined_under_the_base_and_encoded() {
        let plain = client("http://crossbar:8000").expect("a client");
        assert_eq!(plain.url(&["v2", "auth", "keys", "a/b?c"]).as_str(), "http://crossbar:8000/v2/auth/keys/a%2Fb%3Fc");
        let prefixed = client("https://kazoo.example.com/api/").expect("a client");
        assert_eq!(prefixed.url(&["v2", "api_auth"]).as_str(), "https://kazoo.example.com/api/v2/api_auth");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for wrong in ["crossbar:8000", "ftp://crossbar", "", "mailto:ops@example.com"] {
            assert!(matches!(client(wrong), Err(CrossbarError::InvalidUrl(_))), "{wrong}");
        }
    }
}
