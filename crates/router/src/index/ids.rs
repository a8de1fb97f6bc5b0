//! The index's map keys: account and hook ids as 128-bit numbers, hashed with a seeded multiply;
//! and the table finding a hook by its id.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// An id's 32 hex digits as one number: a compact, quickly hashed map key. Account and webhook
/// ids are checked to be 32 lowercase hex digits, which always fit. This runs once per event, so
/// it converts eight digits at a time instead of looping over characters.
pub(super) fn id_key(id: &str) -> u128 {
    let bytes = id.as_bytes();
    if bytes.len() != 32 {
        // Unreachable for checked ids; any stable value will do.
        return bytes.iter().fold(0u128, |key, byte| key.rotate_left(5) ^ u128::from(*byte));
    }
    bytes.chunks_exact(8).fold(0u128, |key, chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        (key << 32) | u128::from(hex_word(u64::from_be_bytes(word)))
    })
}

/// Eight ASCII hex digits (first digit in the most significant byte) to their 32-bit value.
fn hex_word(chunk: u64) -> u32 {
    // '0'..'9' are 0x30..0x39 and 'a'..'f' / 'A'..'F' are 0x61../0x41..: the low nibble plus 9
    // for letters (bit 6 set) is each digit's value.
    let digits = (chunk & 0x0f0f_0f0f_0f0f_0f0f) + ((chunk >> 6) & 0x0101_0101_0101_0101) * 9;
    // Pack neighbouring nibbles into bytes, bytes into 16-bit lanes, lanes into the result.
    let bytes = (digits | (digits >> 4)) & 0x00ff_00ff_00ff_00ff;
    let lanes = (bytes | (bytes >> 8)) & 0x0000_ffff_0000_ffff;
    ((lanes | (lanes >> 16)) & 0xffff_ffff) as u32
}

/// Hashes the 128-bit id keys: ids are random, so one folded multiply with a per-index random
/// seed mixes them well (and keeps crafted ids from colliding on purpose) at a fraction of
/// SipHash's cost. This is the per-event hot path.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdHashBuilder {
    seed: [u64; 2],
}

impl Default for IdHashBuilder {
    fn default() -> Self {
        Self { seed: [rand::random(), rand::random()] }
    }
}

impl BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { seed: self.seed, state: 0 }
    }
}

/// See [`IdHashBuilder`].
#[derive(Debug)]
pub(super) struct IdHasher {
    seed: [u64; 2],
    state: u64,
}

/// Multiplies as 128 bits and folds the halves together.
fn folded_multiply(left: u64, right: u64) -> u64 {
    let product = u128::from(left) * u128::from(right);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by the u128 keys; kept correct for any other key type.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.state = folded_multiply(self.state ^ u64::from_le_bytes(word) ^ self.seed[0], self.seed[1] | 1);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.state = folded_multiply((value as u64) ^ self.seed[0], ((value >> 64) as u64) ^ self.seed[1]);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// A map keyed by id keys.
pub(super) type IdMap<V> = HashMap<u128, V, IdHashBuilder>;

/// A position of [`PositionTable::slots`] holding none.
const EMPTY: u32 = u32::MAX;

/// Hook id keys to positions in the index's hook table, in 4 bytes a hook: an open-addressing
/// table (linear probing, at most half full) of positions only, the keys being read from the
/// hooks themselves through `key_of`. A map holding the keys too would take 32 bytes a hook.
#[derive(Debug, Clone, Default)]
pub(super) struct PositionTable {
    /// A power of two of positions, or none yet.
    slots: Vec<u32>,
    len: usize,
    hasher: IdHashBuilder,
}

impl PositionTable {
    /// How many keys the table holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Makes room for `additional` more keys.
    pub(super) fn reserve(&mut self, additional: usize, key_of: impl Fn(u32) -> u128) {
        let wanted = (self.len + additional).saturating_mul(2).next_power_of_two().max(8);
        if wanted <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; wanted]);
        for position in old.into_iter().filter(|&position| position != EMPTY) {
            let at = self.free_slot(key_of(position));
            self.slots[at] = position;
        }
    }

    /// The position of `key`, if held.
    pub(super) fn get(&self, key: u128, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        self.find(key, &key_of).map(|at| self.slots[at])
    }

    /// Adds `key` at `position`; the key must not be held already.
    pub(super) fn insert(&mut self, key: u128, position: u32, key_of: impl Fn(u32) -> u128) {
        self.reserve(1, &key_of);
        let at = self.free_slot(key);
        self.slots[at] = position;
        self.len += 1;
    }

    /// Removes `key`; returns its position, if held.
    pub(super) fn remove(&mut self, key: u128, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        let mut hole = self.find(key, &key_of)?;
        let position = self.slots[hole];
        self.len -= 1;
        // Backward-shift deletion: a later key of the same run moves into the hole unless its own
        // home lies after the hole, so every run stays unbroken and no tombstone is needed.
        let mask = self.slots.len() - 1;
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let moved = self.slots[next];
            if moved == EMPTY {
                break;
            }
            let home = self.home(key_of(moved));
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = moved;
                hole = next;
            }
        }
        self.slots[hole] = EMPTY;
        Some(position)
    }

    /// Where the probe for `key` starts.
    fn home(&self, key: u128) -> usize {
        (self.hasher.hash_one(key) as usize) & (self.slots.len() - 1)
    }

    /// The slot holding `key`.
    fn find(&self, key: u128, key_of: &impl Fn(u32) -> u128) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            match self.slots[at] {
                EMPTY => return None,
                position if key_of(position) == key => return Some(at),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The first empty slot of `key`'s probe; the table must have one.
    fn free_slot(&self, key: u128) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_keys_are_the_hexadecimal_value_of_the_id() {
        let id = "0123456789abcdef0f1e2d3c4b5a6978";
        assert_eq!(id_key(id), u128::from_str_radix(id, 16).expect("hex"));
        assert_eq!(id_key("0123456789ABCDEF0F1E2D3C4B5A6978"), id_key(id));
        assert_eq!(id_key("00000000000000000000000000000000"), 0);
    }

    #[test]
    fn id_keys_of_distinct_ids_differ() {
        assert_ne!(id_key("3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d"), id_key("3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8e"));
        assert_eq!(id_key("ffffffffffffffffffffffffffffffff"), u128::MAX);
    }

    #[test]
    fn the_position_table_finds_every_key_through_growth_and_removals() {
        let keys: Vec<u128> =
            (0..2_000u128).map(|n| n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)).collect();
        let key_of = |position: u32| keys[position as usize];
        let mut table = PositionTable::default();
        assert_eq!(table.get(keys[0], key_of), None);
        for (position, key) in keys.iter().enumerate() {
            table.insert(*key, position as u32, key_of);
        }
        assert_eq!(table.len(), keys.len());
        for position in (0..keys.len()).step_by(3) {
            assert_eq!(table.remove(keys[position], key_of), Some(position as u32));
            assert_eq!(table.remove(keys[position], key_of), None);
        }
        for (position, key) in keys.iter().enumerate() {
            let expected = (position % 3 != 0).then_some(position as u32);
            assert_eq!(table.get(*key, key_of), expected, "key {position}");
        }
        assert_eq!(table.len(), keys.len() - keys.len().div_ceil(3));
    }
}
