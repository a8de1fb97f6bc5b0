//! Crossbar's conventions in one place: the request middleware, the response envelope, the error
//! shapes and the request body envelope. Handlers never build envelopes by hand.

mod envelope;
mod error;
mod extract;
mod request;

pub use envelope::{PageInfo, Reply};
pub use error::ApiError;
pub use extract::Envelope;
pub use request::{RequestMeta, current, middleware};
