//! Against ct-merkle 0.3 (github.com/rozbb/ct-merkle), an independent RFC 6962 implementation
//! with its own array-based tree layout: same roots, byte-identical proofs, and each side
//! accepts the other's proofs.

use consent_ledger_audit::tree::{
    consistency_proof_in_memory, inclusion_path_in_memory, leaf_hash, mth, verify_consistency,
    verify_inclusion, Frontier, Hash,
};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::Sha256;

use super::sample_data;

type Theirs = MemoryBackedTree<Sha256, Vec<u8>>;

fn their_root(tree: &Theirs) -> Hash {
    (*tree.root().as_bytes()).into()
}

fn their_root_of(hash: &Hash, size: u64) -> RootHash<Sha256> {
    RootHash::new((*hash).into(), size)
}

fn split_hashes(bytes: &[u8]) -> Vec<Hash> {
    assert_eq!(bytes.len() % 32, 0);
    bytes
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap())
        .collect()
}

fn concat(proof: &[Hash]) -> Vec<u8> {
    proof.concat()
}

/// Every position for small trees; for larger ones the ends, the powers of two and a stride.
fn positions(n: usize) -> Vec<usize> {
    if n <= 64 {
        return (0..n).collect();
    }
    let mut p: Vec<usize> = (0..n).step_by(n / 16).collect();
    p.extend([0, 1, n - 2, n - 1]);
    p.extend((0..usize::BITS).map(|b| 1 << b).filter(|&x| x < n));
    p.extend((0..usize::BITS).map(|b| (1 << b) - 1).filter(|&x| x < n));
    p.sort_unstable();
    p.dedup();
    p
}

#[test]
fn roots_and_proofs_agree_with_ct_merkle() {
    for n in (1..=70).chain([100, 255, 256, 257, 1000]) {
        let data = sample_data(1000 + n as u64, n);
        let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let mut theirs = Theirs::new();
        let mut frontier = Frontier::new();
        for (d, &leaf) in data.iter().zip(&leaves) {
            theirs.push(d.clone());
            frontier.push(leaf);
        }
        let root = mth(&leaves);
        assert_eq!(their_root(&theirs), root, "root of {n}");
        assert_eq!(frontier.root(), root, "frontier root of {n}");
        let their_root_hash = theirs.root();

        for m in positions(n) {
            let ours = inclusion_path_in_memory(&leaves, m as u64).unwrap();
            let their_proof = theirs.prove_inclusion(m);
            assert_eq!(concat(&ours), their_proof.as_bytes(), "PATH({m}, D[{n}])");
            // Each verifies the other's proof.
            let ours_for_them = InclusionProof::<Sha256>::from_digests(
                ours.iter().map(|h| (*h).into()).collect::<Vec<_>>().iter(),
            );
            their_root_hash
                .verify_inclusion(&data[m], m as u64, &ours_for_them)
                .unwrap_or_else(|e| panic!("ct-merkle refused PATH({m}, D[{n}]): {e}"));
            let theirs_for_us = split_hashes(their_proof.as_bytes());
            verify_inclusion(&leaves[m], m as u64, n as u64, &theirs_for_us, &root)
                .unwrap_or_else(|e| panic!("we refused ct-merkle's PATH({m}, D[{n}]): {e}"));
        }

        for old in positions(n).into_iter().filter(|&m| m > 0) {
            let ours = consistency_proof_in_memory(&leaves, old as u64).unwrap();
            let their_proof = theirs.prove_consistency(n - old);
            assert_eq!(
                concat(&ours),
                their_proof.as_bytes(),
                "PROOF({old}, D[{n}])"
            );
            let old_root = mth(&leaves[..old]);
            let ours_for_them = ConsistencyProof::<Sha256>::from_digests(
                ours.iter().map(|h| (*h).into()).collect::<Vec<_>>().iter(),
            );
            their_root_hash
                .verify_consistency(&their_root_of(&old_root, old as u64), &ours_for_them)
                .unwrap_or_else(|e| panic!("ct-merkle refused PROOF({old}, D[{n}]): {e}"));
            let theirs_for_us = split_hashes(their_proof.as_bytes());
            verify_consistency(old as u64, n as u64, &old_root, &root, &theirs_for_us)
                .unwrap_or_else(|e| panic!("we refused ct-merkle's PROOF({old}, D[{n}]): {e}"));
        }
    }
}
