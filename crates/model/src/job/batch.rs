//! Job batches: the body of one bus message carrying several jobs, each shared payload written
//! once.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::delivery::DeliveryJob;
use super::payload::Payload;
use super::slot;

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
        let _writing = slot::Table::writing(positions);
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
                    let _reading = slot::Table::reading(payloads.clone());
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::job::delivery::tests::attempted;

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
