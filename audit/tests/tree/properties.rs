//! Every tree of 1 to 64 leaves, every leaf and every older size: the proofs equal those of a
//! literal recursive reading of RFC 9162 §2.1 (written here independently of the crate, down to
//! its own SHA-256 calls), they verify, and every corruption tried is refused. Then trees near
//! 2^64 leaves, where the index arithmetic would overflow if it could.

use std::collections::HashMap;
use std::ops::Range;

use consent_ledger_audit::tree::{
    consistency_proof, consistency_proof_in_memory, consistency_proof_nodes, inclusion_path,
    inclusion_path_in_memory, inclusion_path_nodes, leaf_hash, mth, node_hash, root, root_nodes,
    verify_consistency, verify_inclusion, Frontier, Hash, NodeId, ProofError, TreeError,
};
use sha2::{Digest, Sha256};

use super::sample_leaves;

const MAX: usize = 64;

// --- RFC 9162 §2.1, read literally -----------------------------------------------------------

fn ref_node(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// k: the largest power of two smaller than n.
fn ref_k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes (§2.1.1).
fn ref_mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => Sha256::digest(b"").into(),
        1 => d[0],
        n => {
            let k = ref_k(n);
            ref_node(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]) (§2.1.3.1).
fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return vec![];
    }
    let k = ref_k(n);
    if m < k {
        let mut p = ref_path(m, &d[..k]);
        p.push(ref_mth(&d[k..]));
        p
    } else {
        let mut p = ref_path(m - k, &d[k..]);
        p.push(ref_mth(&d[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b) (§2.1.4.1).
fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![ref_mth(d)] };
    }
    let k = ref_k(n);
    if m <= k {
        let mut p = ref_subproof(m, &d[..k], b);
        p.push(ref_mth(&d[k..]));
        p
    } else {
        let mut p = ref_subproof(m - k, &d[k..], false);
        p.push(ref_mth(&d[..k]));
        p
    }
}

/// PROOF(m, D[n]) for 0 < m < n; nothing to prove otherwise.
fn ref_proof(m: usize, d: &[Hash]) -> Vec<Hash> {
    if m == 0 || m == d.len() {
        return vec![];
    }
    ref_subproof(m, d, true)
}

// --- A store that keeps what the frontier reports ----------------------------------------------

#[derive(Debug, PartialEq)]
enum StoreError {
    Tree(TreeError),
    Missing(NodeId),
}

impl From<TreeError> for StoreError {
    fn from(e: TreeError) -> Self {
        Self::Tree(e)
    }
}

/// Builds the tree leaf by leaf, keeping every completed subtree, as the store does.
struct Store {
    leaves: Vec<Hash>,
    nodes: HashMap<NodeId, Hash>,
    frontier: Frontier,
}

impl Store {
    fn new() -> Self {
        Self {
            leaves: Vec::new(),
            nodes: HashMap::new(),
            frontier: Frontier::new(),
        }
    }

    fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        self.leaves.push(leaf);
        let completed = self.frontier.push(leaf);
        self.nodes.extend(completed.iter().copied());
        completed
    }

    /// A node source that records what it is asked for.
    fn source<'a>(
        &'a self,
        asked: &'a mut Vec<NodeId>,
    ) -> impl FnMut(NodeId) -> Result<Hash, StoreError> + 'a {
        move |id| {
            asked.push(id);
            self.nodes.get(&id).copied().ok_or(StoreError::Missing(id))
        }
    }
}

fn full_store(seed: u64) -> Store {
    let mut store = Store::new();
    for leaf in sample_leaves(seed, MAX) {
        store.push(leaf);
    }
    store
}

fn flip(proof: &[Hash], element: usize, byte: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[element][byte] ^= 0x10;
    p
}

// --- Properties -------------------------------------------------------------------------------

#[test]
fn the_frontier_root_and_reports_match_the_rfc_after_every_push() {
    let leaves = sample_leaves(1, MAX);
    let mut store = Store::new();
    for (s, &leaf) in leaves.iter().enumerate() {
        let completed = store.push(leaf);
        let size = s as u64 + 1;
        let d = &leaves[..=s];

        // The leaf, then one subtree per trailing one bit of the old size, all ending at the new
        // size, with the hash the RFC gives their leaves.
        let expected: Vec<(NodeId, Hash)> = (0..=(s as u64).trailing_ones())
            .map(|level| {
                let id = NodeId::new(level, s as u64 >> level).unwrap();
                let Range { start, end } = id.leaves();
                (id, ref_mth(&leaves[start as usize..end as usize]))
            })
            .collect();
        assert_eq!(completed, expected, "push #{size}");
        assert!(completed.iter().all(|(id, _)| id.leaves().end == size));

        let frontier = &store.frontier;
        assert_eq!(frontier.size(), size);
        assert_eq!(frontier.root(), ref_mth(d), "frontier root, size {size}");
        assert_eq!(mth(d), ref_mth(d), "mth, size {size}");
        let mut asked = Vec::new();
        assert_eq!(root(size, store.source(&mut asked)), Ok(ref_mth(d)));
        assert_eq!(asked, root_nodes(size));

        // The frontier is the right edge, and can be rebuilt from its parts or from the store.
        let ids: Vec<NodeId> = frontier.nodes().map(|(id, _)| id).collect();
        assert_eq!(ids, root_nodes(size));
        assert_eq!(ids.len(), size.count_ones() as usize);
        assert_eq!(
            Frontier::from_parts(size, frontier.hashes().to_vec()).as_ref(),
            Ok(frontier)
        );
        let mut asked = Vec::new();
        assert_eq!(
            Frontier::from_nodes(size, store.source(&mut asked)).as_ref(),
            Ok(frontier)
        );
        let mut too_many = frontier.hashes().to_vec();
        too_many.push(leaf);
        assert_eq!(
            Frontier::from_parts(size, too_many),
            Err(TreeError::FrontierLength {
                size,
                expected: size.count_ones() as usize,
                got: size.count_ones() as usize + 1,
            })
        );
    }
    assert_eq!(Frontier::new().root(), ref_mth(&[]));
}

#[test]
fn inclusion_proofs_for_every_leaf_match_the_rfc_and_verify() {
    let store = full_store(2);
    let leaves = &store.leaves;
    let roots: Vec<Hash> = (0..=MAX).map(|n| ref_mth(&leaves[..n])).collect();
    for n in 1..=MAX {
        let size = n as u64;
        let d = &leaves[..n];
        for m in 0..n {
            let index = m as u64;
            let expected = ref_path(m, d);
            let mut asked = Vec::new();
            let proof = inclusion_path(index, size, store.source(&mut asked)).unwrap();
            assert_eq!(proof, expected, "PATH({m}, D[{n}]) from stored nodes");
            assert_eq!(asked, inclusion_path_nodes(index, size).unwrap());
            assert!(asked.iter().all(|id| id.leaves().end <= size));
            assert_eq!(inclusion_path_in_memory(d, index).unwrap(), expected);
            verify_inclusion(&d[m], index, size, &proof, &roots[n])
                .unwrap_or_else(|e| panic!("PATH({m}, D[{n}]) refused: {e}"));
        }
    }
}

#[test]
fn corrupted_inclusion_proofs_are_refused() {
    let leaves = sample_leaves(3, MAX);
    let roots: Vec<Hash> = (0..=MAX).map(|n| ref_mth(&leaves[..n])).collect();
    let verify = |m: usize, n: usize, proof: &[Hash]| {
        verify_inclusion(&leaves[m], m as u64, n as u64, proof, &roots[n])
    };
    for n in 1..=MAX {
        for m in 0..n {
            let proof = inclusion_path_in_memory(&leaves[..n], m as u64).unwrap();
            let len = proof.len();
            let wrong_length = |got| ProofError::WrongProofLength { expected: len, got };

            for e in 0..len {
                for byte in [0, (m + e) % 32, 31] {
                    assert_eq!(
                        verify(m, n, &flip(&proof, e, byte)),
                        Err(ProofError::RootMismatch),
                        "PATH({m}, D[{n}]) with byte {byte} of hash {e} flipped"
                    );
                }
                let mut dropped = proof.clone();
                dropped.remove(e);
                assert_eq!(verify(m, n, &dropped), Err(wrong_length(len - 1)));
                if e + 1 < len {
                    let mut swapped = proof.clone();
                    swapped.swap(e, e + 1);
                    assert!(verify(m, n, &swapped).is_err(), "swapped {e}");
                }
            }
            let mut longer = proof.clone();
            longer.push(roots[n]);
            assert_eq!(verify(m, n, &longer), Err(wrong_length(len + 1)));
            longer.rotate_right(1);
            assert_eq!(verify(m, n, &longer), Err(wrong_length(len + 1)));

            // Another leaf hash, at this index or the true leaf at any other.
            let root = &roots[n];
            let other = leaf_hash(b"not this leaf");
            assert_eq!(
                verify_inclusion(&other, m as u64, n as u64, &proof, root),
                Err(ProofError::RootMismatch)
            );
            for wrong in (0..n).filter(|&j| j != m) {
                assert!(
                    verify_inclusion(&leaves[m], wrong as u64, n as u64, &proof, root).is_err(),
                    "PATH({m}, D[{n}]) passed as index {wrong}"
                );
            }
            assert_eq!(
                verify_inclusion(&leaves[m], n as u64, n as u64, &proof, root),
                Err(ProofError::IndexOutOfRange {
                    index: n as u64,
                    tree_size: n as u64
                })
            );

            // Any other tree size, with that tree's root. (With *this* root a proof can pass
            // for another size — see `the_proof_does_not_bind_the_tree_size` — which is why a
            // size is only trusted from a signed checkpoint.)
            for wrong in (m + 1..=MAX).filter(|&s| s != n) {
                assert!(
                    verify_inclusion(&leaves[m], m as u64, wrong as u64, &proof, &roots[wrong])
                        .is_err(),
                    "PATH({m}, D[{n}]) passed for size {wrong}"
                );
            }
        }
    }
}

#[test]
fn the_proof_does_not_bind_the_tree_size() {
    // PATH(0, D[3]) = [leaf 1, leaf 2], which the §2.1.3.2 algorithm folds the same way for a
    // tree of 4: the root, signed together with its size, is what pins the size down.
    let leaves = sample_leaves(4, 4);
    let proof = inclusion_path_in_memory(&leaves[..3], 0).unwrap();
    let root3 = mth(&leaves[..3]);
    assert_eq!(verify_inclusion(&leaves[0], 0, 3, &proof, &root3), Ok(()));
    assert_eq!(verify_inclusion(&leaves[0], 0, 4, &proof, &root3), Ok(()));
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 4, &proof, &mth(&leaves)),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn consistency_proofs_for_every_pair_of_sizes_match_the_rfc_and_verify() {
    let store = full_store(5);
    let leaves = &store.leaves;
    let roots: Vec<Hash> = (0..=MAX).map(|n| ref_mth(&leaves[..n])).collect();
    for n in 1..=MAX {
        let d = &leaves[..n];
        for m in 0..=n {
            let (old, new) = (m as u64, n as u64);
            let expected = ref_proof(m, d);
            let mut asked = Vec::new();
            let proof = consistency_proof(old, new, store.source(&mut asked)).unwrap();
            assert_eq!(proof, expected, "PROOF({m}, D[{n}]) from stored nodes");
            assert_eq!(asked, consistency_proof_nodes(old, new).unwrap());
            assert!(asked.iter().all(|id| id.leaves().end <= new));
            assert_eq!(consistency_proof_in_memory(d, old).unwrap(), expected);
            verify_consistency(old, new, &roots[m], &roots[n], &proof)
                .unwrap_or_else(|e| panic!("PROOF({m}, D[{n}]) refused: {e}"));
        }
    }
}

#[test]
fn corrupted_consistency_proofs_are_refused() {
    let leaves = sample_leaves(6, MAX);
    let roots: Vec<Hash> = (0..=MAX).map(|n| ref_mth(&leaves[..n])).collect();
    let verify = |m: usize, n: usize, proof: &[Hash]| {
        verify_consistency(m as u64, n as u64, &roots[m], &roots[n], proof)
    };
    for n in 1..=MAX {
        for m in 0..=n {
            let proof = consistency_proof_in_memory(&leaves[..n], m as u64).unwrap();
            let len = proof.len();
            let wrong_length = |got| ProofError::WrongProofLength { expected: len, got };

            for e in 0..len {
                for byte in [0, (m + n + e) % 32, 31] {
                    let result = verify(m, n, &flip(&proof, e, byte));
                    assert!(
                        matches!(
                            result,
                            Err(ProofError::OldRootMismatch | ProofError::NewRootMismatch)
                        ),
                        "PROOF({m}, D[{n}]) with byte {byte} of hash {e} flipped: {result:?}"
                    );
                }
                let mut dropped = proof.clone();
                dropped.remove(e);
                assert_eq!(verify(m, n, &dropped), Err(wrong_length(len - 1)));
                if e + 1 < len && proof[e] != proof[e + 1] {
                    let mut swapped = proof.clone();
                    swapped.swap(e, e + 1);
                    assert!(verify(m, n, &swapped).is_err(), "swapped {e}");
                }
            }
            let mut longer = proof.clone();
            longer.push(roots[m]);
            assert_eq!(verify(m, n, &longer), Err(wrong_length(len + 1)));
            longer.rotate_right(1);
            assert_eq!(verify(m, n, &longer), Err(wrong_length(len + 1)));

            // Wrong roots: swapped, or another tree's.
            let (old, new) = (m as u64, n as u64);
            if roots[m] != roots[n] {
                assert!(verify_consistency(old, new, &roots[n], &roots[m], &proof).is_err());
            }
            let other = leaf_hash(b"another tree");
            assert!(verify_consistency(old, new, &other, &roots[n], &proof).is_err());
            if m == 0 {
                // Nothing about the new tree is claimed: every tree extends the empty one.
                continue;
            }
            assert!(verify_consistency(old, new, &roots[m], &other, &proof).is_err());
            if m == n {
                // An empty proof between equal trees says nothing about other sizes.
                continue;
            }

            // Any other pair of sizes, with those trees' roots.
            for wrong in (0..=n).filter(|&s| s != m) {
                assert!(
                    verify_consistency(wrong as u64, new, &roots[wrong], &roots[n], &proof)
                        .is_err(),
                    "PROOF({m}, D[{n}]) passed as from size {wrong}"
                );
            }
            for wrong in (m..=MAX).filter(|&s| s != n) {
                assert!(
                    verify_consistency(old, wrong as u64, &roots[m], &roots[wrong], &proof)
                        .is_err(),
                    "PROOF({m}, D[{n}]) passed as to size {wrong}"
                );
            }
        }
    }
}

#[test]
fn sizes_out_of_order_and_the_empty_tree() {
    let leaves = sample_leaves(7, 5);
    let empty = ref_mth(&[]);
    let root5 = mth(&leaves);
    assert_eq!(
        consistency_proof_in_memory(&leaves, 6),
        Err(TreeError::SizesOutOfOrder {
            old_size: 6,
            new_size: 5
        })
    );
    assert_eq!(
        verify_consistency(6, 5, &root5, &root5, &[]),
        Err(ProofError::SizesOutOfOrder {
            old_size: 6,
            new_size: 5
        })
    );
    // Every tree extends the empty one, whose root must be MTH({}).
    assert_eq!(verify_consistency(0, 5, &empty, &root5, &[]), Ok(()));
    assert_eq!(verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
    assert_eq!(
        verify_consistency(0, 5, &root5, &root5, &[]),
        Err(ProofError::OldRootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 5, &empty, &root5, &[empty]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    // Equal sizes need equal roots and no proof.
    assert_eq!(
        verify_consistency(5, 5, &root5, &empty, &[]),
        Err(ProofError::NewRootMismatch)
    );
    assert_eq!(
        verify_consistency(5, 5, &root5, &root5, &[root5]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    // No leaf is in the empty tree.
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 0, &[], &empty),
        Err(ProofError::IndexOutOfRange {
            index: 0,
            tree_size: 0
        })
    );
    assert_eq!(
        inclusion_path_in_memory(&[], 0),
        Err(TreeError::IndexOutOfRange {
            index: 0,
            tree_size: 0
        })
    );
}

// --- Trees near 2^64 leaves -------------------------------------------------------------------

/// A consistent tree of any size without its leaves: a subtree that straddles one of
/// `boundaries` is hashed from its children; any other gets a made-up hash. Proofs and roots
/// for those boundaries only ever look inside straddling subtrees, so they all agree.
fn virtual_node(boundaries: &[u64], id: NodeId) -> Hash {
    let Range { start, end } = id.leaves();
    if id.level() > 0 && boundaries.iter().any(|&b| start < b && b < end) {
        let (level, index) = (id.level() - 1, id.index() * 2);
        let left = NodeId::new(level, index).unwrap();
        let right = NodeId::new(level, index + 1).unwrap();
        node_hash(
            &virtual_node(boundaries, left),
            &virtual_node(boundaries, right),
        )
    } else {
        let mut made_up = id.level().to_be_bytes().to_vec();
        made_up.extend(id.index().to_be_bytes());
        leaf_hash(&made_up)
    }
}

const HUGE: u64 = u64::MAX;
const HALF: u64 = 1 << 63;

#[test]
fn proofs_in_trees_of_nearly_2_pow_64_leaves_verify() {
    for (index, size) in [
        (0, HUGE),
        (HUGE - 1, HUGE),
        (HALF, HUGE),
        (HALF - 1, HUGE),
        (HALF - 1, HALF),
        (12_345_678_901_234, HUGE - 7),
    ] {
        let nodes = |id| Ok::<_, TreeError>(virtual_node(&[index, index + 1], id));
        let proof = inclusion_path(index, size, nodes).unwrap();
        assert!(proof.len() <= 64 + 63, "{index} of {size}");
        let leaf = virtual_node(&[], NodeId::new(0, index).unwrap());
        let root = root(size, nodes).unwrap();
        assert_eq!(
            verify_inclusion(&leaf, index, size, &proof, &root),
            Ok(()),
            "leaf {index} of {size}"
        );
        assert_eq!(
            verify_inclusion(&leaf, index, size, &flip(&proof, 0, 0), &root),
            Err(ProofError::RootMismatch)
        );
    }
    for (old, new) in [
        (1, HUGE),
        (3, HUGE),
        (HUGE - 1, HUGE),
        (HALF, HUGE),
        (HALF - 1, HALF + 1),
        (HALF + 1, HUGE - 1),
    ] {
        let nodes = |id| Ok::<_, TreeError>(virtual_node(&[old], id));
        let proof = consistency_proof(old, new, nodes).unwrap();
        let (old_root, new_root) = (root(old, nodes).unwrap(), root(new, nodes).unwrap());
        assert_eq!(
            verify_consistency(old, new, &old_root, &new_root, &proof),
            Ok(()),
            "{old} to {new}"
        );
        assert!(verify_consistency(old, new, &new_root, &old_root, &proof).is_err());
    }
    assert_eq!(root_nodes(HUGE).len(), 64);
}

#[test]
fn garbage_proofs_at_extreme_sizes_are_refused_without_panicking() {
    let sizes = [0, 1, 2, 3, HALF - 1, HALF, HALF + 1, HUGE - 1, HUGE];
    let junk = [[0xA5; 32]; 130];
    let (leaf, root) = ([1; 32], [2; 32]);
    for &size in &sizes {
        for &index in &sizes {
            for len in [0, 1, 2, 63, 64, 65, 127, 128, 130] {
                let proof = &junk[..len];
                assert!(verify_inclusion(&leaf, index, size, proof, &root).is_err());
                assert!(verify_consistency(index, size, &leaf, &root, proof).is_err());
            }
        }
    }
}

#[test]
#[should_panic(expected = "at most u64::MAX leaves")]
fn a_full_frontier_refuses_another_leaf() {
    let mut full = Frontier::from_parts(HUGE, vec![[0; 32]; 64]).unwrap();
    full.push([1; 32]);
}
