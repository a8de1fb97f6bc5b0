//! Delivery jobs: what the router hands the dispatcher for one hook and one event, and the
//! batches they travel in.

mod batch;
pub(crate) mod delivery;
mod payload;
mod slot;

pub use batch::{JobBatch, REDELIVERY_BATCH};
pub use delivery::{DeliveryJob, JobEvent, job_for_document, redelivery};
pub use payload::Payload;
