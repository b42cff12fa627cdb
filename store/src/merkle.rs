//! The Merkle tree over the log (SPEC §6) as the store answers it: roots and inclusion and
//! consistency proofs from the stored subtree hashes, the stored leaf hashes, and the signed
//! checkpoints kept beside them.

use std::collections::HashMap;

use consent_ledger_audit::tree::{self, Hash, NodeId, TreeError};
use futures_util::{StreamExt, TryStreamExt};

use crate::{on_backend, Store, StoreError};

/// Leaves in a block of [`Store::inclusion_proofs`]: 2^14, whose leaf hashes are 512 KiB.
const BLOCK_LEVEL: u32 = 14;

/// Proofs in one block from which reading and hashing the whole block is cheaper than a path's
/// look-ups per proof (a block costs about as much as 50 single paths).
const DENSE_BLOCK: usize = 64;

/// Lone positions' look-ups [`Store::inclusion_proofs`] makes at once (and the parts
/// [`Store::read_positions`] reads at once): half the log's read connections, so that other
/// readers still find some free.
pub(crate) const LONE_AT_ONCE: usize = 4;

/// A leaf's stored hash and its inclusion proof, from [`Store::inclusion_proofs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub leaf: Hash,
    /// PATH(m, D[n]), RFC 9162 §2.1.3.1, leaf first.
    pub path: Vec<Hash>,
}

impl Store {
    /// The stored leaf hashes of positions `leaves`, in order; a missing one is
    /// [`StoreError::Corrupt`].
    #[tracing::instrument(level = "debug", skip_all, fields(start = leaves.start, end = leaves.end))]
    pub async fn leaf_range(&self, leaves: std::ops::Range<u64>) -> Result<Vec<Hash>, StoreError> {
        on_backend!(self, leaf_range(leaves))
    }

    /// The RFC 9162 root of the first `size` events, from stored subtree hashes.
    #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
    pub async fn tree_root(
        &self,
        size: u64,
    ) -> Result<consent_ledger_audit::tree::Hash, StoreError> {
        on_backend!(self, tree_root(size))
    }

    /// PATH(index, D[tree_size]) (RFC 9162 §2.1.3.1) from stored subtree hashes. The caller
    /// checks `index < tree_size <= log size`.
    #[tracing::instrument(level = "debug", skip_all, fields(index = index, tree_size = tree_size))]
    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let nodes = tree::inclusion_path_nodes(index, tree_size).map_err(proof_error)?;
        let stored = self.stored_nodes(&nodes).await?;
        tree::inclusion_path(index, tree_size, |n| lookup(&stored, n)).map_err(proof_error)
    }

    /// The stored leaf hash and PATH(index, D[tree_size]) of each of `positions`, in the same
    /// order. Neighbouring positions share most of their paths, so where many fall in one block
    /// of 2^14 leaves the block's leaves are read once and hashed in memory
    /// ([`tree::MemoryTree`]), and the part of the path above the block is fetched once
    /// ([`tree::path_block`]); a lone position gets its own look-ups. Ascending positions share
    /// the most. The caller checks every `position < tree_size <= log size`.
    #[tracing::instrument(level = "debug", skip_all, fields(proofs = positions.len(), tree_size = tree_size))]
    pub async fn inclusion_proofs(
        &self,
        positions: &[u64],
        tree_size: u64,
    ) -> Result<Vec<Inclusion>, StoreError> {
        // Filled in order: a dense block's proofs at once, a lone position's once the look-ups
        // of all of them, made several at a time, have answered.
        let mut proofs: Vec<Option<Inclusion>> = Vec::with_capacity(positions.len());
        let mut lone: Vec<(usize, u64, NodeId, Vec<NodeId>)> = Vec::new();
        let mut rest = positions;
        while let Some(&first) = rest.first() {
            let block = tree::path_block(first, tree_size, BLOCK_LEVEL).map_err(proof_error)?;
            let here = rest.iter().take_while(|p| block.contains(p)).count();
            let (group, after) = rest.split_at(here);
            rest = after;
            if group.len() < DENSE_BLOCK {
                for &p in group {
                    let leaf =
                        NodeId::new(0, p).ok_or(proof_error(TreeError::IndexOutOfRange {
                            index: p,
                            tree_size,
                        }))?;
                    let mut nodes =
                        tree::inclusion_path_nodes(p, tree_size).map_err(proof_error)?;
                    nodes.push(leaf);
                    lone.push((proofs.len(), p, leaf, nodes));
                    proofs.push(None);
                }
                continue;
            }
            let leaves = on_backend!(self, leaf_range(block.clone()))?;
            let inside = tree::MemoryTree::new(leaves);
            let nodes =
                tree::inclusion_path_above_nodes(block.clone(), tree_size).map_err(proof_error)?;
            let stored = self.stored_nodes(&nodes).await?;
            let above =
                tree::inclusion_path_above(block.clone(), tree_size, |n| lookup(&stored, n))
                    .map_err(proof_error)?;
            for &p in group {
                let index = p - block.start;
                let mut path = inside.inclusion_path(index).map_err(proof_error)?;
                path.extend_from_slice(&above);
                let leaf =
                    NodeId::new(0, index)
                        .and_then(|n| inside.node(n))
                        .ok_or(proof_error(TreeError::IndexOutOfRange {
                            index: p,
                            tree_size,
                        }))?;
                proofs.push(Some(Inclusion { leaf, path }));
            }
        }
        // A lone position's path lies on pages of its own, which on a cold file are reads from
        // the disk, one after another within a query: its look-ups are made on several of the
        // pool's connections at once, so that the disk serves them side by side.
        let fetched = side_by_side(
            lone.iter()
                .map(|(_, _, _, nodes)| self.stored_nodes(nodes))
                .collect(),
        )
        .await?;
        for ((slot, p, leaf, _), stored) in lone.iter().zip(fetched) {
            proofs[*slot] = Some(Inclusion {
                leaf: lookup(&stored, *leaf).map_err(proof_error)?,
                path: tree::inclusion_path(*p, tree_size, |n| lookup(&stored, n))
                    .map_err(proof_error)?,
            });
        }
        Ok(proofs.into_iter().flatten().collect())
    }

    /// PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1) from stored subtree hashes. The caller
    /// checks `old_size <= new_size <= log size`.
    #[tracing::instrument(level = "debug", skip_all, fields(old_size = old_size, new_size = new_size))]
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let nodes = tree::consistency_proof_nodes(old_size, new_size).map_err(proof_error)?;
        let stored = self.stored_nodes(&nodes).await?;
        tree::consistency_proof(old_size, new_size, |n| lookup(&stored, n)).map_err(proof_error)
    }

    /// The stored hashes of perfect subtrees, fetched before the (synchronous) proof math.
    async fn stored_nodes(&self, nodes: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let hashes = on_backend!(self, node_hashes(nodes))?;
        Ok(nodes.iter().copied().zip(hashes).collect())
    }

    /// Keeps a signed checkpoint of the first `size` events (kept forever; once per size).
    #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
    pub async fn save_checkpoint(
        &self,
        size: u64,
        root: &Hash,
        note: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self, save_checkpoint(size, root, note))
    }

    /// The newest kept checkpoint, as (tree size, signed note).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        on_backend!(self, checkpoint_at_most(u64::MAX >> 1))
    }

    /// The newest kept checkpoint of at most `size` events.
    #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
    pub async fn checkpoint_at_most(&self, size: u64) -> Result<Option<(u64, String)>, StoreError> {
        on_backend!(self, checkpoint_at_most(size))
    }

    /// Stored leaf hashes from position `from` on, as (position, bytes), for `audit-log`.
    #[tracing::instrument(level = "debug", skip_all, fields(from = from, limit = limit))]
    pub async fn leaf_hashes(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        on_backend!(self, leaf_hashes(from, limit))
    }

    /// Every kept checkpoint, oldest first, as (tree size, signed note).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        on_backend!(self, checkpoints())
    }
}

/// The answers of `reads`, in order, [`LONE_AT_ONCE`] of them under way at a time; the first
/// error ends it. (The reads are made by the caller first: a closure in the stream's type would
/// not be `Send` for every lifetime, as the export's spawned pages need.)
pub(crate) async fn side_by_side<T>(
    reads: Vec<impl std::future::Future<Output = Result<T, StoreError>>>,
) -> Result<Vec<T>, StoreError> {
    futures_util::stream::iter(reads)
        .buffered(LONE_AT_ONCE)
        .try_collect()
        .await
}

fn lookup(stored: &HashMap<NodeId, Hash>, node: NodeId) -> Result<Hash, TreeError> {
    // INVARIANT: `stored` holds every node the `*_nodes` function listed for this proof, which
    // are exactly the nodes the proof asks for; a miss would be an audit crate bug.
    stored
        .get(&node)
        .copied()
        .ok_or(TreeError::IndexOutOfRange {
            index: node.index(),
            tree_size: 0,
        })
}

fn proof_error(e: TreeError) -> StoreError {
    StoreError::Corrupt {
        position: -1,
        detail: format!("proof: {e}"),
    }
}
