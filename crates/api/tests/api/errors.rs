//! Refusals and failures: every error class in Crossbar's shape, a database outage, hostile URIs,
//! oversized strings, and requests no route serves (CONNECT, upgrades).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::test_matrix;

use crate::{deployed_app, hook_body, path};

test_matrix!(
    apps;
    every_error_class_has_crossbar_status_and_shape,
);

async fn every_error_class_has_crossbar_status_and_shape(app: TestApp) {
    let token = app.master_token().await;
    let account = &app.master_id;
    let client = &app.client;
    let check = |answer: &webhooks_test_support::http::Answer, status: StatusCode, message: &str, data: Value| {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.body["status"], "error");
        assert_eq!(answer.body["error"], status.as_str());
        assert_eq!(answer.body["message"], message);
        assert_eq!(answer.body["data"], data);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(answer.header("x-request-id").is_some_and(|id| !id.is_empty()));
    };

    let no_token = client.send(Method::GET, &path(account, ""), None, None).await;
    check(&no_token, StatusCode::UNAUTHORIZED, "invalid_credentials", json!({"message": "invalid credentials"}));

    let bad_token = client.send(Method::GET, &path(account, ""), Some("forged.token.value"), None).await;
    check(&bad_token, StatusCode::UNAUTHORIZED, "invalid credentials", json!({}));

    let wrong_method = client.send(Method::POST, &path(account, ""), Some(&token), Some(&hook_body())).await;
    check(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "invalid_method", json!({"message": "method not allowed"}));
    assert_eq!(wrong_method.header("allow"), Some("GET, PUT, PATCH"));

    let bad_account = client.send(Method::GET, "/v2/accounts/nothex/webhooks", Some(&token), None).await;
    check(&bad_account, StatusCode::NOT_FOUND, "bad identifier", json!({"message": "invalid account_id 'nothex'"}));

    let unknown = AccountId::generate().to_string();
    let unknown_account = client.send(Method::GET, &path(&unknown, ""), Some(&token), None).await;
    check(
        &unknown_account,
        StatusCode::NOT_FOUND,
        "bad_identifier",
        json!({"cause": unknown, "message": "bad identifier"}),
    );

    let hook_id = WebhookId::generate().to_string();
    let unknown_hook = client.send(Method::GET, &path(account, &format!("/{hook_id}")), Some(&token), None).await;
    check(
        &unknown_hook,
        StatusCode::NOT_FOUND,
        "bad_identifier",
        json!({"cause": hook_id, "message": "bad identifier"}),
    );

    let no_path =
        client.send(Method::GET, &path(account, &format!("/{hook_id}/attempts/more")), Some(&token), None).await;
    check(&no_path, StatusCode::NOT_FOUND, "not_found", json!({"message": "not found"}));

    let malformed = client
        .send_raw(Method::PUT, &path(account, ""), Some(&token), "application/json", b"{\"data\": {".to_vec())
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.body["message"], "validation error");
    assert_eq!(malformed.data()["json"]["invalid"]["target"], "body");
    assert!(malformed.data()["json"]["invalid"]["message"].as_str().is_some_and(|text| !text.is_empty()));

    let no_envelope = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&json!({"name": "x"}))).await;
    assert_eq!(no_envelope.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_envelope.data()["data"]["required"]["message"],
        "the request body must be a JSON object with a 'data' member"
    );
    // An array body is read only when the handler asks: the same answers as any other body.
    let array = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&json!([{"data": {}}]))).await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        array.data()["data"]["required"]["message"],
        "the request body must be a JSON object with a 'data' member"
    );
    let broken_array =
        client.send_raw(Method::PUT, &path(account, ""), Some(&token), "application/json", b"[{".to_vec()).await;
    assert_eq!(broken_array.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken_array.data()["json"]["invalid"]["message"], "EOF while parsing an object at line 1 column 2");

    let huge = json!({"data": {"name": "x".repeat(70 * 1024)}});
    let too_large = client.send(Method::PUT, &path(account, ""), Some(&token), Some(&huge)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.body["error"], "413");

    let invalid = client
        .send(Method::PUT, &path(account, ""), Some(&token), Some(&json!({"data": {"uri": "https://a.example", "hook": "channel_create", "http_verb": "delete", "retries": 9}})))
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.body["message"], "validation error");
    assert_eq!(
        invalid.data()["name"],
        json!({"required": {"message": "Field is required but missing", "value": "name"}})
    );
    assert_eq!(invalid.data()["http_verb"]["enum"]["target"], json!(["get", "post", "put"]));
    assert_eq!(
        invalid.data()["retries"],
        json!({"maximum": {"message": "Value must be at most 4", "target": 4, "value": 9}})
    );

    let replace_missing =
        client.send(Method::POST, &path(account, &format!("/{hook_id}")), Some(&token), Some(&hook_body())).await;
    assert_eq!(replace_missing.status, StatusCode::NOT_FOUND, "a valid body for a missing hook is 404");
    let replace_invalid = client
        .send(Method::POST, &path(account, &format!("/{hook_id}")), Some(&token), Some(&json!({"data": {}})))
        .await;
    assert_eq!(replace_invalid.status, StatusCode::BAD_REQUEST, "validation comes before the existence check");

    let page = client.send(Method::GET, &path(account, "?page_size=0"), Some(&token), None).await;
    check(&page, StatusCode::NOT_FOUND, "faulty_request", json!({"message": "page size must be at least 1"}));

    let system_write = client.send(Method::PUT, "/v2/webhooks", None, Some(&hook_body())).await;
    assert_eq!(system_write.status, StatusCode::UNAUTHORIZED);
    let system_write = client.send(Method::PUT, "/v2/webhooks", Some(&token), Some(&hook_body())).await;
    check(&system_write, StatusCode::FORBIDDEN, "forbidden", json!({"message": "forbidden"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_answers_503_at_once_and_the_api_recovers_by_itself() {
    let app = TestApp::spawn(TestDatabase::postgres().await).await;
    let token = app.master_token().await;
    let listing = path(&app.master_id, "");
    let created = app.client.send(Method::PUT, &listing, Some(&token), Some(&hook_body())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    app.database().set_reachable(false).await;
    let requests = [
        (Method::GET, listing.clone(), None),
        (Method::PUT, listing.clone(), Some(hook_body())),
        (Method::GET, format!("/v2/accounts/{}/children", app.master_id), None),
        (Method::GET, path(&app.master_id, "/attempts"), None),
    ];
    for (method, route, body) in &requests {
        let started = std::time::Instant::now();
        let answer = app.client.send(method.clone(), route, Some(&token), body.as_ref()).await;
        let waited = started.elapsed();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{method} {route}: {}", answer.body);
        assert_eq!(answer.body["error"], "503");
        assert_eq!(answer.body["message"], "datastore_unreachable");
        assert_eq!(answer.body["status"], "error");
        assert_eq!(answer.body["data"], json!({"message": "datastore timeout"}));
        assert!(answer.header("x-request-id").is_some());
        assert!(waited < std::time::Duration::from_secs(1), "{method} {route} answered after {waited:?}");
    }

    app.database().set_reachable(true).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listed = loop {
        let answer = app.client.send(Method::GET, &listing, Some(&token), None).await;
        if answer.status == StatusCode::OK || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let hooks = listed.data().as_array().map(Vec::len);
    assert_eq!(hooks, Some(1), "the create refused during the outage wrote nothing: {}", listed.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_uris_are_refused_naming_the_uri_and_the_reason() {
    let app = deployed_app().await;
    let token = app.master_token().await;
    let hooks = path(&app.master_id, "");
    let with_uri = |uri: &str| json!({"data": {"name": "n", "uri": uri, "hook": "channel_create"}});
    let loopback = "address 127.0.0.1 is not a public address";
    for (uri, cause) in [
        ("http://2130706433/a", loopback),
        ("http://0x7f.0.0.1/a", loopback),
        ("http://0177.0.0.1/a", loopback),
        ("http://127.1/a", loopback),
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is not a public address"),
        ("http://100.64.0.1/a", "address 100.64.0.1 is not a public address"),
        ("http://198.18.0.1/a", "address 198.18.0.1 is not a public address"),
        ("http://203.0.113.9/a", "address 203.0.113.9 is not a public address"),
        ("http://[::ffff:127.0.0.1]/a", "address ::ffff:127.0.0.1 is not a public address"),
        ("http://[64:ff9b:1::5db8:d822]/a", "address 64:ff9b:1::5db8:d822 is not a public address"),
        ("http://[2001::5db8:d822]/a", "address 2001::5db8:d822 is not a public address"),
        ("http://[2002:c0a8:101::1]/a", "address 2002:c0a8:101::1 is not a public address"),
        ("http://[fd00:ec2::254]/a", "address fd00:ec2::254 is not a public address"),
        ("http://[3fff::1]/a", "address 3fff::1 is not a public address"),
        ("http://api.localhost/a", "host 'api.localhost' is blacklisted"),
        ("http:///127.0.0.1/a", "is not written scheme://host"),
        ("gopher://hooks.example.com/a", "scheme 'gopher' is not http or https"),
    ] {
        let refused = app.client.send(Method::PUT, &hooks, Some(&token), Some(&with_uri(uri))).await;
        assert_eq!(
            (refused.status, &refused.body["message"], refused.data()),
            (
                StatusCode::BAD_REQUEST,
                &json!("validation error"),
                &json!({"uri": {"error": {"message": "invalid client URL", "cause": cause, "value": uri}}})
            ),
            "{uri}"
        );
    }
    let listed = app.client.send(Method::GET, &hooks, Some(&token), None).await;
    assert_eq!(listed.data(), &json!([]), "nothing refused was stored");

    for uri in ["https://hooks.example.com/a", "http://93.184.216.34/a", "http://[2001:4860:4860::8888]/a"] {
        let created = app.client.send(Method::PUT, &hooks, Some(&token), Some(&with_uri(uri))).await;
        assert_eq!((created.status, &created.data()["uri"]), (StatusCode::CREATED, &json!(uri)), "{}", created.body);
    }
    // An update is checked as a creation is.
    let id = app.client.send(Method::GET, &hooks, Some(&token), None).await.data()[0]["id"].clone();
    let hook = path(&app.master_id, &format!("/{}", id.as_str().expect("an id")));
    let patch = json!({"data": {"uri": "http://0x7f.1/a"}});
    let refused = app.client.send(Method::PATCH, &hook, Some(&token), Some(&patch)).await;
    assert_eq!(
        (refused.status, refused.data()),
        (
            StatusCode::BAD_REQUEST,
            &json!({"uri": {"error": {"message": "invalid client URL", "cause": loopback, "value": "http://0x7f.1/a"}}})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_strings_of_a_hook_are_refused_and_never_stored() {
    let app = deployed_app().await;
    let token = app.master_token().await;
    let hooks = path(&app.master_id, "");
    let long_uri = format!("https://hooks.example.com/{}", "a".repeat(100_000));
    let cases = [
        (
            json!({"name": "n", "uri": long_uri, "hook": "channel_create"}),
            json!({"uri": {"maxLength": {"message": "String must not be more than 2048 characters", "target": 2048}}}),
        ),
        (
            json!({"name": "n".repeat(129), "uri": "https://hooks.example.com/a", "hook": "channel_create"}),
            json!({"name": {"maxLength": {"message": "String must not be more than 128 characters", "target": 128}}}),
        ),
        (
            json!({"name": "n", "uri": "https://hooks.example.com/a", "hook": "channel_create",
                   "custom_request_headers": {"X-Long": "v".repeat(4097)}}),
            json!({"custom_request_headers.X-Long": {"maxLength": {
                "message": "String must not be more than 4096 characters", "target": 4096}}}),
        ),
    ];
    for (data, expected) in cases {
        let refused = app.client.send(Method::PUT, &hooks, Some(&token), Some(&json!({"data": data}))).await;
        assert_eq!((refused.status, &refused.body["message"]), (StatusCode::BAD_REQUEST, &json!("validation error")));
        assert_eq!(refused.data(), &expected);
    }
    let listed = app.client.send(Method::GET, &hooks, Some(&token), None).await;
    assert_eq!(listed.data(), &json!([]), "nothing refused was stored");
}

/// A response read off a raw connection: status, headers (names lower-cased), JSON body.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl RawAnswer {
    /// The answer, once `received` holds its head and its `Content-Length` body.
    fn parse(received: &[u8]) -> Option<RawAnswer> {
        let head_end = received.windows(4).position(|window| window == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&received[..head_end]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().expect("a status code");
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().expect("a length"));
        let body = received.get(head_end + 4..head_end + 4 + length)?;
        Some(RawAnswer { status, headers, body: serde_json::from_slice(body).expect("a JSON body") })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(found, _)| found == name).map(|(_, value)| value.as_str())
    }
}

/// Writes `request` on a new connection to `app`, leaving it open as a tunnelling client would,
/// and reads the answer; fails unless it comes whole within 5 s.
async fn raw_exchange(app: &TestApp, request: &str) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.client.base_url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("a connection");
    stream.write_all(request.as_bytes()).await.expect("the request is written");
    let mut received = Vec::new();
    let reading = async {
        loop {
            if let Some(answer) = RawAnswer::parse(&received) {
                return answer;
            }
            let mut chunk = [0; 4096];
            let read = stream.read(&mut chunk).await.expect("the connection reads");
            assert!(read > 0, "closed before a whole answer: {:?}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&chunk[..read]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), reading)
        .await
        .unwrap_or_else(|_| panic!("no answer within 5 s to {request:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_and_upgrade_requests_get_a_prompt_crossbar_answer() {
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let method_not_allowed = json!({"message": "method not allowed"});

    let connect = raw_exchange(&app, "CONNECT /v2/webhooks HTTP/1.1\r\nHost: api\r\n\r\n").await;
    assert_eq!((connect.status, &connect.body["message"]), (405, &json!("invalid_method")), "{connect:?}");
    assert_eq!((&connect.body["data"], connect.header("allow")), (&method_not_allowed, Some("GET, PUT, PATCH")));
    // What would follow on the connection is the tunnel's, not a next request: it is closed.
    assert_eq!(connect.header("connection"), Some("close"));
    let account =
        raw_exchange(&app, &format!("CONNECT {} HTTP/1.1\r\nHost: api\r\n\r\n", path(&app.master_id, ""))).await;
    assert_eq!((account.status, account.header("allow")), (405, Some("GET, PUT, PATCH")), "{account:?}");
    // The form a proxy's client sends names no path this server has.
    let tunnel = raw_exchange(&app, "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n").await;
    assert_eq!((tunnel.status, &tunnel.body["data"]), (404, &json!({"message": "not found"})), "{tunnel:?}");

    // An upgrade this server does not speak is ignored: the request is served as plain HTTP/1.1.
    let websocket = "GET /v2/webhooks HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let upgraded = raw_exchange(&app, websocket).await;
    assert_eq!((upgraded.status, &upgraded.body["status"]), (200, &json!("success")), "{upgraded:?}");
    assert_eq!(upgraded.body["data"].as_array().map(Vec::len), Some(9), "the hook definitions");
    assert_eq!((upgraded.header("upgrade"), upgraded.header("connection")), (None, Some("close")));
    let bare = raw_exchange(&app, "GET /v2/webhooks HTTP/1.1\r\nHost: api\r\nUpgrade: websocket\r\n\r\n").await;
    assert_eq!(bare.status, 200, "{bare:?}");
    // With a body: exactly its declared length is read.
    let auth = json!({"data": {"api_key": app.master_key}}).to_string();
    let put = format!(
        "PUT /v2/api_auth HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{auth}",
        auth.len()
    );
    let authenticated = raw_exchange(&app, &put).await;
    assert_eq!(authenticated.status, 201, "{authenticated:?}");
    assert!(authenticated.body["auth_token"].is_string(), "{authenticated:?}");
}
