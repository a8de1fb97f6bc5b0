//! The JSON Schemas in `proto-schemas/` against what the model really reads and writes: the
//! example bus messages validate against their family's schema, and the jobs, attempt records and
//! change notices the model builds validate against theirs. Broken documents must fail, so the
//! schemas are known to constrain something.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonschema::{Registry, Validator};
use serde_json::{Map, Value, json};
use webhooks_model::attempt::{Answer, OutcomeClass, SentRequest, attempt_document};
use webhooks_model::event::{EventError, KazooEvent};
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::job::{DeliveryJob, JobBatch};
use webhooks_model::notice::{Action, Change};
use webhooks_model::notifications::NOTIFICATION_TYPES;
use webhooks_model::trace::TraceParent;
use webhooks_model::webhook::{Format, HttpVerb};

/// The base URI of every schema's `$id`: a reserved domain, since the schemas are files of this
/// repository and never fetched.
const BASE: &str = "https://webhooks.invalid/proto-schemas/";

/// Family schemas of the inbound Kazoo messages.
const CALL_EVENT: &str = "kazoo_call_event.json";
const PARKING_EVENT: &str = "kazoo_parking_event.json";
const DOCUMENT_CHANGE: &str = "kazoo_document_change.json";
const NOTIFICATION: &str = "kazoo_notification.json";
const INSTANT_MESSAGE: &str = "kazoo_instant_message.json";
const FAMILIES: [&str; 5] = [CALL_EVENT, PARKING_EVENT, DOCUMENT_CHANGE, NOTIFICATION, INSTANT_MESSAGE];

fn repository_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every JSON Schema file of `proto-schemas/` by file name; the OpenAPI description is not a
/// schema (the API crate tests it).
fn schema_files() -> BTreeMap<String, Value> {
    let directory = repository_path("proto-schemas");
    let entries = std::fs::read_dir(&directory).unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
    entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .filter(|path| !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("openapi")))
        .map(|path| (path.file_name().expect("a file name").to_string_lossy().into_owned(), read_json(&path)))
        .collect()
}

/// The schemas compiled against each other (`job_batch.json` refers to `delivery_job.json`).
struct Schemas {
    validators: BTreeMap<String, Validator>,
}

impl Schemas {
    fn load() -> Self {
        let files = schema_files();
        // `webhook.json` predates the `$id`s; it is registered under the URI it would have.
        let registry = Registry::new()
            .extend(files.iter().map(|(name, schema)| (format!("{BASE}{name}"), schema.clone())))
            .and_then(|builder| builder.prepare())
            .expect("the schemas form a registry");
        let validators = files
            .iter()
            .map(|(name, schema)| {
                let validator = jsonschema::options()
                    .with_registry(&registry)
                    .with_base_uri(format!("{BASE}{name}"))
                    .build(schema)
                    .unwrap_or_else(|error| panic!("{name} does not compile: {error}"));
                (name.clone(), validator)
            })
            .collect();
        Self { validators }
    }

    fn validator(&self, name: &str) -> &Validator {
        self.validators.get(name).unwrap_or_else(|| panic!("no schema {name}"))
    }

    fn errors(&self, name: &str, instance: &Value) -> Vec<String> {
        self.validator(name).iter_errors(instance).map(|error| format!("{}: {error}", error.instance_path())).collect()
    }

    #[track_caller]
    fn assert_valid(&self, name: &str, instance: &Value) {
        let errors = self.errors(name, instance);
        assert!(errors.is_empty(), "{name} refuses {instance}:\n{}", errors.join("\n"));
    }

    #[track_caller]
    fn assert_invalid(&self, name: &str, instance: &Value, why: &str) {
        assert!(!self.validator(name).is_valid(instance), "{name} accepts a document with {why}: {instance}");
    }
}

/// The example bus messages: file name, routing key and body.
fn fixtures() -> Vec<(String, String, Value)> {
    let directory = repository_path("crates/model/fixtures/amqp-events");
    let mut fixtures: Vec<_> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .map(|path| {
            let fixture = read_json(&path);
            let routing_key = fixture["routing_key"].as_str().expect("a routing key").to_owned();
            (path.file_name().expect("a file name").to_string_lossy().into_owned(), routing_key, fixture)
        })
        .collect();
    fixtures.sort_by(|a, b| a.0.cmp(&b.0));
    fixtures
}

/// The family schema of a message, chosen the way the router tells messages apart.
fn family(body: &Value) -> &'static str {
    let name = body["Event-Name"].as_str().unwrap_or_default();
    match body["Event-Category"].as_str().unwrap_or_default() {
        "call_event" if name.starts_with("PARK_") => PARKING_EVENT,
        "call_event" => CALL_EVENT,
        "configuration" => DOCUMENT_CHANGE,
        "notification" => NOTIFICATION,
        "sms" | "mms" => INSTANT_MESSAGE,
        other => panic!("no family for category {other:?}"),
    }
}

fn account() -> AccountId {
    "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("an account id")
}

fn hook_id() -> WebhookId {
    "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".parse().expect("a hook id")
}

/// An inbound SMS as the messaging layer publishes it; no fixture covers this family.
fn inbound_sms() -> Value {
    json!({"Event-Category": "sms", "Event-Name": "inbound", "Message-ID": "m-1", "Account-ID": account(),
           "From": "+14085550199", "To": "+14155550100", "Body": "hello", "Route-Type": "offnet", "Charges": "0.01"})
}

#[test]
fn every_schema_is_valid_for_its_draft_and_compiles() {
    let files = schema_files();
    assert!(files.len() >= 10, "schemas found: {:?}", files.keys());
    for (name, schema) in &files {
        if let Err(error) = jsonschema::meta::validate(schema) {
            panic!("{name} is not a valid schema: {error}");
        }
        assert!(schema["description"].as_str().is_some_and(|text| !text.is_empty()), "{name} has no description");
        // webhook.json is Kazoo's draft-04 schema, read by the API as it is; the others are ours.
        if name != "webhook.json" {
            assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
            assert_eq!(schema["$id"], format!("{BASE}{name}"), "{name}");
        }
    }
    let schemas = Schemas::load();
    assert_eq!(schemas.validators.len(), files.len());
}

#[test]
fn every_fixture_body_validates_against_its_family_schema_and_only_that_one() {
    let schemas = Schemas::load();
    let fixtures = fixtures();
    assert!(!fixtures.is_empty());
    let mut covered = Vec::new();
    for (file, routing_key, fixture) in &fixtures {
        let body = &fixture["body"];
        // A family schema describes what the router accepts, so the router must accept it too.
        KazooEvent::parse(routing_key, body).unwrap_or_else(|error| panic!("{file}: the router refuses it: {error}"));
        let own = family(body);
        schemas.assert_valid(own, body);
        for other in FAMILIES.iter().filter(|other| **other != own) {
            schemas.assert_invalid(other, body, &format!("the shape of {file}"));
        }
        covered.push(own);
    }
    for family in [CALL_EVENT, PARKING_EVENT, DOCUMENT_CHANGE, NOTIFICATION] {
        assert!(covered.contains(&family), "no fixture of {family}");
    }
    // The one family without a fixture.
    let sms = inbound_sms();
    KazooEvent::parse("sms.inbound.offnet.m-1", &sms).expect("the router accepts the SMS");
    schemas.assert_valid(INSTANT_MESSAGE, &sms);
}

#[test]
fn the_notification_schema_requires_what_the_notification_table_requires() {
    let schema = &schema_files()[NOTIFICATION];
    let names: Vec<&str> = schema["properties"]["Event-Name"]["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let table: Vec<&str> = NOTIFICATION_TYPES.iter().map(|notification| notification.name).collect();
    assert_eq!(names, table);
    let required: BTreeMap<&str, Vec<&str>> = schema["anyOf"]
        .as_array()
        .expect("one branch per type")
        .iter()
        .map(|branch| {
            let name = branch["properties"]["Event-Name"]["const"].as_str().expect("a type");
            let fields = branch["required"].as_array().expect("fields").iter().filter_map(Value::as_str);
            (name, fields.collect())
        })
        .collect();
    for notification in NOTIFICATION_TYPES {
        assert_eq!(
            required.get(notification.name),
            Some(&notification.required_fields.to_vec()),
            "{}",
            notification.name
        );
    }
    assert_eq!(required.len(), NOTIFICATION_TYPES.len());
}

/// A job for each fixture's hook and expected payload, as the router would build it.
fn fixture_jobs() -> Vec<DeliveryJob> {
    fixtures()
        .into_iter()
        .map(|(_, _, fixture)| {
            let hook = &fixture["hook"];
            let text = |key: &str| hook[key].as_str().expect("a hook field").to_owned();
            DeliveryJob {
                event_id: "0a1b2c3d4e".into(),
                hook_id: text("id").parse().expect("a hook id"),
                account_id: text("pvt_account_id").parse().expect("an account id"),
                // Channel hooks record the event's upper-case name, the others their hook type.
                hook_event: match text("hook") {
                    channel if channel.starts_with("channel_") => channel.to_uppercase(),
                    other => other,
                },
                uri: text("uri"),
                http_verb: text("http_verb").parse().expect("a verb"),
                format: serde_json::from_value(hook["format"].clone()).expect("a format"),
                retries: hook["retries"].as_u64().and_then(|retries| u8::try_from(retries).ok()).expect("retries"),
                attempt: 0,
                custom_request_headers: Map::new(),
                custom_data: hook["custom_data"].as_object().cloned(),
                payload: fixture["expected_http_payload"].as_object().cloned().expect("a payload").into(),
                published_at_ms: 1_710_000_005_123,
                test: false,
                trace_parent: None,
            }
        })
        .collect()
}

#[test]
fn delivery_jobs_and_batches_as_serialized_on_the_bus_validate() {
    let schemas = Schemas::load();
    let mut jobs = fixture_jobs();
    let mut retried = jobs[0].clone();
    retried.attempt = 3;
    retried.custom_request_headers = json!({"X-Tenant": "acme"}).as_object().cloned().expect("an object");
    retried.trace_parent = Some(TraceParent::new_root().to_string());
    jobs.push(retried);
    for job in &jobs {
        schemas.assert_valid("delivery_job.json", &serde_json::to_value(job).expect("a job serializes"));
    }
    let batch = serde_json::to_value(JobBatch { jobs }).expect("a batch serializes");
    schemas.assert_valid("job_batch.json", &batch);
    schemas.assert_valid("job_batch.json", &json!({"jobs": []}));
}

fn job(verb: HttpVerb, attempt: u8) -> DeliveryJob {
    DeliveryJob {
        event_id: "9c1f0a7b3e".into(),
        hook_id: hook_id(),
        account_id: account(),
        hook_event: "CHANNEL_CREATE".into(),
        uri: "https://hooks.example.com/new".into(),
        http_verb: verb,
        format: Format::Json,
        retries: 4,
        attempt,
        custom_request_headers: Map::new(),
        custom_data: Some(json!({"environment": "production"}).as_object().cloned().expect("an object")),
        payload: Default::default(),
        published_at_ms: 0,
        test: false,
        trace_parent: None,
    }
}

#[test]
fn attempt_records_of_every_outcome_validate() {
    let schemas = Schemas::load();
    let headers = vec![
        ("X-Hook-ID".to_owned(), hook_id().to_string()),
        ("Content-Type".into(), "application/json".into()),
        ("traceparent".into(), TraceParent::new_root().to_string()),
    ];
    let sent = SentRequest { headers: &headers, body: b"{\"call_id\":\"c1\"}" };
    let mut records = Vec::new();
    for verb in [HttpVerb::Get, HttpVerb::Post, HttpVerb::Put] {
        for status in [200, 201, 204, 301, 404, 410, 500] {
            let answer =
                Answer::Response { status, headers: vec![("Server".into(), "nginx".into())], body: "ok".into() };
            records.push(attempt_document(&job(verb, 0), sent, &answer, if answer.is_success() { 0 } else { 3 }, 12));
        }
        for class in OutcomeClass::ALL
            .into_iter()
            .filter(|class| !matches!(class, OutcomeClass::Success | OutcomeClass::HttpStatus))
        {
            for text in ["failed_connect: econnrefused", ""] {
                let answer = Answer::ClientError { class, text: text.into() };
                records.push(attempt_document(&job(verb, 4), sent, &answer, 0, 5_000));
            }
        }
    }
    let mut without_custom_data = job(HttpVerb::Post, 1);
    without_custom_data.custom_data = None;
    let answer = Answer::Response { status: 503, headers: Vec::new(), body: String::new() };
    records.push(attempt_document(&without_custom_data, sent, &answer, 2, 1));
    for record in records {
        let mut listed = Value::Object(record.clone());
        schemas.assert_valid("attempt.json", &listed);
        // The listing adds the creation time.
        listed["timestamp"] = json!(63_877_219_206_i64);
        schemas.assert_valid("attempt.json", &listed);
    }
}

#[test]
fn change_notices_of_every_kind_validate() {
    let schemas = Schemas::load();
    let mut changes = Vec::new();
    for action in [Action::Created, Action::Edited, Action::Deleted] {
        changes.push(Change::Webhook { action, id: hook_id(), account_id: account() });
        changes.push(Change::Account { action, id: account() });
    }
    changes.push(Change::Reenabled { account_id: account(), descendants: false });
    changes.push(Change::Reenabled { account_id: account(), descendants: true });
    for change in changes {
        let (_, body) = change.to_message("webhooks@node1", "0123456789abcdef");
        schemas.assert_valid("change_notice.json", &body);
    }
}

#[test]
fn broken_documents_are_refused() {
    let schemas = Schemas::load();
    let fixtures = fixtures();
    let body = |file: &str| fixtures.iter().find(|(name, _, _)| name == file).map(|(_, _, f)| f["body"].clone());
    let call = body("CHANNEL_CREATE.json").expect("the CHANNEL_CREATE fixture");

    // Each broken message is refused by the router too, where the router reads that field.
    let mut no_call_id = call.clone();
    no_call_id.as_object_mut().expect("an object").remove("Call-ID");
    schemas.assert_invalid(CALL_EVENT, &no_call_id, "no Call-ID");
    assert_eq!(KazooEvent::parse("call.CHANNEL_CREATE.x", &no_call_id), Err(EventError::MissingField("Call-ID")));
    let mut other_event = call.clone();
    other_event["Event-Name"] = json!("CHANNEL_HOLD");
    schemas.assert_invalid(CALL_EVENT, &other_event, "an event no hook receives");
    assert!(KazooEvent::parse("call.CHANNEL_HOLD.x", &other_event).is_err());
    let mut wrong_duration = call;
    wrong_duration["Duration-Seconds"] = json!("long");
    schemas.assert_invalid(CALL_EVENT, &wrong_duration, "a duration that is no number");

    let mut voicemail = body("notification_voicemail_new.json").expect("the voicemail fixture");
    voicemail["Voicemail-ID"] = Value::Null;
    schemas.assert_invalid(NOTIFICATION, &voicemail, "a null required field");
    assert!(matches!(
        KazooEvent::parse("notifications.voicemail.new", &voicemail),
        Err(EventError::IncompleteNotification { field: "Voicemail-ID", .. })
    ));
    voicemail["Event-Name"] = json!("voicemail_lost");
    schemas.assert_invalid(NOTIFICATION, &voicemail, "an unknown notification");

    let mut document = body("object_doc_edited_user.json").expect("the document fixture");
    document.as_object_mut().expect("an object").remove("Database");
    schemas.assert_invalid(DOCUMENT_CHANGE, &document, "no Database");

    let mut sms = inbound_sms();
    sms["Event-Name"] = json!("outbound");
    schemas.assert_invalid(INSTANT_MESSAGE, &sms, "an outbound message");

    let good_job = serde_json::to_value(job(HttpVerb::Post, 0)).expect("a job serializes");
    for (field, value) in [("http_verb", json!("patch")), ("hook_id", json!("not-an-id")), ("retries", json!(9))] {
        let mut broken = good_job.clone();
        broken[field] = value;
        schemas.assert_invalid("delivery_job.json", &broken, &format!("a bad {field}"));
        // The bus consumer would not read these either, apart from the range only the schema states.
        if field != "retries" {
            assert!(serde_json::from_value::<DeliveryJob>(broken).is_err(), "{field}");
        }
    }
    let mut no_payload = good_job.clone();
    no_payload.as_object_mut().expect("an object").remove("payload");
    schemas.assert_invalid("delivery_job.json", &no_payload, "no payload");
    schemas.assert_invalid("job_batch.json", &json!({"jobs": [no_payload]}), "a broken job");
    schemas.assert_invalid("job_batch.json", &json!({"jobs": good_job}), "jobs that are no array");

    let answer = Answer::Response { status: 500, headers: Vec::new(), body: String::new() };
    let failure = Value::Object(attempt_document(
        &job(HttpVerb::Post, 4),
        SentRequest { headers: &[], body: b"" },
        &answer,
        0,
        1,
    ));
    schemas.assert_valid("attempt.json", &failure);
    let mut exceeded = failure.clone();
    exceeded["retries_left"] = json!("retries exceeded");
    schemas.assert_invalid("attempt.json", &exceeded, "Kazoo's string retries_left");
    let mut mixed = failure.clone();
    mixed["client_error"] = json!("timeout");
    schemas.assert_invalid("attempt.json", &mixed, "both a response and a client error");
    let mut claimed_success = failure;
    claimed_success["result"] = json!("success");
    schemas.assert_invalid("attempt.json", &claimed_success, "a success with a failure reason");

    let (_, mut notice) =
        Change::Webhook { action: Action::Edited, id: hook_id(), account_id: account() }.to_message("n", "m");
    notice["Database"] = json!("accounts");
    schemas.assert_invalid("change_notice.json", &notice, "a webhook in the accounts database");
    let (_, mut reenable) = Change::Reenabled { account_id: account(), descendants: true }.to_message("n", "m");
    reenable.as_object_mut().expect("an object").remove("Action");
    schemas.assert_invalid("change_notice.json", &reenable, "a re-enable without its scope");
}
