//! W3C trace context: the `traceparent` value that carries one trace from the inbound event,
//! through the router's jobs, to the dispatcher's callout (<https://www.w3.org/TR/trace-context/>).
//!
//! Only `traceparent` is carried (no `tracestate`). Parsing follows the specification: lowercase
//! hex only, all-zero ids and version `ff` refused, a later version read as version `00` when
//! what follows its four fields starts with `-`. Values are always written as version `00`.

use std::fmt;
use std::str::FromStr;

/// The name of the header (HTTP and AMQP alike) that carries a trace parent.
pub const TRACE_PARENT_HEADER: &str = "traceparent";

/// The sampled flag: the caller recorded its part of the trace.
const SAMPLED: u8 = 0x01;
/// Length of a version `00` value: `vv-<32>-<16>-ff`.
const LENGTH: usize = 55;

/// Why a `traceparent` value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Not `version-traceid-parentid-flags` with lowercase hex fields of 2, 32, 16 and 2 digits.
    #[error("not a traceparent of the form 00-<32 hex>-<16 hex>-<2 hex>")]
    Malformed,
    /// Version `ff`, which the specification forbids.
    #[error("traceparent version ff is invalid")]
    InvalidVersion,
    /// A trace id or parent id of zeros only.
    #[error("traceparent with an all-zero trace id or parent id")]
    ZeroId,
}

/// A trace id: 16 bytes, never all zero; displayed as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

impl TraceId {
    /// The id as a number (its bytes big-endian, as OpenTelemetry reads them).
    pub fn to_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:032x}", self.0)
    }
}

/// One `traceparent`: a trace, the span that handed it on, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// Never zero.
    trace_id: u128,
    /// The calling span; never zero.
    parent_id: u64,
    /// Trace flags (bit 0: sampled).
    flags: u8,
}

impl TraceParent {
    /// A trace parent of these parts; `None` when an id is zero.
    pub fn from_parts(trace_id: u128, parent_id: u64, flags: u8) -> Option<Self> {
        (trace_id != 0 && parent_id != 0).then_some(Self { trace_id, parent_id, flags })
    }

    /// The first span of a new trace: random ids, sampled.
    pub fn new_root() -> Self {
        Self { trace_id: nonzero(rand::random), parent_id: nonzero(rand::random), flags: SAMPLED }
    }

    /// What a span inside this trace hands on: the same trace and flags, a new span id.
    pub fn child(&self) -> Self {
        Self { parent_id: nonzero(rand::random), ..*self }
    }

    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        TraceId(self.trace_id)
    }

    /// The span that handed the trace on.
    pub fn parent_id(&self) -> u64 {
        self.parent_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }
}

/// A random id, drawn again in the (2^-64 at worst) case it is zero, which would be invalid.
fn nonzero<T: Default + PartialEq>(draw: fn() -> T) -> T {
    loop {
        let value = draw();
        if value != T::default() {
            return value;
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

/// Written as its text, version `00`.
impl serde::Serialize for TraceParent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim_matches([' ', '\t']);
        let bytes = value.as_bytes();
        let version = bytes.get(..2).and_then(lowercase_hex).ok_or(TraceParentError::Malformed)?;
        if version == 0xff {
            return Err(TraceParentError::InvalidVersion);
        }
        // Version 00 is exactly its four fields; a later version may append fields after a '-'.
        let ends_right = match bytes.len() {
            LENGTH => true,
            length => version > 0 && length > LENGTH && bytes[LENGTH] == b'-',
        };
        let dashes = [2, 35, 52].iter().all(|&at| bytes.get(at) == Some(&b'-'));
        if !ends_right || !dashes {
            return Err(TraceParentError::Malformed);
        }
        let field = |range: std::ops::Range<usize>| bytes.get(range).and_then(lowercase_hex);
        let (Some(trace_id), Some(parent_id), Some(flags)) = (field(3..35), field(36..52), field(53..55)) else {
            return Err(TraceParentError::Malformed);
        };
        let parent_id = u64::try_from(parent_id).map_err(|_| TraceParentError::Malformed)?;
        let flags = u8::try_from(flags).map_err(|_| TraceParentError::Malformed)?;
        Self::from_parts(trace_id, parent_id, flags).ok_or(TraceParentError::ZeroId)
    }
}

/// Lowercase hex digits as a number; `None` for anything else (uppercase included).
fn lowercase_hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |number, &digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(number << 4 | u128::from(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_round_trips() {
        let parsed: TraceParent = EXAMPLE.parse().expect("valid");
        assert_eq!(parsed.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.trace_id().to_u128(), 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        assert_eq!((parsed.parent_id(), parsed.flags()), (0x00f0_67aa_0ba9_02b7, 1));
        assert_eq!(parsed.to_string(), EXAMPLE);
        let unsampled: TraceParent =
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\t".parse().expect("valid");
        assert_eq!(unsampled.flags(), 0);
    }

    #[test]
    fn malformed_values_are_refused() {
        for value in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é",
        ] {
            assert_eq!(value.parse::<TraceParent>(), Err(TraceParentError::Malformed), "{value:?}");
        }
    }

    #[test]
    fn zero_ids_and_version_ff_are_refused() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert_eq!(zero_trace.parse::<TraceParent>(), Err(TraceParentError::ZeroId));
        assert_eq!(zero_parent.parse::<TraceParent>(), Err(TraceParentError::ZeroId));
        let version_ff = "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(version_ff.parse::<TraceParent>(), Err(TraceParentError::InvalidVersion));
        assert_eq!(TraceParent::from_parts(0, 1, 1), None);
        assert_eq!(TraceParent::from_parts(1, 0, 1), None);
    }

    #[test]
    fn a_later_version_is_read_as_version_00_and_written_as_00() {
        let later: TraceParent =
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-follows".parse().expect("valid");
        assert_eq!(later.to_string(), EXAMPLE);
        let exact: TraceParent = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid");
        assert_eq!(exact.to_string(), EXAMPLE);
    }

    #[test]
    fn a_new_root_is_a_valid_sampled_trace_of_its_own() {
        let root = TraceParent::new_root();
        assert_eq!(root.to_string().parse::<TraceParent>(), Ok(root));
        assert_eq!(root.flags(), SAMPLED);
        assert_ne!(root.trace_id(), TraceParent::new_root().trace_id());
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span_id() {
        let parent: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".parse().expect("valid");
        let child = parent.child();
        assert_eq!((child.trace_id(), child.flags()), (parent.trace_id(), 0));
        assert_ne!(child.parent_id(), parent.parent_id());
        assert_ne!(child.parent_id(), parent.child().parent_id());
        assert_eq!(child.to_string().parse::<TraceParent>(), Ok(child));
    }
}
