//! A job's payload on the wire: its position among its batch's `payloads`, or, outside a batch
//! (and in batches written before payloads were shared), the payload itself.
//!
//! Serde's derived code gives a field no context, so the batch being written or read lends its
//! table through a thread-local for the duration of the (synchronous) call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Map;

use super::payload::Payload;

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
