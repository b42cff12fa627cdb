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
//! - [`audit`]: the GDPR audit projection's tables (docs/adr/0006), written by the audit
//!   projector's catch-up in its own transactions, never in the group commit.
//!
//! Revocation is effective at commit (SPEC §5.2): an append may restrict (move the
//! restriction fence) or be guarded by it ([`Guard`]); see docs/adr/0003.
//!
//! Write path: `CommandBus::execute → Aggregate::handle → Store::append → GroupCommit →
//! one transaction, one fsync → positions back to the caller`.

pub mod audit;
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
    Append, Guard, IdempotencyClaim, IdempotencyRecord, NewEvent, Payload, Position, Provenance,
    RawEvent, StoredEvent,
};

use std::collections::HashMap;

use consent_ledger_audit::tree::{self, Hash, NodeId, TreeError};
pub use group_commit::{CommitHook, WriterStats};
use group_commit::{GroupCommit, HookSlot};

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

    /// The position the audit projection has applied up to (exclusive).
    pub async fn audit_position(&self) -> Result<Position, StoreError> {
        audit::sqlite::audit_position(&self.inner.reads).await
    }

    /// Writes the audit rows of the events `from..next` and moves the audit projection to
    /// `next` in one transaction, if it is still at `from`; `false` when another process
    /// applied them first (nothing written).
    pub async fn audit_apply(
        &self,
        from: Position,
        next: Position,
        batch: &audit::AuditBatch,
    ) -> Result<bool, StoreError> {
        audit::sqlite::audit_apply(&self.inner.reads, from, next, batch).await
    }

    /// Up to `limit` projected access decisions matching `filter`, after position `after`,
    /// in log order.
    pub async fn audit_access(
        &self,
        filter: &audit::AccessFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<audit::AuditAccess>, StoreError> {
        audit::sqlite::audit_access(&self.inner.reads, filter, after, limit).await
    }

    /// The projected shipments a data subject's key names, in registration order.
    pub async fn audit_shipments(
        &self,
        key: &audit::SubjectKey,
    ) -> Result<Vec<audit::AuditShipment>, StoreError> {
        audit::sqlite::audit_shipments(&self.inner.reads, key).await
    }

    /// Projected decisions per partner with `from <= decided_at < to` (microseconds).
    pub async fn audit_counts(
        &self,
        from: i64,
        to: i64,
    ) -> Result<std::collections::BTreeMap<String, audit::PartnerCounts>, StoreError> {
        audit::sqlite::audit_counts(&self.inner.reads, from, to).await
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
