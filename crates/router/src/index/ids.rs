//! The index's map keys: account and hook ids as 128-bit numbers, hashed with a seeded multiply.

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
pub(super) type IdMap = HashMap<u128, u32, IdHashBuilder>;

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
}
