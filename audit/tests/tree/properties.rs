//! Every tree of 1 to 64 leaves, every leaf and every older size: the proofs equal those of a
//! literal recursive reading of RFC 9162 §2.1 (written here independently of the crate, down to
//! its own SHA-256 calls), they verify, and every corruption tried is refused. Then trees near
//! 2^64 leaves, where the index arithmetic would overflow if it could.

use std::collections::HashMap;
use std::ops::Range;

use consent_ledger_audit::tree::{
    consistency_proof, consistency_proof_in_memory, consistency_proof_nodes, inclusion_path,
    inclusion_path_above, inclusion_path_above_nodes, inclusion_path_in_memory,
    inclusion_path_nodes, leaf_hash, mth, node_hash, path_block, root, root_nodes,
    verify_consistency, verify_inclusion, Frontier, Hash, InclusionVerifier, MemoryTree, NodeId,
    ProofError, TreeError,
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
    let mut appended = Frontier::new();
    for (s, &leaf) in leaves.iter().enumerate() {
        let completed = store.push(leaf);
        appended.append(leaf);
        assert_eq!(
            appended,
            store.frontier,
            "append equals push, size {}",
            s + 1
        );
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
fn a_path_is_its_block_path_then_the_path_above_the_block() {
    let store = full_store(7);
    let leaves = &store.leaves;
    for n in 1..=MAX {
        let size = n as u64;
        let d = &leaves[..n];
        assert_eq!(
            MemoryTree::new(d.to_vec()).root(),
            ref_mth(d),
            "root of {n}"
        );
        for level in 0..8 {
            for m in 0..n {
                let index = m as u64;
                let block = path_block(index, size, level).unwrap();
                assert!(block.contains(&index) && block.end <= size);
                assert_eq!(block.start % (1 << level), 0);
                let (start, end) = (block.start as usize, block.end as usize);
                let inside = MemoryTree::new(d[start..end].to_vec())
                    .inclusion_path(index - block.start)
                    .unwrap();
                let mut asked = Vec::new();
                let above =
                    inclusion_path_above(block.clone(), size, store.source(&mut asked)).unwrap();
                assert_eq!(
                    asked,
                    inclusion_path_above_nodes(block.clone(), size).unwrap()
                );
                assert!(asked.iter().all(|id| id.leaves().end <= size));
                let joined: Vec<Hash> = inside.into_iter().chain(above).collect();
                assert_eq!(
                    joined,
                    ref_path(m, d),
                    "PATH({m}, D[{n}]) via 2^{level} blocks"
                );
            }
        }
        // The whole tree is a block every path passes through, with nothing above it.
        assert_eq!(
            inclusion_path_above_nodes(0..size, size).unwrap(),
            Vec::<NodeId>::new()
        );
        assert_eq!(
            MemoryTree::new(d.to_vec()).inclusion_path(size),
            Err(TreeError::IndexOutOfRange {
                index: size,
                tree_size: size
            })
        );
    }
    assert_eq!(MemoryTree::new(Vec::new()).root(), ref_mth(&[]));
}

#[test]
fn the_remembering_verifier_answers_as_verify_inclusion_does() {
    let leaves = sample_leaves(4, MAX);
    for n in 1..=MAX {
        let d = &leaves[..n];
        let size = n as u64;
        let root = ref_mth(d);
        let proofs: Vec<Vec<Hash>> = (0..n).map(|m| ref_path(m, d)).collect();
        // In order (as a bundle lists them), backwards, and by a stride.
        for order in [
            (0..n).collect::<Vec<_>>(),
            (0..n).rev().collect(),
            (0..n).map(|i| (i * 7) % n).collect(),
        ] {
            let mut verifier = InclusionVerifier::new(size, root);
            for &m in &order {
                assert_eq!(
                    verifier.verify(&d[m], m as u64, &proofs[m]),
                    Ok(()),
                    "PATH({m}, D[{n}])"
                );
            }
        }
        // After each accepted neighbour, every corruption of the next proof is refused with the
        // error verify_inclusion gives: a flipped byte in any element (below, at or above where
        // it would join), another leaf, a dropped or an extra element.
        for m in 1..n {
            let check = |leaf: &Hash, index: u64, proof: &[Hash]| {
                let mut verifier = InclusionVerifier::new(size, root);
                verifier
                    .verify(&d[m - 1], m as u64 - 1, &proofs[m - 1])
                    .unwrap();
                assert_eq!(
                    verifier.verify(leaf, index, proof),
                    verify_inclusion(leaf, index, size, proof, &root),
                    "after PATH({}, D[{n}]): leaf {index}",
                    m - 1
                );
                assert!(verify_inclusion(leaf, index, size, proof, &root).is_err());
            };
            let proof = &proofs[m];
            for e in 0..proof.len() {
                check(&d[m], m as u64, &flip(proof, e, e % 32));
                let mut dropped = proof.clone();
                dropped.remove(e);
                check(&d[m], m as u64, &dropped);
            }
            check(&leaf_hash(b"not this leaf"), m as u64, proof);
            check(&d[m - 1], m as u64, proof);
            let mut longer = proof.clone();
            longer.push(root);
            check(&d[m], m as u64, &longer);
            if m + 1 < n {
                // The proof of m presented for its neighbour's index.
                check(&d[m], m as u64 + 1, proof);
            }
        }
    }
}

#[test]
fn runs_no_path_passes_through_whole_are_refused() {
    // 0..3 of 4 leaves straddles the split at 2, and 1..3 too; 2..5 runs past the tree; 3..3 is
    // empty; 5..7 of 7 straddles the split of 4..7 at 6.
    for (start, end, size) in [(0, 3, 4), (1, 3, 4), (2, 5, 4), (3, 3, 4), (5, 7, 7)] {
        assert_eq!(
            inclusion_path_above_nodes(start..end, size),
            Err(TreeError::NotOnPath {
                start,
                end,
                tree_size: size
            }),
            "{start}..{end} of {size}"
        );
    }
    assert_eq!(
        path_block(9, 9, 2),
        Err(TreeError::IndexOutOfRange {
            index: 9,
            tree_size: 9
        })
    );
    // Blocks near 2^64 leaves: no overflow.
    assert_eq!(
        path_block(u64::MAX - 1, u64::MAX, 4),
        Ok((u64::MAX - 15)..u64::MAX)
    );
    assert_eq!(path_block(5, u64::MAX, 64), Ok(0..u64::MAX));
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
