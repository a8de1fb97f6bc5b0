//! Structured logs: with JSON output, a request's log lines carry its request id (the one the
//! client sees in `X-Request-ID`), the authorized account, and the handler's own fields.

use std::io;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::db::TestDatabase;

/// A log output shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("the log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_json_log_lines_carry_its_request_id_and_account() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt().json().with_env_filter("webhooks_api=info").with_writer(move || writer.clone()).init();
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let master = app.master_token().await;
    let (account, key) = app.client.create_account(&master, &app.master_id, "logged").await;
    let token = app.client.token(&key).await;
    let body = json!({"data": {"name": "n", "uri": "https://hooks.example.com/in", "hook": "channel_create"}});
    let created =
        app.client.send(Method::PUT, &format!("/v2/accounts/{account}/webhooks"), Some(&token), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let request_id = created.header("x-request-id").expect("a request id").to_owned();
    let hook_id = created.data()["id"].as_str().expect("an id").to_owned();

    let text = String::from_utf8(logs.0.lock().expect("the log buffer").clone()).expect("UTF-8 logs");
    let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect();
    let created_line = lines
        .iter()
        .find(|line| line["fields"]["message"] == "webhook created")
        .unwrap_or_else(|| panic!("no 'webhook created' line in {text}"));
    assert_eq!(created_line["level"], "INFO");
    assert_eq!(created_line["fields"]["hook.id"], json!(hook_id));
    let span = &created_line["span"];
    assert_eq!(
        (&span["name"], &span["request.id"], &span["http.method"], &span["account.id"]),
        (&json!("http.request"), &json!(request_id), &json!("PUT"), &json!(account))
    );
    assert_eq!(span["http.path"], json!(format!("/v2/accounts/{account}/webhooks")));
}
