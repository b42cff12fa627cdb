//! The Merkle tree of the verifiable log, exactly as RFC 9162 §2.1 defines it (SPEC §6): the
//! hashes, the Merkle Tree Hash, inclusion and consistency proofs (making and checking them),
//! and the [`Frontier`] that appends leaves. Pure math: no I/O, no clock, no async.
//!
//! RFC names are kept: `D[n]` is the list of the first `n` leaves, `MTH` the Merkle Tree Hash,
//! `PATH(m, D[n])` the inclusion proof and `PROOF(m, D[n])` the consistency proof.
//!
//! # How a store answers proofs
//! Every proof element and every root is the MTH of a run of leaves that tiles into at most 64
//! *perfect* subtrees — 2^level leaves starting at a multiple of 2^level, named by [`NodeId`].
//! [`Frontier::push`] reports each perfect subtree the moment it is complete, so a store that
//! keeps those hashes can answer any proof with O(log n) lookups:
//! - from a synchronous source, pass a closure `FnMut(NodeId) -> Result<Hash, E>` to
//!   [`inclusion_path`], [`consistency_proof`] or [`root`];
//! - from an asynchronous one (a database), list the ids first with [`inclusion_path_nodes`],
//!   [`consistency_proof_nodes`] or [`root_nodes`], fetch them in one query, then call the same
//!   function with a closure that looks them up. It asks for exactly those ids, in that order.
//!
//! Index math is kept apart from hashing (as ct-merkle's `src/inclusion.rs` does) so that the
//! store never needs to know the tree's shape.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a root.
pub type Hash = [u8; 32];

/// Domain separator of a leaf hash: `MTH({d(0)}) = HASH(0x00 || d(0))`, RFC 9162 §2.1.1.
pub const LEAF_HASH_PREFIX: u8 = 0x00;

/// Domain separator of an interior node: `HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`,
/// RFC 9162 §2.1.1. Distinct from [`LEAF_HASH_PREFIX`] so that no leaf can pose as a node.
pub const NODE_HASH_PREFIX: u8 = 0x01;

/// The hash of one leaf, `MTH({d(0)}) = SHA-256(0x00 || d(0))` (RFC 9162 §2.1.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_HASH_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node, `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_HASH_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `MTH({}) = SHA-256()` (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Compares two hashes in time that does not depend on where they first differ: the bytes are
/// folded by XOR with no early exit, and the result passes through `black_box` so the optimiser
/// cannot turn the fold back into a short-circuiting comparison.
pub fn hashes_equal(a: &Hash, b: &Hash) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The Merkle Tree Hash `MTH(D[n])` over leaf *hashes* (RFC 9162 §2.1.1): a lone leaf is its own
/// hash; otherwise split at `k`, the largest power of two smaller than `n`, and hash
/// `MTH(D[0:k])` with `MTH(D[k:n])`. Hashes every node once, O(n): for whole trees in memory.
/// A store uses [`root`] or [`Frontier::root`] instead.
pub fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let (left, right) = leaves.split_at(1 << (leaves.len() - 1).ilog2());
            node_hash(&mth(left), &mth(right))
        }
    }
}

/// `k` of RFC 9162 §2.1.1: the largest power of two smaller than `n`, for `n >= 2`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// A perfect subtree: the `2^level` leaves `[index·2^level, (index+1)·2^level)`. At level 0 it
/// is one leaf, and its hash is that leaf's hash.
///
/// Every id this module hands out lies inside some tree of at most `u64::MAX` leaves, which is
/// what [`NodeId::new`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    // INVARIANT: (index + 1) · 2^level <= u64::MAX, so `leaves()` cannot overflow.
    level: u32,
    index: u64,
}

impl NodeId {
    /// The subtree at `level` and `index`, if its leaves end at or before `u64::MAX` (the largest
    /// tree size there can be).
    pub fn new(level: u32, index: u64) -> Option<Self> {
        let width = 1u64.checked_shl(level)?;
        index.checked_add(1)?.checked_mul(width)?;
        Some(Self { level, index })
    }

    /// Height above the leaves: the subtree holds `2^level` leaves.
    pub fn level(self) -> u32 {
        self.level
    }

    /// Position among the subtrees of the same level, counted from the left.
    pub fn index(self) -> u64 {
        self.index
    }

    /// The leaf positions the subtree covers.
    pub fn leaves(self) -> Range<u64> {
        // Cannot overflow: see the INVARIANT on the fields.
        let start = self.index << self.level;
        start..start + (1 << self.level)
    }
}

/// The perfect subtrees that tile `leaves`, left to right, each as large as its start's alignment
/// and the remaining length allow. For the runs RFC 9162 §2.1 hashes (those starting at a
/// multiple of a power of two at least their length) this is the binary decomposition of the
/// length, largest first — the same split MTH makes.
fn perfect_subtrees(leaves: Range<u64>) -> impl Iterator<Item = NodeId> {
    let Range { mut start, end } = leaves;
    std::iter::from_fn(move || {
        if start >= end {
            return None;
        }
        // trailing_zeros(0) is 64, so at 0 only the remaining length bounds the level.
        let level = start.trailing_zeros().min((end - start).ilog2());
        let id = NodeId {
            level,
            index: start >> level,
        };
        start += 1 << level;
        Some(id)
    })
}

/// Folds perfect-subtree hashes, left to right, into the MTH of the run they tile: MTH splits
/// off the largest perfect subtree on the left first, so `MTH = node(P1, node(P2, … Pk))`.
fn fold_subtrees(hashes: &[Hash]) -> Hash {
    hashes
        .iter()
        .rev()
        .copied()
        .reduce(|right, left| node_hash(&left, &right))
        .unwrap_or_else(empty_root)
}

/// `MTH(D[leaves])`, with its perfect subtrees asked of `node`.
fn run_hash<E>(
    leaves: Range<u64>,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Hash, E> {
    let hashes = perfect_subtrees(leaves)
        .map(&mut *node)
        .collect::<Result<Vec<_>, E>>()?;
    Ok(fold_subtrees(&hashes))
}

/// Asking for a proof the tree cannot give: the caller's mistake, never a bad proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// Inclusion was asked for a leaf the tree does not hold yet.
    #[error("leaf index {index} is outside a tree of {tree_size} leaves; ask for a later tree")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    /// Consistency was asked from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}; swap them")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    /// The run of leaves is not a subtree that inclusion proofs in this tree pass through.
    #[error("leaves {start}..{end} are not a subtree every inclusion path in a tree of {tree_size} leaves passes through")]
    NotOnPath {
        start: u64,
        end: u64,
        tree_size: u64,
    },
    /// A frontier needs one hash per set bit of its size.
    #[error("a frontier of {size} leaves holds {expected} hashes (one per set bit), not {got}")]
    FrontierLength {
        size: u64,
        expected: usize,
        got: usize,
    },
}

/// Walks PATH(m, D[n]) (RFC 9162 §2.1.3.1) from the root down, handing `visit` the leaf run of
/// each element: `MTH(D[k:n])` when `m` is on the left of the split, `MTH(D[0:k])` when on the
/// right. The RFC lists them leaf first, so this visits them in reverse order.
fn walk_inclusion(index: u64, tree_size: u64, mut visit: impl FnMut(Range<u64>)) {
    let (mut lo, mut hi) = (0, tree_size);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            visit(mid..hi);
            hi = mid;
        } else {
            visit(lo..mid);
            lo = mid;
        }
    }
}

/// The leaf runs of PATH(m, D[n]), leaf first.
fn inclusion_runs(index: u64, tree_size: u64) -> Result<Vec<Range<u64>>, TreeError> {
    if index >= tree_size {
        return Err(TreeError::IndexOutOfRange { index, tree_size });
    }
    let mut runs = Vec::new();
    walk_inclusion(index, tree_size, |run| runs.push(run));
    runs.reverse();
    Ok(runs)
}

/// Walks PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (RFC 9162 §2.1.4.1) for `0 < m < n` from the
/// root down, handing `visit` each element's leaf run in reverse of the RFC's order:
/// - `m <= k`: SUBPROOF(m, D[0:k], b) : MTH(D[k:n]);
/// - `m > k`: SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]);
/// - and at `m = n`, `{MTH(D[m])}` if `b` is false (the old root is not known to the verifier
///   there), or nothing if it is true.
fn walk_consistency(old_size: u64, new_size: u64, mut visit: impl FnMut(Range<u64>)) {
    let (mut lo, mut hi) = (0, new_size);
    // SUBPROOF's `b`: whether [lo, hi) is still the whole old tree the verifier holds a root for.
    let mut old_root_known = true;
    // lo < old_size <= hi holds throughout, so hi - lo >= 2 whenever the loop runs.
    while old_size != hi {
        let mid = lo + split(hi - lo);
        if old_size <= mid {
            visit(mid..hi);
            hi = mid;
        } else {
            visit(lo..mid);
            lo = mid;
            old_root_known = false;
        }
    }
    if !old_root_known {
        visit(lo..hi);
    }
}

/// The leaf runs of PROOF(m, D[n]), in the RFC's order. Empty when `m = 0` or `m = n`: RFC 9162
/// defines PROOF only for `0 < m < n`, and those trees need no proof.
fn consistency_runs(old_size: u64, new_size: u64) -> Result<Vec<Range<u64>>, TreeError> {
    if old_size > new_size {
        return Err(TreeError::SizesOutOfOrder { old_size, new_size });
    }
    let mut runs = Vec::new();
    if old_size != 0 && old_size != new_size {
        walk_consistency(old_size, new_size, |run| runs.push(run));
        runs.reverse();
    }
    Ok(runs)
}

/// The leaf runs of the part of PATH(m, D[n]) that lies above `run`, leaf side first: the same
/// for every `m` in `run`, provided the walk of §2.1.3.1 reaches `run` exactly. Fails with
/// [`TreeError::NotOnPath`] otherwise. [`path_block`] names runs that it always reaches.
fn runs_above(run: Range<u64>, tree_size: u64) -> Result<Vec<Range<u64>>, TreeError> {
    let not_on_path = TreeError::NotOnPath {
        start: run.start,
        end: run.end,
        tree_size,
    };
    if run.start >= run.end || run.end > tree_size {
        return Err(not_on_path);
    }
    let mut runs = Vec::new();
    let (mut lo, mut hi) = (0, tree_size);
    while (lo, hi) != (run.start, run.end) {
        // `run` lies inside [lo, hi) and is smaller, so hi - lo >= 2 here.
        let mid = lo + split(hi - lo);
        if run.end <= mid {
            runs.push(mid..hi);
            hi = mid;
        } else if run.start >= mid {
            runs.push(lo..mid);
            lo = mid;
        } else {
            // The run straddles the split: no inclusion path passes through it whole.
            return Err(not_on_path);
        }
    }
    runs.reverse();
    Ok(runs)
}

/// The block of `2^level` leaves holding leaf `index` in a tree of `tree_size` leaves, cut at the
/// tree's end: `[b, min(b + 2^level, tree_size))` with `b` the multiple of `2^level` at or below
/// `index`. Every inclusion path of a leaf in the block passes through the block whole (a full
/// block is a perfect subtree; the cut last block is where the right edge ends), so
///
/// `PATH(m, D[n]) = PATH(m - b, D[block]) ‖ ABOVE(block, D[n])`
///
/// where the first part is the path inside the block (a [`MemoryTree`] of its leaves gives it)
/// and the second is [`inclusion_path_above`], the same for every leaf of the block. An export
/// of many neighbouring leaves thus reads each block's leaves once instead of a path per leaf.
///
/// Fails with [`TreeError::IndexOutOfRange`] if `index >= tree_size`.
pub fn path_block(index: u64, tree_size: u64, level: u32) -> Result<Range<u64>, TreeError> {
    if index >= tree_size {
        return Err(TreeError::IndexOutOfRange { index, tree_size });
    }
    let width = 1u64.checked_shl(level).unwrap_or(0);
    let start = if width == 0 { 0 } else { index & !(width - 1) };
    let end = if width == 0 {
        tree_size
    } else {
        start.saturating_add(width).min(tree_size)
    };
    Ok(start..end)
}

/// The perfect subtrees that [`inclusion_path_above`] asks its node source for, in order.
pub fn inclusion_path_above_nodes(
    run: Range<u64>,
    tree_size: u64,
) -> Result<Vec<NodeId>, TreeError> {
    Ok(runs_above(run, tree_size)?
        .into_iter()
        .flat_map(perfect_subtrees)
        .collect())
}

/// The elements of PATH(m, D[n]) (RFC 9162 §2.1.3.1) above the leaf run `run`, for any `m` in
/// it, leaf side first, built from the perfect subtrees asked of `node` (exactly
/// [`inclusion_path_above_nodes`], in order). `run` must be one the path passes through whole,
/// such as a [`path_block`]; otherwise this fails with [`TreeError::NotOnPath`].
pub fn inclusion_path_above<E: From<TreeError>>(
    run: Range<u64>,
    tree_size: u64,
    mut node: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    runs_above(run, tree_size)?
        .into_iter()
        .map(|run| run_hash(run, &mut node))
        .collect()
}

/// The perfect subtrees that [`inclusion_path`] asks its node source for, in order.
pub fn inclusion_path_nodes(index: u64, tree_size: u64) -> Result<Vec<NodeId>, TreeError> {
    Ok(inclusion_runs(index, tree_size)?
        .into_iter()
        .flat_map(perfect_subtrees)
        .collect())
}

/// The perfect subtrees that [`consistency_proof`] asks its node source for, in order.
pub fn consistency_proof_nodes(old_size: u64, new_size: u64) -> Result<Vec<NodeId>, TreeError> {
    Ok(consistency_runs(old_size, new_size)?
        .into_iter()
        .flat_map(perfect_subtrees)
        .collect())
}

/// The perfect subtrees that [`root`] asks its node source for, in order: the right edge of a
/// tree of `tree_size` leaves, one per set bit of the size, largest first. These are also the
/// subtrees a [`Frontier`] holds.
pub fn root_nodes(tree_size: u64) -> Vec<NodeId> {
    perfect_subtrees(0..tree_size).collect()
}

/// The inclusion proof `PATH(m, D[n])` of leaf `index` in the tree of the first `tree_size`
/// leaves (RFC 9162 §2.1.3.1), leaf first, with each element built from the perfect subtrees
/// asked of `node` (exactly [`inclusion_path_nodes`], in order).
///
/// Fails with [`TreeError::IndexOutOfRange`] if `index >= tree_size`, and with whatever `node`
/// fails with.
pub fn inclusion_path<E: From<TreeError>>(
    index: u64,
    tree_size: u64,
    mut node: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    inclusion_runs(index, tree_size)?
        .into_iter()
        .map(|run| run_hash(run, &mut node))
        .collect()
}

/// The consistency proof `PROOF(m, D[n])` between the trees of the first `old_size` and
/// `new_size` leaves (RFC 9162 §2.1.4.1), with each element built from the perfect subtrees
/// asked of `node` (exactly [`consistency_proof_nodes`], in order). Empty when `old_size` is 0
/// or equals `new_size`: nothing needs proving then.
///
/// Fails with [`TreeError::SizesOutOfOrder`] if `old_size > new_size`, and with whatever `node`
/// fails with.
pub fn consistency_proof<E: From<TreeError>>(
    old_size: u64,
    new_size: u64,
    mut node: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    consistency_runs(old_size, new_size)?
        .into_iter()
        .map(|run| run_hash(run, &mut node))
        .collect()
}

/// `MTH(D[n])` (RFC 9162 §2.1.1) of the first `tree_size` leaves, from the at most 64 perfect
/// subtrees that tile them (exactly [`root_nodes`], in order).
pub fn root<E>(tree_size: u64, mut node: impl FnMut(NodeId) -> Result<Hash, E>) -> Result<Hash, E> {
    run_hash(0..tree_size, &mut node)
}

/// A node source over leaf hashes held in memory, hashing each subtree afresh.
fn memory_nodes(leaves: &[Hash]) -> impl FnMut(NodeId) -> Result<Hash, TreeError> + '_ {
    move |id| {
        let Range { start, end } = id.leaves();
        // INVARIANT: the proof functions ask only for subtrees inside [0, tree_size), and the
        // callers below pass tree_size <= leaves.len().
        let run = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, end)| leaves.get(start..end))
            .expect("proofs only ask for subtrees inside the tree");
        Ok(mth(run))
    }
}

/// [`inclusion_path`] over a tree held in memory as its leaf hashes (`tree_size` is
/// `leaves.len()`). Rehashes subtrees on every call, O(n): for tests and small trees.
pub fn inclusion_path_in_memory(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, TreeError> {
    inclusion_path(index, leaves.len() as u64, memory_nodes(leaves))
}

/// [`consistency_proof`] from the first `old_size` leaves to all of `leaves`, held in memory.
/// Rehashes subtrees on every call, O(n): for tests and small trees.
pub fn consistency_proof_in_memory(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, TreeError> {
    consistency_proof(old_size, leaves.len() as u64, memory_nodes(leaves))
}

/// A tree held in memory with every perfect subtree hashed once: `2n` hashes to build, then
/// any root, inclusion path or subtree hash of it without hashing again. For a block of an
/// export (see [`path_block`]), where thousands of neighbouring paths share their nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    // INVARIANT: levels[0] holds the leaf hashes, and levels[l][i] is the hash of the perfect
    // subtree NodeId { level: l, index: i } for every such subtree inside the leaves; the last
    // level holds fewer than two hashes.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// The tree of these leaf hashes, in order.
    pub fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() >= 2) {
            let above = below
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The hash of a perfect subtree of the tree, if it lies inside it.
    pub fn node(&self, id: NodeId) -> Option<Hash> {
        let level = self.levels.get(usize::try_from(id.level()).ok()?)?;
        level.get(usize::try_from(id.index()).ok()?).copied()
    }

    fn source(&self) -> impl FnMut(NodeId) -> Result<Hash, TreeError> + '_ {
        move |id| {
            self.node(id).ok_or(TreeError::IndexOutOfRange {
                index: id.leaves().start,
                tree_size: self.size(),
            })
        }
    }

    /// `MTH(D[n])` of the whole tree (RFC 9162 §2.1.1).
    pub fn root(&self) -> Hash {
        root(self.size(), self.source()).unwrap_or_else(|_| empty_root())
    }

    /// PATH(index, D[n]) (RFC 9162 §2.1.3.1) in this tree, leaf first.
    pub fn inclusion_path(&self, index: u64) -> Result<Vec<Hash>, TreeError> {
        inclusion_path(index, self.size(), self.source())
    }
}

/// Why a proof was refused. Proofs come from outside (bundles, proof endpoints), so every way
/// one can be wrong is a variant here, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size, so no such tree holds the leaf.
    #[error("leaf index {index} is outside a tree of {tree_size} leaves")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    /// The "old" tree is larger than the "new" one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}; swap them")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    /// The tree sizes call for a different number of hashes than the proof has.
    #[error("proof has {got} hashes, but these tree sizes need exactly {expected}")]
    WrongProofLength { expected: usize, got: usize },
    /// The inclusion proof leads to a different root than the one given.
    #[error("inclusion proof does not lead to the given root hash")]
    RootMismatch,
    /// The consistency proof does not rebuild the old root (or, from size 0, the old root is not
    /// the empty tree's).
    #[error("consistency proof does not lead to the old root hash")]
    OldRootMismatch,
    /// The consistency proof does not lead to the new root (or, for equal sizes, the roots differ).
    #[error("consistency proof does not lead to the new root hash")]
    NewRootMismatch,
}

/// The number of hashes in PATH(m, D[n]); `index < tree_size`.
fn inclusion_path_len(index: u64, tree_size: u64) -> usize {
    let mut len = 0;
    walk_inclusion(index, tree_size, |_| len += 1);
    len
}

/// The number of hashes in PROOF(m, D[n]); `0 < old_size < new_size`.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let mut len = 0;
    walk_consistency(old_size, new_size, |_| len += 1);
    len
}

/// Checks that `proof` shows the leaf with hash `leaf_hash` at `index` in the tree of
/// `tree_size` leaves whose root is `root`, by the algorithm of RFC 9162 §2.1.3.2, step by step.
///
/// One check is added before the RFC's: the proof must have exactly the length the sizes call
/// for. The RFC's own steps 4a and 5 reject every other length too; checking first only names the
/// fault.
///
/// # Note
/// A proof binds the leaf to the *root*, not to the size: a proof for one size can pass for
/// another with the same root (the proof for leaf 0 of 3 also checks as leaf 0 of 4 against the
/// size-3 root). The size is trusted because the signed checkpoint pairs it with the root.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. If leaf_index >= tree_size, fail.
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_path_len(index, tree_size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // 2. Set fn to leaf_index and sn to tree_size - 1.
    let (mut fn_, mut sn) = (index, tree_size - 1);
    // 3. Set r to hash.
    let mut r = *leaf_hash;
    // 4. For each value p in the inclusion_path array:
    for p in proof {
        // a. If sn is 0, stop and fail.
        if sn == 0 {
            return Err(wrong_length);
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn_ & 1 == 1 || fn_ == sn {
            // i. Set r to HASH(0x01 || p || r).
            r = node_hash(p, &r);
            // ii. If LSB(fn) is not set, right-shift both fn and sn equally until either LSB(fn)
            //     is set or fn is 0.
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            // Otherwise: i. Set r to HASH(0x01 || r || p).
            r = node_hash(&r, p);
        }
        // c. Finally, right-shift both fn and sn one time.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. Succeed if sn is 0 and r equals root_hash.
    if sn != 0 {
        return Err(wrong_length);
    }
    if !hashes_equal(&r, root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The state of the §2.1.3.2 loop before it takes a proof element: `fn`, `sn` and `r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    fn_: u64,
    sn: u64,
    r: Hash,
}

/// Checks many inclusion proofs against one signed (size, root), as [`verify_inclusion`] does,
/// but remembers the last accepted one, so that a proof of a neighbouring leaf stops where it
/// joins that path: an export bundle lists leaves in order, and neighbours share all but the
/// lowest levels of their paths (two hashes per leaf on average instead of `log2 n`).
///
/// Why stopping is sound: the loop of RFC 9162 §2.1.3.2 is a function of its state (`fn`, `sn`,
/// `r`) and of the proof elements still to take. When a step finds the very state an accepted
/// proof passed through, with the same remaining elements, the rest of the computation is
/// that accepted one, which ended with `sn = 0` and `r` equal to the root.
#[derive(Clone, Debug)]
pub struct InclusionVerifier {
    tree_size: u64,
    root: Hash,
    // The states the last accepted proof passed through (`sn` strictly decreasing), and its
    // elements; empty before the first one.
    accepted: Vec<Step>,
    accepted_proof: Vec<Hash>,
    scratch: Vec<Step>,
}

impl InclusionVerifier {
    /// A verifier for proofs into the tree of `tree_size` leaves with root `root`.
    pub fn new(tree_size: u64, root: Hash) -> Self {
        Self {
            tree_size,
            root,
            accepted: Vec::new(),
            accepted_proof: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// What [`verify_inclusion`]`(leaf_hash, index, tree_size, proof, root)` answers, with the
    /// same errors.
    pub fn verify(
        &mut self,
        leaf_hash: &Hash,
        index: u64,
        proof: &[Hash],
    ) -> Result<(), ProofError> {
        let tree_size = self.tree_size;
        if index >= tree_size {
            return Err(ProofError::IndexOutOfRange { index, tree_size });
        }
        let expected = inclusion_path_len(index, tree_size);
        let wrong_length = ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        };
        if proof.len() != expected {
            return Err(wrong_length);
        }
        let (mut fn_, mut sn) = (index, tree_size - 1);
        let mut r = *leaf_hash;
        self.scratch.clear();
        // The first state of the accepted path not above the current one.
        let mut j = 0;
        for (i, p) in proof.iter().enumerate() {
            while self.accepted.get(j).is_some_and(|s| s.sn > sn) {
                j += 1;
            }
            if let Some(seen) = self.accepted.get(j) {
                // `r` is not secret: both sides are hashes of public data.
                if seen.sn == sn
                    && seen.fn_ == fn_
                    && seen.r == r
                    && proof[i..] == self.accepted_proof[j..]
                {
                    self.scratch.extend_from_slice(&self.accepted[j..]);
                    self.remember(proof);
                    return Ok(());
                }
            }
            self.scratch.push(Step { fn_, sn, r });
            // The steps of verify_inclusion, which names them after the RFC.
            if sn == 0 {
                return Err(wrong_length);
            }
            if fn_ & 1 == 1 || fn_ == sn {
                r = node_hash(p, &r);
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        if sn != 0 {
            return Err(wrong_length);
        }
        if !hashes_equal(&r, &self.root) {
            return Err(ProofError::RootMismatch);
        }
        self.remember(proof);
        Ok(())
    }

    fn remember(&mut self, proof: &[Hash]) {
        std::mem::swap(&mut self.accepted, &mut self.scratch);
        self.accepted_proof.clear();
        self.accepted_proof.extend_from_slice(proof);
    }
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root`, by the algorithm of RFC 9162 §2.1.4.2, step by step.
///
/// That algorithm covers `0 < old_size < new_size`. The other sizes need no proof and accept
/// only an empty one: equal sizes must have equal roots, and a tree of size 0 must have the
/// empty tree's root ([`empty_root`]), which every tree extends. As in [`verify_inclusion`],
/// the proof's exact length is checked before the RFC's steps, which would reject it anyway.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    let expected = if old_size == 0 || old_size == new_size {
        0
    } else {
        consistency_proof_len(old_size, new_size)
    };
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    if old_size == 0 {
        if !hashes_equal(old_root, &empty_root()) {
            return Err(ProofError::OldRootMismatch);
        }
        return Ok(());
    }
    if old_size == new_size {
        if !hashes_equal(old_root, new_root) {
            return Err(ProofError::NewRootMismatch);
        }
        return Ok(());
    }
    // 1. If consistency_path is an empty array, stop and fail.
    let Some((head, tail)) = proof.split_first() else {
        return Err(wrong_length);
    };
    // 2. If first is an exact power of 2, prepend first_hash to the consistency_path array.
    //    (Without copying: the path is then first_hash followed by the whole proof.)
    let (path_first, path_rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (head, tail)
    };
    // 3. Set fn to first - 1 and sn to second - 1.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    // 4. If LSB(fn) is set, right-shift both fn and sn equally until LSB(fn) is not set.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. Set both fr and sr to the first value in the consistency_path array.
    let (mut fr, mut sr) = (*path_first, *path_first);
    // 6. For each subsequent value c in the consistency_path array:
    for c in path_rest {
        // a. If sn is 0, stop and fail.
        if sn == 0 {
            return Err(wrong_length);
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn_ & 1 == 1 || fn_ == sn {
            // i. Set fr to HASH(0x01 || c || fr).  ii. Set sr to HASH(0x01 || c || sr).
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // iii. If LSB(fn) is not set, right-shift both fn and sn equally until either
            //      LSB(fn) is set or fn is 0.
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            // Otherwise: i. Set sr to HASH(0x01 || sr || c).
            sr = node_hash(&sr, c);
        }
        // c. Finally, right-shift both fn and sn one time.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7. Succeed if fr equals first_hash, sr equals second_hash and sn is 0.
    if sn != 0 {
        return Err(wrong_length);
    }
    let old_matches = hashes_equal(&fr, old_root);
    let new_matches = hashes_equal(&sr, new_root);
    if !old_matches {
        return Err(ProofError::OldRootMismatch);
    }
    if !new_matches {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The right edge of the tree: the hashes of the perfect subtrees that tile `[0, size)`, one per
/// set bit of `size`, largest (leftmost) first — enough to append leaves and compute the root
/// without the rest of the tree. (transparency-dev/merkle calls the general form a "compact
/// range"; this one always starts at leaf 0.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    // INVARIANT: hashes.len() == size.count_ones(), and hashes[i] is the hash of
    // root_nodes(size)[i].
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from a stored size and its hashes, largest subtree first (as [`Self::hashes`]
    /// gives them). Fails unless there is exactly one hash per set bit of `size`; whether the
    /// hashes are right is up to the caller (compare [`Self::root`] with a signed checkpoint).
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, TreeError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(TreeError::FrontierLength {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// The frontier of the first `size` leaves, asking `node` for [`root_nodes`]`(size)`.
    pub fn from_nodes<E>(
        size: u64,
        node: impl FnMut(NodeId) -> Result<Hash, E>,
    ) -> Result<Self, E> {
        let hashes = perfect_subtrees(0..size)
            .map(node)
            .collect::<Result<_, E>>()?;
        Ok(Self { size, hashes })
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge hashes, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The right-edge subtrees with their hashes, largest first.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, Hash)> + '_ {
        perfect_subtrees(0..self.size).zip(self.hashes.iter().copied())
    }

    /// `MTH(D[n])` of the whole tree (RFC 9162 §2.1.1), in at most 63 hashes.
    pub fn root(&self) -> Hash {
        fold_subtrees(&self.hashes)
    }

    /// Appends a leaf by its [`leaf_hash`], as [`Self::push`] does, without listing the subtrees
    /// it completes (for recomputing a root, where nothing is kept).
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves.
    pub fn append(&mut self, leaf_hash: Hash) {
        let index = self.size;
        self.size = index
            .checked_add(1)
            .expect("a tree holds at most u64::MAX leaves");
        let mut hash = leaf_hash;
        for _ in 0..index.trailing_ones() {
            // INVARIANT: as in `push`, one hash per set bit of `index`.
            let left = self
                .hashes
                .pop()
                .expect("a frontier holds a hash for each set bit of its size");
            hash = node_hash(&left, &hash);
        }
        self.hashes.push(hash);
    }

    /// Appends a leaf by its [`leaf_hash`] and returns every perfect subtree the leaf completes,
    /// smallest first: the leaf itself (level 0), then one more for each trailing one bit of the
    /// old size, as equal neighbours merge. A store that keeps them all can answer any proof
    /// (see the module docs).
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves (no tree size can describe one more).
    pub fn push(&mut self, leaf_hash: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        let size = index
            .checked_add(1)
            .expect("a tree holds at most u64::MAX leaves");
        let merges = index.trailing_ones();
        let mut completed = Vec::with_capacity(merges as usize + 1);
        let mut hash = leaf_hash;
        completed.push((NodeId { level: 0, index }, hash));
        for level in 1..=merges {
            // INVARIANT: one hash per set bit of `index`, smallest last, so each trailing one bit
            // has its subtree at the end — the left neighbour of what we carry.
            let left = self
                .hashes
                .pop()
                .expect("a frontier holds a hash for each set bit of its size");
            hash = node_hash(&left, &hash);
            completed.push((
                NodeId {
                    level,
                    index: index >> level,
                },
                hash,
            ));
        }
        self.hashes.push(hash);
        self.size = size;
        completed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_the_largest_power_of_two_below_n() {
        // The table of transparency-dev/merkle testonly/reference_test.go TestDownToPowerOfTwo.
        for (n, k) in [(2, 1), (7, 4), (8, 4), (63, 32), (28937, 16384)] {
            assert_eq!(split(n), k, "n = {n}");
        }
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn perfect_subtrees_tile_aligned_runs_largest_first() {
        let tiles = |r| {
            perfect_subtrees(r)
                .map(|id| (id.level(), id.index()))
                .collect::<Vec<_>>()
        };
        assert_eq!(tiles(0..0), []);
        assert_eq!(tiles(0..7), [(2, 0), (1, 2), (0, 6)]);
        assert_eq!(tiles(8..13), [(2, 2), (0, 12)]);
        assert_eq!(tiles(0..u64::MAX).len(), 64);
    }

    #[test]
    fn node_ids_refuse_subtrees_past_the_largest_tree() {
        assert_eq!(NodeId::new(0, u64::MAX - 1).unwrap().leaves().end, u64::MAX);
        assert!(NodeId::new(0, u64::MAX).is_none());
        assert_eq!(NodeId::new(63, 0).unwrap().leaves(), 0..1 << 63);
        assert!(NodeId::new(63, 1).is_none());
        assert!(NodeId::new(64, 0).is_none());
    }

    #[test]
    fn hashes_equal_sees_every_byte() {
        let a = [7u8; 32];
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!hashes_equal(&a, &b));
        }
        assert!(hashes_equal(&a, &a));
    }
}
