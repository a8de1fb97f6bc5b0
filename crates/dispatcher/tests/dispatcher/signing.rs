//! Signed hooks: signatures the reference library accepts, secrets that reach no log, and secrets
//! that belong to their hook.

use serde_json::{Map, Value, json};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::time::unix_seconds;
use webhooks_model::webhook::{Format, HttpVerb};
use webhooks_storage::Store;
use webhooks_test_support::bus::{Backend, PATIENCE};
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::logs::{CapturedLogs, signing_secret};
use webhooks_test_support::receiver::{Captured, Receiver};
use webhooks_test_support::store::{create_account, create_hook};
use webhooks_test_support::test_matrix;

use crate::{World, settings};

test_matrix!(
    databases;
    signing_secrets_belong_to_their_hook,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_hooks_carry_signatures_the_reference_library_accepts() {
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(200).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAECAwQFBgc=";
    let mut signed = Vec::new();
    for (verb, format) in
        [(HttpVerb::Post, Format::Json), (HttpVerb::Put, Format::FormData), (HttpVerb::Get, Format::Json)]
    {
        let job = world.hook(&receiver.url(&format!("/signed/{verb}")), verb, format, 0).await;
        assert!(world.store.set_signing_secret(&world.account, &job.hook_id, Some(secret)).await.expect("set"));
        signed.push(job);
    }
    let unsigned = world.hook(&receiver.url("/unsigned"), HttpVerb::Post, Format::Json, 0).await;
    let dispatcher = world.dispatcher(settings()).await;
    let mut jobs = signed.clone();
    jobs.push(unsigned);
    world.publish(jobs).await;
    let received = receiver.wait_for(4, PATIENCE).await;
    for job in &signed {
        let request = received.iter().find(|request| request.header("x-hook-id") == Some(job.hook_id.as_str()));
        let request = request.expect("the signed request");
        assert_eq!(request.header("webhook-id"), Some(job.event_id.as_str()));
        let timestamp: i64 = request.header("webhook-timestamp").expect("timestamp").parse().expect("seconds");
        assert!((unix_seconds() - timestamp).abs() < 60);
        verify_with_reference_library(secret, request);
    }
    let plain = received.iter().find(|request| request.path() == "/unsigned").expect("the unsigned request");
    assert!(plain.headers.iter().all(|(name, _)| !name.starts_with("webhook-")));
    dispatcher.stop().await;
}

/// Verifies `request`'s signature with the PyPI `standardwebhooks` package (installed on demand).
fn verify_with_reference_library(secret: &str, request: &Captured) {
    const SCRIPT: &str = r#"
import json, sys
from standardwebhooks import Webhook
case = json.load(sys.stdin)
Webhook(case["secret"]).verify(case["body"], case["headers"], json_parse=False)
print("verified")
"#;
    let has_library = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|status| status.success());
    if !has_library {
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "standardwebhooks"])
            .status()
            .expect("python3 runs");
        assert!(installed.success(), "pip install standardwebhooks failed");
    }
    let headers: Map<String, Value> =
        request.headers.iter().map(|(name, value)| (name.clone(), Value::from(value.as_str()))).collect();
    let case = json!({"secret": secret, "headers": headers, "body": String::from_utf8_lossy(&request.body)});
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(case.to_string().as_bytes()).expect("write the case");
    }
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(
        output.status.success() && output.stdout.starts_with(b"verified"),
        "standardwebhooks refused {} {}: {}",
        request.method,
        request.target,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A signed delivery logs neither the signing secret nor its key, at any level of any crate
/// (`trace` included), and its attempt record holds neither. The runtime has a single thread, so
/// the subscriber set for that thread hears the dispatcher, the bus, the store and the receiver.
#[tokio::test]
async fn a_signed_delivery_logs_no_secret_at_any_level() {
    let logs = CapturedLogs::default();
    let _logged = tracing::subscriber::set_default(logs.subscriber());
    let world = World::new(Backend::InProcess).await;
    let receiver = Receiver::answering(200).await;
    let (secret, forms) = signing_secret(b"the dispatcher's leak test key");
    let job = world.hook(&receiver.url("/signed"), HttpVerb::Post, Format::Json, 0).await;
    assert!(world.store.set_signing_secret(&world.account, &job.hook_id, Some(&secret)).await.expect("set"));
    let dispatcher = world.dispatcher(settings()).await;
    world.publish(vec![job.clone()]).await;
    let received = receiver.wait_for(1, PATIENCE).await;
    assert!(received[0].header("webhook-signature").is_some_and(|signature| signature.starts_with("v1,")));
    let records = Value::from(world.wait_for_attempts(&job.hook_id, 1).await).to_string();
    dispatcher.stop().await;

    let text = logs.text();
    // The search finds what is there: the delivery is logged, down to the HTTP client's traces.
    assert!(text.contains(job.hook_id.as_str()) && text.contains(r#""level":"TRACE""#), "logs are captured");
    for form in &forms {
        assert!(!text.contains(form.as_str()), "the secret is logged as {form}");
        assert!(!records.contains(form.as_str()), "the secret is recorded as {form}: {records}");
    }
}

async fn signing_secrets_belong_to_their_hook(database: TestDatabase) {
    let store = database.store().await;
    let owner = AccountId::generate();
    let stranger = AccountId::generate();
    for id in [&owner, &stranger] {
        create_account(&store, id, None, json!({})).await;
    }
    let hook = WebhookId::generate();
    create_hook(&store, &hook, &owner, &json!({"name": "n", "uri": "https://example.com", "hook": "object"})).await;
    assert_eq!(store.signing_secret(&hook).await.expect("read"), None);
    assert!(!store.set_signing_secret(&stranger, &hook, Some("whsec_x")).await.expect("set"), "not the owner");
    assert!(!store.set_signing_secret(&owner, &WebhookId::generate(), Some("whsec_x")).await.expect("set"));
    assert!(store.set_signing_secret(&owner, &hook, Some("whsec_first")).await.expect("set"));
    assert!(store.set_signing_secret(&owner, &hook, Some("whsec_second")).await.expect("set"));
    assert_eq!(store.signing_secret(&hook).await.expect("read").as_deref(), Some("whsec_second"));
    let signed = |store: Store, owner: AccountId, hook: WebhookId| async move {
        store.webhook(&owner, &hook).await.expect("read").expect("exists").signed
    };
    assert!(signed(store.clone(), owner.clone(), hook.clone()).await, "the hook shows that it is signed");
    assert!(store.set_signing_secret(&owner, &hook, None).await.expect("unset"));
    assert_eq!(store.signing_secret(&hook).await.expect("read"), None);
    assert!(!signed(store.clone(), owner.clone(), hook.clone()).await);
    // A secret goes with its hook.
    store.set_signing_secret(&owner, &hook, Some("whsec_third")).await.expect("set");
    store.delete_webhook(&owner, &hook).await.expect("delete");
    assert_eq!(store.signing_secret(&hook).await.expect("read"), None);
}
