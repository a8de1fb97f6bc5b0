//! Message bodies: bytes, or a value that only becomes bytes when something asks for them.
//!
//! A publisher that already holds what it sends as a value (an event the API has parsed, the jobs
//! the router has built) hands the value itself. RabbitMQ gets its JSON, written once; the
//! in-process bus hands the very value to its consumer, which then neither writes nor parses
//! JSON: in `webhooks serve` those two steps were most of the cost of a message.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use webhooks_model::job::JobBatch;

/// A value that travels as a message body, with the JSON it is written as on the wire.
pub trait MessageValue: DeserializeOwned + Clone + Send + Sync + 'static {
    /// The JSON body. Values of this trait are plain JSON data: writing them cannot fail.
    fn to_json(&self) -> Vec<u8>;

    /// Writes the same JSON as [`MessageValue::to_json`] into `out`.
    fn write_json(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.to_json())
    }
}

impl MessageValue for Value {
    fn to_json(&self) -> Vec<u8> {
        // A `Value`'s keys are strings: serializing it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn write_json(&self, out: &mut dyn io::Write) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::from)
    }
}

impl MessageValue for JobBatch {
    fn to_json(&self) -> Vec<u8> {
        self.to_body()
    }
}

/// A message body. Dereferences to its bytes: a value is written as JSON the first time (and
/// only the first time) they are needed, shared by every copy of the message.
#[derive(Clone)]
pub struct Body(Repr);

#[derive(Clone)]
enum Repr {
    /// Bytes as published or received.
    Bytes(Bytes),
    /// A value, with its JSON once written.
    Value(Arc<dyn Written>),
}

/// A [`MessageValue`] with its bytes written on demand, behind a type-erased handle.
trait Written: Send + Sync {
    fn bytes(&self) -> &Bytes;
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()>;
    fn as_any(&self) -> &dyn Any;
}

struct Lazy<T> {
    value: T,
    bytes: OnceLock<Bytes>,
}

impl<T: MessageValue> Written for Lazy<T> {
    fn bytes(&self) -> &Bytes {
        self.bytes.get_or_init(|| Bytes::from(self.value.to_json()))
    }

    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        match self.bytes.get() {
            Some(bytes) => out.write_all(bytes),
            None => self.value.write_json(out),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Body {
    /// A body carrying `value` itself.
    pub fn value<T: MessageValue>(value: T) -> Self {
        Self(Repr::Value(Arc::new(Lazy { value, bytes: OnceLock::new() })))
    }

    /// The body read as a `T`: the value itself when it was published as one, else parsed from
    /// the bytes (as every body from RabbitMQ is).
    pub fn read<T: MessageValue>(&self) -> Result<Cow<'_, T>, serde_json::Error> {
        self.read_with(|bytes| serde_json::from_slice(bytes))
    }

    /// [`Body::read`], with the bytes read by `parse` (which may read only what its caller needs).
    pub fn read_with<T: MessageValue>(
        &self,
        parse: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<Cow<'_, T>, serde_json::Error> {
        if let Repr::Value(written) = &self.0
            && let Some(lazy) = written.as_any().downcast_ref::<Lazy<T>>()
        {
            return Ok(Cow::Borrowed(&lazy.value));
        }
        parse(self).map(Cow::Owned)
    }

    /// Writes the bytes into `out`; a value not yet written as bytes is serialized straight into
    /// it, without keeping them.
    pub fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        match &self.0 {
            Repr::Bytes(bytes) => out.write_all(bytes),
            Repr::Value(written) => written.write_to(out),
        }
    }

    /// The bytes, written now if the body is a value.
    pub fn bytes(&self) -> &Bytes {
        match &self.0 {
            Repr::Bytes(bytes) => bytes,
            Repr::Value(written) => written.bytes(),
        }
    }
}

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self(Repr::Bytes(bytes))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contents stay out of logs: they may carry personal data.
        match &self.0 {
            Repr::Bytes(bytes) => write!(formatter, "{} bytes", bytes.len()),
            Repr::Value(_) => formatter.write_str("a value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    #[test]
    fn a_value_is_read_back_as_itself_and_written_once_on_demand() {
        let body = Body::value(json!({"a": [1, "x"]}));
        let read = body.read::<Value>().expect("a value");
        assert!(matches!(read, Cow::Borrowed(_)), "no parsing");
        assert_eq!(*read, json!({"a": [1, "x"]}));

        let copy = body.clone();
        assert_eq!(&copy[..], br#"{"a":[1,"x"]}"#);
        assert!(std::ptr::eq(copy.bytes(), body.bytes()), "copies share the written bytes");
    }

    #[test]
    fn a_body_writes_the_bytes_it_is_sent_as_whether_a_value_or_bytes() {
        let value = Body::value(json!({"b": {"c": null}, "a": 1}));
        let mut written = Vec::new();
        value.write_to(&mut written).expect("writing to a vector");
        assert_eq!(written, br#"{"b":{"c":null},"a":1}"#);
        assert_eq!(&written[..], &value[..], "the same bytes as once written");
        let mut again = Vec::new();
        value.write_to(&mut again).expect("writing to a vector");
        assert_eq!(again, written);

        let bytes = Body::from(Bytes::from_static(b"not even json"));
        let mut copied = Vec::new();
        bytes.write_to(&mut copied).expect("writing to a vector");
        assert_eq!(copied, b"not even json");
    }

    #[test]
    fn bytes_are_parsed_and_a_value_of_another_type_goes_through_its_json() {
        let bytes = Body::from(Bytes::from_static(br#"{"jobs":[]}"#));
        assert_eq!(bytes.read::<JobBatch>().expect("a batch").into_owned(), JobBatch { jobs: Vec::new() });
        assert!(Body::from(Bytes::from_static(b"not json")).read::<Value>().is_err());

        let batch = Body::value(JobBatch { jobs: Vec::new() });
        let as_value = batch.read::<Value>().expect("JSON");
        assert!(matches!(as_value, Cow::Owned(_)));
        assert_eq!(*as_value, json!({"payloads": [], "jobs": []}));
        assert_eq!(format!("{batch:?} / {bytes:?}"), "a value / 11 bytes");
    }

    #[test]
    fn a_reader_of_its_own_reads_bytes_and_is_not_asked_for_a_value() {
        let keys = |bytes: &[u8]| serde_json::from_slice::<Map<String, Value>>(bytes).map(|map| json!(map.len()));
        let bytes = Body::from(Bytes::from_static(br#"{"a":1,"b":2}"#));
        assert_eq!(*bytes.read_with(keys).expect("JSON"), json!(2));
        let value = Body::value(json!({"a": 1}));
        let read = value.read_with::<Value>(|_| Err(serde::de::Error::custom("not asked")));
        assert_eq!(*read.expect("the value itself"), json!({"a": 1}));
    }
}
