//! A CouchDB stand-in for the import tests: `pouchdb-server`, which serves CouchDB's HTTP API from
//! memory (`tests/support/ensure-services.sh couchdb` installs it), one process per test on a free
//! port of 127.0.0.1, seeded with Kazoo-shaped documents (`fixtures/kazoo/couchdb`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use webhooks_model::couch::encode_segment;

use crate::bus::PATIENCE;

/// A running `pouchdb-server`; killed, and its working folder removed, when dropped.
pub struct CouchStandIn {
    child: Child,
    folder: PathBuf,
    url: String,
    client: reqwest::Client,
}

impl CouchStandIn {
    /// Starts one and waits until it answers.
    pub async fn start() -> Self {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port();
        // It writes its configuration and log into its working folder.
        let folder = std::env::temp_dir().join(format!("pouchdb-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).expect("a working folder");
        let child = Command::new("pouchdb-server")
            .args(["--in-memory", "--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(&folder)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pouchdb-server runs (tests/support/ensure-services.sh couchdb installs it)");
        let stand_in = Self { child, folder, url: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new() };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while stand_in.client.get(&stand_in.url).send().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "pouchdb-server does not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stand_in
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes `doc` into database `db` (created if needed; its name as Kazoo writes it, encoded),
    /// over the current revision if there is one; the new revision. `_rev` and `_attachments`
    /// of `doc` are ignored.
    pub async fn put(&self, db: &str, doc: &Value) -> String {
        let created = self.client.put(format!("{}/{db}", self.url)).send().await.expect("CouchDB answers").status();
        assert!(created.is_success() || created.as_u16() == 412, "database {db}: {created}");
        let id = doc["_id"].as_str().expect("a document with an _id");
        let url = format!("{}/{db}/{}", self.url, encode_segment(id));
        let mut doc = doc.clone();
        let fields = doc.as_object_mut().expect("a document");
        fields.remove("_attachments");
        match self.revision(db, id).await {
            Some(revision) => fields.insert("_rev".into(), Value::String(revision)),
            None => fields.remove("_rev"),
        };
        let answer = self.client.put(url).json(&doc).send().await.expect("CouchDB answers");
        assert!(answer.status().is_success(), "{db}/{id}: {}", answer.status());
        let written: Value = answer.json().await.expect("JSON");
        written["rev"].as_str().expect("a revision").to_owned()
    }

    /// Writes many new documents into `db` (created if needed) at once (`_bulk_docs`).
    pub async fn put_all(&self, db: &str, docs: &[Value]) {
        let created = self.client.put(format!("{}/{db}", self.url)).send().await.expect("CouchDB answers").status();
        assert!(created.is_success() || created.as_u16() == 412, "database {db}: {created}");
        let body = serde_json::json!({ "docs": docs });
        let answer = self
            .client
            .post(format!("{}/{db}/_bulk_docs", self.url))
            .json(&body)
            .send()
            .await
            .expect("CouchDB answers");
        assert!(answer.status().is_success(), "{db}: {}", answer.status());
    }

    /// Deletes document `id` of `db` for good, as CouchDB's compaction leaves a soft-deleted one.
    pub async fn delete(&self, db: &str, id: &str) {
        let revision = self.revision(db, id).await.expect("the document exists");
        let url = format!("{}/{db}/{}", self.url, encode_segment(id));
        let answer = self.client.delete(url).query(&[("rev", revision)]).send().await.expect("CouchDB answers");
        assert!(answer.status().is_success(), "{db}/{id}: {}", answer.status());
    }

    /// The documents of `fixtures/kazoo/couchdb/<folder>`, by file name, each written into `db`.
    pub async fn put_fixtures(&self, folder: &str, db: &str) -> Vec<(String, Value)> {
        let documents = couch_fixtures(folder);
        for (_, doc) in &documents {
            self.put(db, doc).await;
        }
        documents
    }

    /// The Kazoo configuration fixtures: `system_config/webhooks`, and the `configs_webhooks` of
    /// the accounts that have one, each in its account's database (`pvt_account_db`).
    pub async fn put_config_fixtures(&self) {
        self.put_fixtures("system_config", "system_config").await;
        for (_, doc) in couch_fixtures("configs_webhooks") {
            self.put(doc["pvt_account_db"].as_str().expect("an account database"), &doc).await;
        }
    }

    /// The current revision of document `id` of `db`.
    async fn revision(&self, db: &str, id: &str) -> Option<String> {
        let answer =
            self.client.get(format!("{}/{db}/{}", self.url, encode_segment(id))).send().await.expect("CouchDB answers");
        let doc: Value = answer.json().await.ok()?;
        doc["_rev"].as_str().map(str::to_owned)
    }
}

impl Drop for CouchStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// The documents of `fixtures/kazoo/couchdb/<folder>`, by file name (without `.json`), sorted.
pub fn couch_fixtures(folder: &str) -> Vec<(String, Value)> {
    let path = crate::kazoo::fixture_path(&format!("couchdb/{folder}"));
    let mut documents: Vec<(String, Value)> = std::fs::read_dir(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .map(|entry| entry.expect("a fixture").path())
        .map(|file| {
            let name = file.file_stem().and_then(|name| name.to_str()).expect("a file name").to_owned();
            let text = std::fs::read_to_string(&file).expect("a readable fixture");
            (name, serde_json::from_str(&text).expect("a JSON fixture"))
        })
        .collect();
    documents.sort_by(|(left, _), (right, _)| left.cmp(right));
    documents
}
