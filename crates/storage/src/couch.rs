//! Kazoo's CouchDB, read through its HTTP API: the databases an import brings over.
//!
//! Database names are sent as Kazoo writes them, already encoded (`account%2F3a%2F4b%2F...`);
//! documents are read a page at a time from `_all_docs`, so memory stays flat however many
//! documents a database holds.

use std::time::Duration;

use serde_json::Value;

/// Why CouchDB could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CouchError {
    /// The base URL is not an http(s) URL.
    #[error("invalid CouchDB url: {0}")]
    InvalidUrl(String),
    /// No answer, or an answer that is not JSON.
    #[error("CouchDB request {path} failed")]
    Request {
        /// The path asked for.
        path: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with an error status.
    #[error("CouchDB answered {status} to {path}: {body}")]
    Status {
        /// The path asked for.
        path: String,
        /// The status.
        status: u16,
        /// CouchDB's error document.
        body: String,
    },
}

/// A page of documents: what [`CouchDb::page`] returns, and where the next one starts.
#[derive(Debug)]
pub struct DocumentPage {
    /// The documents, in id order.
    pub docs: Vec<Value>,
    /// The id the next page starts at; `None` after the last page.
    pub next: Option<String>,
}

/// A CouchDB server.
#[derive(Debug, Clone)]
pub struct CouchDb {
    client: reqwest::Client,
    base: String,
}

/// How long one request may take, unless said otherwise.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl CouchDb {
    /// The server at `url` (`http://user:password@host:5984`).
    pub fn new(url: &str) -> Result<Self, CouchError> {
        Self::with_timeout(url, REQUEST_TIMEOUT)
    }

    /// The server at `url`, each request given at most `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, CouchError> {
        let parsed = reqwest::Url::parse(url).map_err(|error| CouchError::InvalidUrl(error.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CouchError::InvalidUrl(format!("{url}: not http or https")));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| CouchError::InvalidUrl(error.to_string()))?;
        Ok(Self { client, base: url.trim_end_matches('/').to_owned() })
    }

    /// `size` documents of database `db` from the id `start` on (the first page without one);
    /// an empty page when the database does not exist.
    pub async fn page(&self, db: &str, start: Option<&str>, size: usize) -> Result<DocumentPage, CouchError> {
        let path = format!("/{db}/_all_docs");
        // One row more than asked: its id is where the next page starts.
        let mut query = vec![("include_docs", "true".to_owned()), ("limit", (size + 1).to_string())];
        if let Some(start) = start {
            query.push(("startkey", Value::String(start.to_owned()).to_string()));
        }
        let Some(answer) = self.get(&path, &query).await? else {
            return Ok(DocumentPage { docs: Vec::new(), next: None });
        };
        let mut rows = match answer {
            Value::Object(mut answer) => match answer.remove("rows") {
                Some(Value::Array(rows)) => rows,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let next =
            (rows.len() > size).then(|| rows.pop()).flatten().and_then(|row| row["id"].as_str().map(str::to_owned));
        let docs = rows.into_iter().filter_map(|mut row| row.get_mut("doc").map(Value::take)).collect();
        Ok(DocumentPage { docs, next })
    }

    /// Document `id` of database `db`; `None` when either does not exist.
    pub async fn document(&self, db: &str, id: &str) -> Result<Option<Value>, CouchError> {
        self.get(&format!("/{db}/{id}"), &[]).await
    }

    /// The documents `ids` of database `db`, in their order; `None` for one that does not exist.
    pub async fn documents(&self, db: &str, ids: &[String]) -> Result<Vec<Option<Value>>, CouchError> {
        let path = format!("/{db}/_all_docs");
        let body = serde_json::json!({ "keys": ids });
        let Some(answer) =
            self.send(self.client.post(self.url(&path)).query(&[("include_docs", "true")]).json(&body), &path).await?
        else {
            return Ok(vec![None; ids.len()]);
        };
        let rows = answer["rows"].as_array().cloned().unwrap_or_default();
        Ok(rows.into_iter().map(|mut row| Some(row["doc"].take()).filter(Value::is_object)).collect())
    }

    /// Creates database `db` unless it exists.
    pub async fn create_database(&self, db: &str) -> Result<(), CouchError> {
        let path = format!("/{db}");
        match self.send(self.client.put(self.url(&path)), &path).await {
            Err(CouchError::Status { status: 412, .. }) | Ok(_) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Writes `docs` into database `db` (`_bulk_docs`: each over the revision it carries); for
    /// each, in order, the error CouchDB gave it (`conflict` when its revision is not the
    /// current one any more).
    pub async fn save_all(&self, db: &str, docs: Vec<Value>) -> Result<Vec<Option<String>>, CouchError> {
        let path = format!("/{db}/_bulk_docs");
        let count = docs.len();
        let answer =
            self.send(self.client.post(self.url(&path)).json(&serde_json::json!({ "docs": docs })), &path).await?;
        let rows = answer.and_then(|answer| answer.as_array().cloned()).unwrap_or_default();
        let mut errors: Vec<Option<String>> =
            rows.iter().map(|row| row["error"].as_str().map(|error| format!("{error}: {}", row["reason"]))).collect();
        errors.resize(count, Some("no answer".to_owned()));
        Ok(errors)
    }

    /// Deletes document `id` of `db`, whatever its revision; `false` when there was none.
    pub async fn delete(&self, db: &str, id: &str) -> Result<bool, CouchError> {
        let Some(current) = self.document(db, id).await? else { return Ok(false) };
        let path = format!("/{db}/{id}");
        let revision = current["_rev"].as_str().unwrap_or_default().to_owned();
        Ok(self.send(self.client.delete(self.url(&path)).query(&[("rev", revision)]), &path).await?.is_some())
    }

    /// How many documents database `db` holds (design documents included); 0 when it does not
    /// exist.
    pub async fn doc_count(&self, db: &str) -> Result<u64, CouchError> {
        let info = self.get(&format!("/{db}"), &[]).await?;
        Ok(info.and_then(|info| info["doc_count"].as_u64()).unwrap_or(0))
    }

    /// GETs `path`: its JSON, or `None` for a 404.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Option<Value>, CouchError> {
        self.send(self.client.get(self.url(path)).query(query), path).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request` (to `path`): the answer's JSON, or `None` for a 404.
    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Option<Value>, CouchError> {
        let failed = |source| CouchError::Request { path: path.to_owned(), source };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CouchError::Status { path: path.to_owned(), status: status.as_u16(), body });
        }
        response.json().await.map(Some).map_err(failed)
    }
}
