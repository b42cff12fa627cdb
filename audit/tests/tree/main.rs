//! The RFC 9162 tree math of `consent_ledger_audit::tree`, checked three ways: against published
//! known-answer vectors, against a straightforward recursive reading of the RFC over every small
//! tree, and against an independent implementation (ct-merkle).

mod interop;
mod known_answer;
mod properties;

use consent_ledger_audit::tree::{leaf_hash, Hash};

/// Leaf hashes of `n` distinct leaves, derived from a fixed seed so failures reproduce.
pub fn sample_leaves(seed: u64, n: usize) -> Vec<Hash> {
    sample_data(seed, n).iter().map(|d| leaf_hash(d)).collect()
}

/// `n` leaf payloads of varying length (0 to 40 bytes) from a SplitMix64 stream.
pub fn sample_data(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            let len = (next() % 41) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect()
}
