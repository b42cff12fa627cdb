//! # consent-ledger store
//!
//! The event store of SPEC §4, §5 and §9: one append-only global log with gapless positions,
//! and the cqrs-es persistence trait over it. Every SQL statement of the product lives here.
//!
//! # Layout
//! - [`event`]: [`Position`], [`NewEvent`], [`Append`], [`StoredEvent`].
//! - [`error`]: [`StoreError`]; the one place where unique violations become typed errors.
//! - `group_commit`: the writer task that batches concurrent appends into one fsync.
//! - `sqlite`: the embedded backend (WAL, synchronous=FULL).
//! - [`cqrs`]: [`cqrs::LedgerEventStore`] (cqrs-es `EventStore`) and [`cqrs::CommandBus`].
//! - [`baseline`]: plain-SQL and per-command stores the benchmarks compare with.
//!
//! Revocation is effective at commit (SPEC §5.2): an append may restrict (move the
//! restriction fence) or be guarded by it ([`Guard`]); see docs/adr/0003.
//!
//! Write path: `CommandBus::execute → Aggregate::handle → Store::append → GroupCommit →
//! one transaction, one fsync → positions back to the caller`.

pub mod baseline;
pub mod cqrs;
pub mod error;
pub mod event;
mod group_commit;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::SqlitePool;

pub use error::StoreError;
pub use event::{
    Append, DecisionScan, Guard, IdempotencyClaim, IdempotencyRecord, NewEvent, Payload, Position,
    Provenance, RawEvent, StoredEvent, TextFieldRange,
};

use std::collections::HashMap;

use consent_ledger_audit::tree::{self, Hash, NodeId, TreeError};
pub use group_commit::{CommitHook, WriterStats};
use group_commit::{GroupCommit, HookSlot};

/// Leaves in a block of [`Store::inclusion_proofs`]: 2^14, whose leaf hashes are 512 KiB.
const BLOCK_LEVEL: u32 = 14;

/// Proofs in one block from which reading and hashing the whole block is cheaper than a path's
/// look-ups per proof (a block costs about as much as 50 single paths).
const DENSE_BLOCK: usize = 64;

/// A leaf's stored hash and its inclusion proof, from [`Store::inclusion_proofs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub leaf: Hash,
    /// PATH(m, D[n]), RFC 9162 §2.1.3.1, leaf first.
    pub path: Vec<Hash>,
}

/// Where the store lives (SPEC §8: `--data-dir` or `--database-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file, created on first open.
    SqliteFile(PathBuf),
}

impl StoreLocation {
    /// Reads a `--database-url`: `sqlite://PATH` (or `sqlite:PATH`).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let opts =
                sqlite::parse_url(url).map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?;
            return Ok(Self::SqliteFile(opts.get_filename().to_path_buf()));
        }
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }

    /// The embedded default: `ledger.db` in the data directory.
    pub fn in_data_dir(dir: &Path) -> Self {
        Self::SqliteFile(dir.join("ledger.db"))
    }
}

/// A handle on the event store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    reads: SqlitePool,
    writer: GroupCommit,
    hook: HookSlot,
}

impl Store {
    /// Opens the store, creating and migrating it if needed, and starts its writer.
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::SqliteFile(path) => {
                let (reads, writer) = sqlite::open(path).await?;
                let hook = HookSlot::default();
                let writer = GroupCommit::spawn_sqlite(writer, hook.clone());
                Ok(Self {
                    inner: Arc::new(Inner {
                        reads,
                        writer,
                        hook,
                    }),
                })
            }
        }
    }

    /// Installs the hook told of every committed batch before its callers are answered. Only
    /// the first call takes effect.
    pub fn set_commit_hook(&self, hook: Arc<dyn CommitHook>) {
        let _ = self.inner.hook.set(hook);
    }

    /// Appends atomically and durably; the answer carries each event's position.
    pub async fn append(&self, append: Append) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.writer.append(append).await
    }

    /// Every event of one stream, in stream order.
    pub async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sqlite::read_stream(&self.inner.reads, stream_type, stream_id).await
    }

    /// Up to `limit` events from position `from` on, in log order.
    pub async fn read_range(
        &self,
        from: Position,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sqlite::read_range(&self.inner.reads, from, limit).await
    }

    /// Up to `limit` events of positions `from..end` in order, with payloads left as text,
    /// leaving out every event of the stream type `skipped`: for a reader that only counts
    /// those (a rebuild of the read model reads the log's bulk, access decisions, in SQLite's
    /// scan alone). `end` must not exceed the log's size.
    pub async fn read_range_except(
        &self,
        from: Position,
        end: Position,
        limit: u32,
        skipped: &str,
    ) -> Result<Vec<RawEvent>, StoreError> {
        sqlite::read_range_except(&self.inner.reads, from, end, limit, skipped).await
    }

    /// The events of positions `range` that `scan` lets through, in order: a pre-selection in
    /// SQL, which the caller refines (see [`DecisionScan`]).
    pub async fn read_decisions(
        &self,
        range: std::ops::Range<u64>,
        scan: &DecisionScan,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sqlite::read_decisions(&self.inner.reads, range, scan).await
    }

    /// The stored leaf hashes of positions `leaves`, in order; a missing one is
    /// [`StoreError::Corrupt`].
    pub async fn leaf_range(&self, leaves: std::ops::Range<u64>) -> Result<Vec<Hash>, StoreError> {
        sqlite::leaf_range(&self.inner.reads, leaves).await
    }

    /// The position the next committed event will get, i.e. the log's size.
    pub async fn next_position(&self) -> Result<Position, StoreError> {
        sqlite::next_position(&self.inner.reads).await
    }

    /// What an earlier request with this idempotency key committed, if any.
    pub async fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        sqlite::idempotency(&self.inner.reads, scope, key).await
    }

    /// The RFC 9162 root of the first `size` events, from stored subtree hashes.
    pub async fn tree_root(
        &self,
        size: u64,
    ) -> Result<consent_ledger_audit::tree::Hash, StoreError> {
        sqlite::tree_root(&self.inner.reads, size).await
    }

    /// PATH(index, D[tree_size]) (RFC 9162 §2.1.3.1) from stored subtree hashes. The caller
    /// checks `index < tree_size <= log size`.
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
    pub async fn inclusion_proofs(
        &self,
        positions: &[u64],
        tree_size: u64,
    ) -> Result<Vec<Inclusion>, StoreError> {
        let mut proofs = Vec::with_capacity(positions.len());
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
                    let stored = self.stored_nodes(&nodes).await?;
                    proofs.push(Inclusion {
                        leaf: lookup(&stored, leaf).map_err(proof_error)?,
                        path: tree::inclusion_path(p, tree_size, |n| lookup(&stored, n))
                            .map_err(proof_error)?,
                    });
                }
                continue;
            }
            let leaves = sqlite::leaf_range(&self.inner.reads, block.clone()).await?;
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
                proofs.push(Inclusion { leaf, path });
            }
        }
        Ok(proofs)
    }

    /// PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1) from stored subtree hashes. The caller
    /// checks `old_size <= new_size <= log size`.
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
        let hashes = sqlite::node_hashes(&self.inner.reads, nodes).await?;
        Ok(nodes.iter().copied().zip(hashes).collect())
    }

    /// Keeps a signed checkpoint of the first `size` events (kept forever; once per size).
    pub async fn save_checkpoint(
        &self,
        size: u64,
        root: &Hash,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlite::save_checkpoint(&self.inner.reads, size, root, note).await
    }

    /// The newest kept checkpoint, as (tree size, signed note).
    pub async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        sqlite::checkpoint_at_most(&self.inner.reads, u64::MAX >> 1).await
    }

    /// The newest kept checkpoint of at most `size` events.
    pub async fn checkpoint_at_most(&self, size: u64) -> Result<Option<(u64, String)>, StoreError> {
        sqlite::checkpoint_at_most(&self.inner.reads, size).await
    }

    /// Stored leaf hashes from position `from` on, as (position, bytes), for `audit-log`.
    pub async fn leaf_hashes(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        sqlite::leaf_hashes(&self.inner.reads, from, limit).await
    }

    /// Every kept checkpoint, oldest first, as (tree size, signed note).
    pub async fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        sqlite::checkpoints(&self.inner.reads).await
    }

    /// The writer's counters (for `/metrics`).
    pub fn writer_stats(&self) -> &WriterStats {
        self.inner.writer.stats()
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.next_position().await.map(|_| ())
    }
}

/// Applies pending schema migrations (`consent-ledger migrate`).
pub async fn migrate(location: &StoreLocation) -> Result<(), StoreError> {
    match location {
        StoreLocation::SqliteFile(path) => sqlite::migrate(path).await,
    }
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
