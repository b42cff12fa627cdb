//! Known-answer vectors for RFC 9162 §2.1 trees with SHA-256, copied from
//! github.com/transparency-dev/merkle (the Go library behind Trillian and Sigsum tooling; the
//! same vectors ct-merkle's `tests/known_answer.rs` uses). Files and the commits they were read
//! at:
//! - `testonly/constants.go` @ 582a6ad190b6848f1d26f8bf08ddef29955d9db1: `LeafInputs`,
//!   `NodeHashes`, `RootHashes`, `CompactTrees`, `EmptyRootHash`;
//! - `testonly/reference_test.go` @ 141d627eab770a7e9a2514f46a8b6338e6d90874:
//!   `TestRefInclusionProof`, `TestRefConsistencyProof` (0-based leaf indices);
//! - `proof/verify_test.go` @ 02194e9afb6c1d95b5381350007963aa70fff472: `inclusionProofs`
//!   (whose `leaf` field counts from 1), `consistencyProofs`, `roots`;
//! - `proof/proof_test.go` @ 02a3e2029520f515596d5238c54fb0ac9e19bff4: `TestInclusion`,
//!   `TestConsistency`, which name proof elements by node id; here they are resolved against
//!   `NodeHashes`, for every case that fits the 8-leaf tree;
//! - `rfc6962/rfc6962_test.go` @ 78493b07ef9b552e3379abf9e23d4da26fbe797c: `TestRFC6962Hasher`.

use std::collections::HashMap;

use consent_ledger_audit::tree::{
    consistency_proof, consistency_proof_in_memory, empty_root, inclusion_path,
    inclusion_path_in_memory, leaf_hash, mth, root, verify_consistency, verify_inclusion, Frontier,
    Hash, NodeId, TreeError,
};

/// `LeafInputs()`.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `NodeHashes()`: every perfect subtree of the 8-leaf tree, by level then index.
const NODE_HASHES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// `RootHashes()`: the root of the first n leaves, n = 0..=8.
const ROOT_HASHES: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `CompactTrees()`: the frontier after n leaves, as (level, index) into `NODE_HASHES`.
const COMPACT_TREES: [&[(usize, usize)]; 9] = [
    &[],
    &[(0, 0)],
    &[(1, 0)],
    &[(1, 0), (0, 2)],
    &[(2, 0)],
    &[(2, 0), (0, 4)],
    &[(2, 0), (1, 2)],
    &[(2, 0), (1, 2), (0, 6)],
    &[(3, 0)],
];

/// `TestRefInclusionProof`: (0-based index, size, proof). The `inclusionProofs` of
/// `proof/verify_test.go` are the same proofs once its 1-based `leaf` is made an index.
const INCLUSION: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// `TestRefConsistencyProof` (old size, new size, proof) plus `consistencyProofs` of
/// `proof/verify_test.go` (which adds (6,7)).
const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// A proof element named as in `proof/proof_test.go`: one node of `NODE_HASHES`, or a "rehash"
/// of two — the node hash of a left and a right node, standing in for a subtree that is not
/// perfect.
#[derive(Clone, Copy)]
enum El {
    N(usize, usize),
    Re((usize, usize), (usize, usize)),
}
use El::{Re, N};

/// The missing parent of leaves 4..7 in trees of size 7: `l = hash(i, j)` in that file.
const L7: El = Re((1, 2), (0, 6));

/// `TestInclusion`: (size, index, proof).
const INCLUSION_BY_NODE: &[(u64, u64, &[El])] = &[
    (1, 0, &[]),
    (2, 0, &[N(0, 1)]),
    (2, 1, &[N(0, 0)]),
    (3, 1, &[N(0, 0), N(0, 2)]),
    (7, 0, &[N(0, 1), N(1, 1), L7]),
    (7, 1, &[N(0, 0), N(1, 1), L7]),
    (7, 2, &[N(0, 3), N(1, 0), L7]),
    (7, 3, &[N(0, 2), N(1, 0), L7]),
    (7, 4, &[N(0, 5), N(0, 6), N(2, 0)]),
    (7, 5, &[N(0, 4), N(0, 6), N(2, 0)]),
    (7, 6, &[N(1, 2), N(2, 0)]),
    (4, 2, &[N(0, 3), N(1, 0)]),
    (5, 3, &[N(0, 2), N(1, 0), N(0, 4)]),
    (6, 3, &[N(0, 2), N(1, 0), N(1, 2)]),
    (6, 4, &[N(0, 5), N(2, 0)]),
];

/// `TestConsistency`: (old size, new size, proof).
const CONSISTENCY_BY_NODE: &[(u64, u64, &[El])] = &[
    (1, 2, &[N(0, 1)]),
    (1, 4, &[N(0, 1), N(1, 1)]),
    (1, 6, &[N(0, 1), N(1, 1), N(1, 2)]),
    (2, 3, &[N(0, 2)]),
    (2, 8, &[N(1, 1), N(2, 1)]),
    (3, 7, &[N(0, 2), N(0, 3), N(1, 0), L7]),
    (4, 7, &[L7]),
    (5, 7, &[N(0, 4), N(0, 5), N(0, 6), N(2, 0)]),
    (6, 7, &[N(1, 2), N(0, 6), N(2, 0)]),
    (7, 8, &[N(0, 6), N(0, 7), N(1, 2), N(2, 0)]),
    (1, 1, &[]),
    (2, 2, &[]),
    (3, 3, &[]),
    (4, 4, &[]),
    (5, 5, &[]),
    (7, 7, &[]),
    (8, 8, &[]),
    (2, 4, &[N(1, 1)]),
    (3, 5, &[N(0, 2), N(0, 3), N(1, 0), N(0, 4)]),
    (3, 6, &[N(0, 2), N(0, 3), N(1, 0), N(1, 2)]),
    (4, 6, &[N(1, 2)]),
    (1, 7, &[N(0, 1), N(1, 1), L7]),
];

fn h(hex: &str) -> Hash {
    hex::decode(hex)
        .expect("vector is hex")
        .try_into()
        .expect("vector is 32 bytes")
}

fn hs(hexes: &[&str]) -> Vec<Hash> {
    hexes.iter().map(|x| h(x)).collect()
}

fn node(level: usize, index: usize) -> Hash {
    h(NODE_HASHES[level][index])
}

fn resolve(elements: &[El]) -> Vec<Hash> {
    elements
        .iter()
        .map(|el| match *el {
            N(level, index) => node(level, index),
            Re((ll, li), (rl, ri)) => {
                consent_ledger_audit::tree::node_hash(&node(ll, li), &node(rl, ri))
            }
        })
        .collect()
}

fn leaves() -> Vec<Hash> {
    LEAF_INPUTS
        .iter()
        .map(|x| leaf_hash(&hex::decode(x).unwrap()))
        .collect()
}

/// A node source answering from the published `NODE_HASHES`, as a store answers from its table.
fn published_nodes(id: NodeId) -> Result<Hash, TreeError> {
    Ok(node(id.level() as usize, id.index() as usize))
}

#[test]
fn the_hashes_match_rfc6962_test_go() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
    // Its "RFC6962 Node" vector hashes two 4-byte children; `node_hash` takes 32-byte hashes
    // only, so that vector cannot be expressed here. Every node of NODE_HASHES checks it instead.
}

#[test]
fn every_perfect_subtree_of_the_8_leaf_tree_matches() {
    let leaves = leaves();
    for (level, row) in NODE_HASHES.iter().enumerate() {
        for (index, expected) in row.iter().enumerate() {
            let width = 1 << level;
            assert_eq!(
                mth(&leaves[index * width..(index + 1) * width]),
                h(expected),
                "level {level} index {index}"
            );
        }
    }
}

#[test]
fn the_roots_of_sizes_0_to_8_match() {
    let leaves = leaves();
    for (size, expected) in ROOT_HASHES.iter().enumerate() {
        assert_eq!(mth(&leaves[..size]), h(expected), "mth, size {size}");
        assert_eq!(
            root(size as u64, published_nodes).unwrap(),
            h(expected),
            "root from stored nodes, size {size}"
        );
    }
    assert_eq!(
        h(ROOT_HASHES[8]),
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
    );
}

#[test]
fn the_frontier_matches_compact_trees_and_reports_every_node_once() {
    let mut frontier = Frontier::new();
    let mut reported = Vec::new();
    for (size, leaf) in leaves().into_iter().enumerate() {
        assert_eq!(frontier.root(), h(ROOT_HASHES[size]));
        reported.extend(frontier.push(leaf));
        let expected: Vec<Hash> = COMPACT_TREES[size + 1]
            .iter()
            .map(|&(level, index)| node(level, index))
            .collect();
        assert_eq!(
            frontier.hashes(),
            expected,
            "frontier after {} leaves",
            size + 1
        );
        assert_eq!(frontier.root(), h(ROOT_HASHES[size + 1]));
    }
    // All 15 nodes of NODE_HASHES, each reported exactly once, with the published hash.
    let by_id: HashMap<NodeId, Hash> = reported.iter().copied().collect();
    assert_eq!(reported.len(), 15);
    assert_eq!(by_id.len(), 15);
    for (id, hash) in by_id {
        assert_eq!(
            hash,
            node(id.level() as usize, id.index() as usize),
            "{id:?}"
        );
    }
}

#[test]
fn inclusion_proofs_match_and_verify() {
    let leaves = leaves();
    for &(index, size, proof) in INCLUSION {
        let expected = hs(proof);
        let n = size as usize;
        assert_eq!(
            inclusion_path_in_memory(&leaves[..n], index).unwrap(),
            expected,
            "PATH({index}, D[{size}]) in memory"
        );
        assert_eq!(
            inclusion_path(index, size, published_nodes).unwrap(),
            expected,
            "PATH({index}, D[{size}]) from stored nodes"
        );
        verify_inclusion(
            &leaves[index as usize],
            index,
            size,
            &expected,
            &h(ROOT_HASHES[n]),
        )
        .unwrap_or_else(|e| panic!("PATH({index}, D[{size}]) refused: {e}"));
    }
}

#[test]
fn consistency_proofs_match_and_verify() {
    let leaves = leaves();
    for &(old, new, proof) in CONSISTENCY {
        let expected = hs(proof);
        assert_eq!(
            consistency_proof_in_memory(&leaves[..new as usize], old).unwrap(),
            expected,
            "PROOF({old}, D[{new}]) in memory"
        );
        assert_eq!(
            consistency_proof(old, new, published_nodes).unwrap(),
            expected,
            "PROOF({old}, D[{new}]) from stored nodes"
        );
        verify_consistency(
            old,
            new,
            &h(ROOT_HASHES[old as usize]),
            &h(ROOT_HASHES[new as usize]),
            &expected,
        )
        .unwrap_or_else(|e| panic!("PROOF({old}, D[{new}]) refused: {e}"));
    }
}

#[test]
fn inclusion_proofs_by_node_id_match() {
    let leaves = leaves();
    for &(size, index, elements) in INCLUSION_BY_NODE {
        let expected = resolve(elements);
        assert_eq!(
            inclusion_path(index, size, published_nodes).unwrap(),
            expected,
            "PATH({index}, D[{size}])"
        );
        let root = h(ROOT_HASHES[size as usize]);
        verify_inclusion(&leaves[index as usize], index, size, &expected, &root).unwrap();
    }
    // Its error cases: (size, index) with index >= size.
    for (size, index) in [(0, 0), (0, 1), (1, 2), (0, 3), (7, 8)] {
        assert_eq!(
            inclusion_path(index, size, published_nodes),
            Err(TreeError::IndexOutOfRange {
                index,
                tree_size: size
            })
        );
    }
}

#[test]
fn consistency_proofs_by_node_id_match() {
    for &(old, new, elements) in CONSISTENCY_BY_NODE {
        let expected = resolve(elements);
        assert_eq!(
            consistency_proof(old, new, published_nodes).unwrap(),
            expected,
            "PROOF({old}, D[{new}])"
        );
        let (old_root, new_root) = (h(ROOT_HASHES[old as usize]), h(ROOT_HASHES[new as usize]));
        verify_consistency(old, new, &old_root, &new_root, &expected).unwrap();
    }
    for (old, new) in [(5, 0), (9, 8)] {
        assert_eq!(
            consistency_proof(old, new, published_nodes),
            Err(TreeError::SizesOutOfOrder {
                old_size: old,
                new_size: new
            })
        );
    }
}
