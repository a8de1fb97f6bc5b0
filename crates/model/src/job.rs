//! Delivery jobs: what the router hands the dispatcher for one hook and one event.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::ids::{AccountId, EventId, WebhookId};
use crate::payload::custom_data;
use crate::trace::TraceParent;
use crate::webhook::{CallbackUri, DeliveryTarget, Format, HttpVerb};

/// A finished payload. The jobs of one event whose hooks receive the same payload share it, so
/// that it is built, carried on the bus, read and encoded once for all of them.
///
/// Read off the bus, it stays the JSON text it arrived as: that text is a JSON hook's body, and
/// its fields are parsed only when something asks for them (a form hook, a test).
#[derive(Clone)]
pub struct Payload(Arc<Forms>);

/// The forms of a payload: at least one of `fields` and `json` is set, and the other is derived
/// from it on first use.
#[derive(Default)]
struct Forms {
    fields: OnceLock<Map<String, Value>>,
    /// `None` only if the fields could not be written, which a map of JSON values cannot cause.
    json: OnceLock<Option<Box<RawValue>>>,
    call_id: OnceLock<Option<Box<str>>>,
}

impl Payload {
    /// Its fields.
    pub fn fields(&self) -> &Map<String, Value> {
        self.0.fields.get_or_init(|| {
            // The text was checked to be a JSON object when it was read.
            let json = self.0.json.get().and_then(Option::as_deref);
            json.and_then(|json| serde_json::from_str(json.get()).ok()).unwrap_or_default()
        })
    }

    /// Its JSON text, exactly as `serde_json` writes its fields.
    pub fn json(&self) -> &str {
        let json = self.0.json.get_or_init(|| serde_json::value::to_raw_value(self.fields()).ok());
        json.as_deref().map_or("{}", RawValue::get)
    }

    /// Its top-level `call_id`, for logs: read from the JSON text without parsing the rest.
    pub fn call_id(&self) -> Option<&str> {
        if let Some(fields) = self.0.fields.get() {
            return fields.get("call_id").and_then(Value::as_str);
        }
        #[derive(Deserialize)]
        struct CallId {
            call_id: Option<Box<str>>,
        }
        let read = || serde_json::from_str::<CallId>(self.json()).ok().and_then(|only| only.call_id);
        self.0.call_id.get_or_init(read).as_deref()
    }

    /// Whether `self` and `other` are the same shared payload (not merely equal ones).
    pub fn ptr_eq(&self, other: &Payload) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address identifying this shared payload while it lives.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).addr()
    }
}

impl From<Map<String, Value>> for Payload {
    fn from(fields: Map<String, Value>) -> Self {
        Self(Arc::new(Forms { fields: OnceLock::from(fields), ..Forms::default() }))
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::from(Map::new())
    }
}

impl Deref for Payload {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        self.fields()
    }
}

impl AsRef<Map<String, Value>> for Payload {
    fn as_ref(&self) -> &Map<String, Value> {
        self.fields()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.ptr_eq(other) || self.fields() == other.fields()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fields().fmt(formatter)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Text read off the bus goes out as it came, without being parsed.
        match self.0.json.get().and_then(Option::as_deref) {
            Some(json) => json.serialize(serializer),
            None => self.fields().serialize(serializer),
        }
    }
}

/// Reads a payload as its JSON text, which must be an object.
impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        if !json.get().starts_with('{') {
            return Err(de::Error::invalid_type(
                de::Unexpected::Other("a JSON value other than an object"),
                &"a payload object",
            ));
        }
        Ok(Self(Arc::new(Forms { json: OnceLock::from(Some(json)), ..Forms::default() })))
    }
}

/// One HTTP callout to make, with everything needed to make it and to record the attempt, so the
/// dispatcher reads nothing per job.
///
/// On the wire its target's fields sit among its own, as they always have (see [`JobWire`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "JobWire")]
pub struct DeliveryJob {
    /// Identifies this event for this hook: sent as `X-Event-ID`, stable across retries.
    pub event_id: EventId,
    /// The hook.
    pub hook_id: WebhookId,
    /// The hook's owner, sent as `X-Account-ID`.
    pub account_id: AccountId,
    /// The attempt record's `hook_event` (`CHANNEL_CREATE`, `object`, ...).
    pub hook_event: String,
    /// Where and how the hook is called.
    pub target: DeliveryTarget,
    /// This attempt's number, 0 for the first.
    pub attempt: u8,
    /// The hook's `custom_data`, recorded on attempts.
    pub custom_data: Option<Map<String, Value>>,
    /// The payload the hook receives, shared with the event's other jobs that receive the same.
    pub payload: Payload,
    /// When the router published the job, Unix milliseconds (delivery latency).
    pub published_at_ms: u64,
    /// A test callout (`PUT .../webhooks/{id}/test`): always recorded, never retried, and it
    /// leaves the hook's failure count and state alone.
    pub test: bool,
    /// The W3C `traceparent` of the event's trace, carried to the callout.
    pub trace_parent: Option<TraceParent>,
}

/// The event side of a delivery job: which event, recorded as which `hook_event`, with which
/// payload, published when.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// Identifies the event for the hook (see [`DeliveryJob::event_id`]).
    pub event_id: EventId,
    /// The attempt record's `hook_event`.
    pub hook_event: String,
    /// The payload, finished for the hook.
    pub payload: Payload,
    /// When the job is published, Unix milliseconds.
    pub published_at_ms: u64,
}

impl DeliveryJob {
    /// The first attempt of delivering `event` to the hook `hook_id` of `account_id`, called as
    /// `target` says; the hook's `custom_data` is recorded on its attempts.
    pub fn new(
        event: JobEvent,
        hook_id: WebhookId,
        account_id: AccountId,
        target: DeliveryTarget,
        custom_data: Option<Map<String, Value>>,
    ) -> Self {
        let JobEvent { event_id, hook_event, payload, published_at_ms } = event;
        Self {
            event_id,
            hook_id,
            account_id,
            hook_event,
            target,
            attempt: 0,
            custom_data,
            payload,
            published_at_ms,
            test: false,
            trace_parent: None,
        }
    }
}

/// A job as it travels and is kept with attempt records: flat, the target's fields in the order
/// jobs have always been written. Read through this shape; [`DeliveryJob`]'s `Serialize` writes
/// the same one without copying.
#[derive(Deserialize)]
struct JobWire {
    event_id: EventId,
    hook_id: WebhookId,
    account_id: AccountId,
    hook_event: String,
    uri: CallbackUri,
    http_verb: HttpVerb,
    format: Format,
    retries: u8,
    #[serde(default)]
    attempt: u8,
    #[serde(default)]
    custom_request_headers: Map<String, Value>,
    #[serde(default)]
    custom_data: Option<Map<String, Value>>,
    #[serde(with = "payload_slot")]
    payload: Payload,
    published_at_ms: u64,
    #[serde(default)]
    test: bool,
    #[serde(default, deserialize_with = "lenient_trace_parent")]
    trace_parent: Option<TraceParent>,
}

/// Reads a job's `trace_parent`. Text that is no valid trace parent reads as none, as such text
/// was always ignored: each attempt then starts a trace of its own.
fn lenient_trace_parent<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<TraceParent>, D::Error> {
    struct Lenient;

    impl<'de> Visitor<'de> for Lenient {
        type Value = Option<TraceParent>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a traceparent string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(text.parse().ok())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    deserializer.deserialize_option(Lenient)
}

impl From<JobWire> for DeliveryJob {
    fn from(wire: JobWire) -> Self {
        let custom_request_headers =
            (!wire.custom_request_headers.is_empty()).then(|| Box::new(wire.custom_request_headers));
        Self {
            event_id: wire.event_id,
            hook_id: wire.hook_id,
            account_id: wire.account_id,
            hook_event: wire.hook_event,
            target: DeliveryTarget {
                uri: wire.uri,
                http_verb: wire.http_verb,
                format: wire.format,
                retries: wire.retries,
                custom_request_headers,
            },
            attempt: wire.attempt,
            custom_data: wire.custom_data,
            payload: wire.payload,
            published_at_ms: wire.published_at_ms,
            test: wire.test,
            trace_parent: wire.trace_parent,
        }
    }
}

impl Serialize for DeliveryJob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let target = &self.target;
        let headers = target.custom_request_headers.as_deref().filter(|headers| !headers.is_empty());
        let mut job = serializer.serialize_struct("DeliveryJob", 15)?;
        job.serialize_field("event_id", &self.event_id)?;
        job.serialize_field("hook_id", &self.hook_id)?;
        job.serialize_field("account_id", &self.account_id)?;
        job.serialize_field("hook_event", &self.hook_event)?;
        job.serialize_field("uri", &target.uri)?;
        job.serialize_field("http_verb", &target.http_verb)?;
        job.serialize_field("format", &target.format)?;
        job.serialize_field("retries", &target.retries)?;
        job.serialize_field("attempt", &self.attempt)?;
        match headers {
            Some(headers) => job.serialize_field("custom_request_headers", headers)?,
            None => job.skip_field("custom_request_headers")?,
        }
        match &self.custom_data {
            Some(custom_data) => job.serialize_field("custom_data", custom_data)?,
            None => job.skip_field("custom_data")?,
        }
        job.serialize_field("payload", &payload_slot::Slot(&self.payload))?;
        job.serialize_field("published_at_ms", &self.published_at_ms)?;
        if self.test {
            job.serialize_field("test", &self.test)?;
        } else {
            job.skip_field("test")?;
        }
        match &self.trace_parent {
            Some(trace_parent) => job.serialize_field("trace_parent", trace_parent)?,
            None => job.skip_field("trace_parent")?,
        }
        job.end()
    }
}

/// The body of one bus message: several jobs travel together, so one event fanning out to many
/// hooks costs one publish and one confirm. A payload shared by several of the jobs is written
/// once, in `payloads`, and each job names its payload by position there.
#[derive(Debug, Clone, PartialEq)]
pub struct JobBatch {
    /// The jobs.
    pub jobs: Vec<DeliveryJob>,
}

/// Jobs per bus message when many redeliveries are published at once (a replay), so that one
/// message stays small.
pub const REDELIVERY_BATCH: usize = 50;

/// Bytes reserved per payload and per job when a batch is written: growing a buffer of tens of
/// kilobytes by doubling would copy it often.
const PAYLOAD_SIZE_HINT: usize = 1_024;
const JOB_SIZE_HINT: usize = 384;

impl JobBatch {
    /// The message body carrying the batch.
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.jobs.len() * JOB_SIZE_HINT + PAYLOAD_SIZE_HINT);
        // Jobs are strings, numbers and JSON maps: serializing them cannot fail.
        serde_json::to_writer(&mut body, self).map_or_else(|_| Vec::new(), |()| body)
    }
}

impl Serialize for JobBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut payloads: Vec<&Payload> = Vec::new();
        let mut positions = HashMap::new();
        for job in &self.jobs {
            positions.entry(job.payload.addr()).or_insert_with(|| {
                payloads.push(&job.payload);
                payloads.len() - 1
            });
        }
        let _writing = payload_slot::Table::writing(positions);
        let mut batch = serializer.serialize_struct("JobBatch", 2)?;
        batch.serialize_field("payloads", &payloads)?;
        batch.serialize_field("jobs", &self.jobs)?;
        batch.end()
    }
}

impl<'de> Deserialize<'de> for JobBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BatchVisitor)
    }
}

/// Reads a batch: `payloads` first, then the jobs naming them (batches written before payloads
/// were shared carry each job's payload in the job, and still read).
struct BatchVisitor;

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = JobBatch;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a job batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JobBatch, A::Error> {
        let mut payloads: Vec<Payload> = Vec::new();
        let mut jobs = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "payloads" => {
                    payloads = map.next_value()?;
                }
                "jobs" => {
                    let _reading = payload_slot::Table::reading(payloads.clone());
                    jobs = Some(map.next_value::<Vec<DeliveryJob>>()?);
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(JobBatch { jobs: jobs.ok_or_else(|| de::Error::missing_field("jobs"))? })
    }
}

/// A job's payload on the wire: its position among its batch's `payloads`, or, outside a batch
/// (and in batches written before payloads were shared), the payload itself.
///
/// Serde's derived code gives a field no context, so the batch being written or read lends its
/// table through a thread-local for the duration of the (synchronous) call.
mod payload_slot {
    use super::*;

    /// The table of the batch being written or read on this thread.
    pub(super) enum Table {
        /// Positions in `payloads` by payload address.
        Writing(HashMap<usize, usize>),
        /// The batch's `payloads`.
        Reading(Vec<Payload>),
    }

    thread_local! {
        static CURRENT: RefCell<Option<Table>> = const { RefCell::new(None) };
    }

    /// Keeps a table lent until dropped, then restores what was there before.
    pub(super) struct Lent(Option<Table>);

    impl Table {
        pub(super) fn writing(positions: HashMap<usize, usize>) -> Lent {
            Lent(CURRENT.replace(Some(Table::Writing(positions))))
        }

        pub(super) fn reading(payloads: Vec<Payload>) -> Lent {
            Lent(CURRENT.replace(Some(Table::Reading(payloads))))
        }
    }

    impl Drop for Lent {
        fn drop(&mut self) {
            CURRENT.set(self.0.take());
        }
    }

    /// A payload written as its slot.
    pub(super) struct Slot<'a>(pub(super) &'a Payload);

    impl Serialize for Slot<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }

    fn serialize<S: Serializer>(payload: &Payload, serializer: S) -> Result<S::Ok, S::Error> {
        let position = CURRENT.with_borrow(|table| match table {
            Some(Table::Writing(positions)) => positions.get(&payload.addr()).copied(),
            _ => None,
        });
        match position {
            Some(position) => serializer.serialize_u64(position as u64),
            None => payload.serialize(serializer),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        deserializer.deserialize_any(SlotVisitor)
    }

    struct SlotVisitor;

    impl<'de> Visitor<'de> for SlotVisitor {
        type Value = Payload;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a payload object or the position of one of the batch's payloads")
        }

        fn visit_u64<E: de::Error>(self, position: u64) -> Result<Payload, E> {
            CURRENT
                .with_borrow(|table| match table {
                    Some(Table::Reading(payloads)) => {
                        usize::try_from(position).ok().and_then(|position| payloads.get(position)).cloned()
                    }
                    _ => None,
                })
                .ok_or_else(|| E::custom(format_args!("payload {position} is not among the batch's payloads")))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Payload, A::Error> {
            Map::deserialize(de::value::MapAccessDeserializer::new(map)).map(Payload::from)
        }
    }
}

/// The first attempt of delivering `event` to the hook `hook_id` of `account_id`, called as its
/// stored document `hook` says now (URI, verb, format, retries, headers, custom data).
pub fn job_for_document(
    event: JobEvent,
    hook_id: WebhookId,
    account_id: AccountId,
    hook: &Map<String, Value>,
) -> DeliveryJob {
    let target = DeliveryTarget::from_document(hook);
    DeliveryJob::new(event, hook_id, account_id, target, custom_data(hook).cloned())
}

/// The job delivering `attempted` again to its hook as the hook's document `hook` says now (its
/// owner may have fixed the endpoint since): the same event id, so receivers can de-duplicate,
/// the same payload in the same trace, and the attempt counter back at the first attempt.
pub fn redelivery(attempted: &DeliveryJob, hook: &Map<String, Value>, published_at_ms: u64) -> DeliveryJob {
    let event = JobEvent {
        event_id: attempted.event_id.clone(),
        hook_event: attempted.hook_event.clone(),
        payload: attempted.payload.clone(),
        published_at_ms,
    };
    DeliveryJob {
        trace_parent: attempted.trace_parent,
        ..job_for_document(event, attempted.hook_id.clone(), attempted.account_id.clone(), hook)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attempted() -> DeliveryJob {
        DeliveryJob {
            event_id: "0a1b2c3d4e".into(),
            hook_id: "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".parse().expect("hook id"),
            account_id: "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("account id"),
            hook_event: "CHANNEL_CREATE".into(),
            target: DeliveryTarget {
                uri: "https://old.example.com/in".into(),
                http_verb: HttpVerb::Get,
                format: Format::FormData,
                retries: 4,
                custom_request_headers: json!({"X-Old": "1"}).as_object().cloned().map(Box::new),
            },
            attempt: 3,
            custom_data: None,
            payload: json!({"call_id": "c1"}).as_object().cloned().unwrap_or_default().into(),
            published_at_ms: 10,
            test: false,
            trace_parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().ok(),
        }
    }

    #[test]
    fn a_redelivery_keeps_the_event_payload_and_trace_and_takes_the_hook_as_it_is_now() {
        let hook = json!({"uri": "https://new.example.com/in", "http_verb": "PUT", "format": "json", "retries": 1,
                          "custom_request_headers": {"X-New": "2"}, "custom_data": {"env": "prod"}});
        let again = redelivery(&attempted(), hook.as_object().expect("an object"), 99);
        let expected = DeliveryJob {
            target: DeliveryTarget {
                uri: "https://new.example.com/in".into(),
                http_verb: HttpVerb::Put,
                format: Format::Json,
                retries: 1,
                custom_request_headers: json!({"X-New": "2"}).as_object().cloned().map(Box::new),
            },
            attempt: 0,
            custom_data: json!({"env": "prod"}).as_object().cloned(),
            published_at_ms: 99,
            ..attempted()
        };
        assert_eq!(again, expected);
    }

    #[test]
    fn missing_or_odd_hook_fields_fall_back_to_the_schema_defaults() {
        let again = redelivery(&attempted(), &Map::new(), 0);
        let target = &again.target;
        assert_eq!((target.http_verb, target.format, target.retries), (HttpVerb::Post, Format::FormData, 2));
        assert!(target.custom_request_headers.is_none() && again.custom_data.is_none());
    }

    #[test]
    fn a_job_is_written_flat_with_its_target_among_its_fields() {
        let text = concat!(
            r#"{"event_id":"0a1b2c3d4e","hook_id":"5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b","#,
            r#""account_id":"3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d","hook_event":"CHANNEL_CREATE","#,
            r#""uri":"https://old.example.com/in","http_verb":"get","format":"form-data","retries":4,"attempt":3,"#,
            r#""custom_request_headers":{"X-Old":"1"},"payload":{"call_id":"c1"},"published_at_ms":10,"#,
            r#""trace_parent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#
        );
        assert_eq!(serde_json::to_string(&attempted()).expect("JSON"), text);
        assert_eq!(serde_json::from_str::<DeliveryJob>(text).expect("a job"), attempted());
        let plain = DeliveryJob {
            target: DeliveryTarget { custom_request_headers: None, ..attempted().target },
            test: true,
            ..attempted()
        };
        let written = serde_json::to_value(&plain).expect("JSON");
        assert!(written.get("custom_request_headers").is_none() && written["test"] == true);
        let unreachable = json!({"uri": "no uri at all", "http_verb": "post", "format": "json", "retries": 0,
                                 "event_id": "e", "hook_id": plain.hook_id, "account_id": plain.account_id,
                                 "hook_event": "object", "payload": {}, "published_at_ms": 0});
        let read: DeliveryJob = serde_json::from_value(unreachable.clone()).expect("any uri is read");
        assert!(read.target.uri.callout().is_err());
        let mut untraced = unreachable;
        untraced["trace_parent"] = json!("not a trace parent");
        let read: DeliveryJob = serde_json::from_value(untraced.clone()).expect("a malformed trace parent is read");
        assert_eq!(read.trace_parent, None);
        untraced["trace_parent"] = json!(7);
        assert!(serde_json::from_value::<DeliveryJob>(untraced).is_err(), "a trace parent is text");
    }

    #[test]
    fn a_payload_shared_by_jobs_is_written_once_and_read_back_shared() {
        let shared = attempted();
        let other = DeliveryJob { event_id: "1f2e3d4c5b".into(), ..shared.clone() };
        let own = DeliveryJob { payload: Payload::default(), ..attempted() };
        let batch = JobBatch { jobs: vec![shared, other, own] };
        let written: Value = serde_json::from_slice(&batch.to_body()).expect("JSON");
        assert_eq!(written["payloads"], json!([{"call_id": "c1"}, {}]));
        let positions: Vec<&Value> =
            written["jobs"].as_array().expect("jobs").iter().map(|job| &job["payload"]).collect();
        assert_eq!(positions, [&json!(0), &json!(0), &json!(1)]);

        let read: JobBatch = serde_json::from_slice(&batch.to_body()).expect("a batch");
        assert_eq!(read, batch);
        assert!(read.jobs[0].payload.ptr_eq(&read.jobs[1].payload));
    }

    #[test]
    fn a_payload_read_off_the_bus_keeps_its_text_and_parses_its_fields_on_demand() {
        let text = r#"{"call_id":"c1","n":1.5,"nested":{"a":[1,"\u00e9"]}}"#;
        let payload: Payload = serde_json::from_str(text).expect("a payload");
        assert_eq!(payload.json(), text);
        assert_eq!(payload.call_id(), Some("c1"));
        assert_eq!(serde_json::to_string(&payload).expect("JSON"), text, "written back as it came");
        assert_eq!(
            Value::Object(payload.fields().clone()),
            json!({"call_id": "c1", "n": 1.5, "nested": {"a": [1, "é"]}})
        );

        let built = Payload::from(payload.fields().clone());
        assert_eq!(built, payload);
        assert_eq!(built.json(), r#"{"call_id":"c1","n":1.5,"nested":{"a":[1,"é"]}}"#);
        assert_eq!(built.call_id(), Some("c1"));
        assert_eq!(Payload::default().call_id(), None);

        for other in ["[1]", "\"text\"", "7", "null"] {
            assert!(serde_json::from_str::<Payload>(other).is_err(), "{other} is not a payload");
        }
    }

    #[test]
    fn a_job_alone_and_a_batch_of_inline_payloads_carry_the_payload_itself() {
        let job = attempted();
        let alone = serde_json::to_value(&job).expect("JSON");
        assert_eq!(alone["payload"], json!({"call_id": "c1"}));
        assert_eq!(serde_json::from_value::<DeliveryJob>(alone.clone()).expect("a job"), job);
        let inline: JobBatch = serde_json::from_value(json!({"jobs": [alone]})).expect("a batch");
        assert_eq!(inline.jobs, [job]);
    }

    #[test]
    fn a_batch_naming_a_payload_it_lacks_is_refused() {
        let mut job = serde_json::to_value(attempted()).expect("JSON");
        job["payload"] = json!(1);
        let error = serde_json::from_value::<JobBatch>(json!({"payloads": [{}], "jobs": [job.clone()]}))
            .expect_err("no payload 1");
        assert!(error.to_string().contains("payload 1 is not among the batch's payloads"), "{error}");
        assert!(serde_json::from_value::<DeliveryJob>(job).is_err(), "a position outside a batch");
        assert!(serde_json::from_value::<JobBatch>(json!({"payloads": []})).is_err(), "no jobs");
    }
}
