//! The write path both backends share: how a batch of appends becomes one transaction — the
//! restriction fence, positions and `recorded_at` stamped on the events, the fast path and the
//! one-SAVEPOINT-per-append slow path, the Merkle leaves and every subtree they complete — and
//! what a batch comes to. A backend only runs the SQL of each step ([`LogWriter`]).
//!
//! The Merkle leaves and subtrees of a batch are in [`tree`], the statements both backends
//! share in [`statements`], and what every backend's writer must do, for its tests, in
//! `contracts`.
//!
//! This module imports no backend and not the group commit: the backends and
//! [`crate::group_commit`] import it, so that none of them imports another in a circle.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use consent_ledger_audit::leaf::LeafHead;
use consent_ledger_audit::tree::{Frontier, Hash, NodeId};
use tokio::sync::watch;

use crate::error::{classify, is_unique_violation, ClassifiedError, StoreError, UniqueKey};
use crate::event::{
    Append, Credential, Erasure, IdempotencyClaim, IdempotencyRecord, Position, StoredEvent,
};

#[cfg(test)]
mod contracts;
mod statements;
mod tree;

#[cfg(test)]
pub(crate) use contracts::{one_call_contract, rows_beside_contract};
pub(crate) use statements::writer_statements;
use tree::{append_leaves, kept_of};
pub(crate) use tree::{is_kept, leaf_of, resolve_nodes};

/// What one append of a batch came to.
pub(crate) type AppendResult = Result<Vec<StoredEvent>, StoreError>;

/// What a batch came to: each append's result, or a failure that wrote nothing at all.
pub(crate) enum BatchOutcome {
    Done(Vec<AppendResult>),
    Failed(Arc<sqlx::Error>),
}

/// Raises the announced log size to `size` (never lowers it: announcements of several
/// processes may arrive out of order).
pub(crate) fn announce(committed: &watch::Sender<Position>, size: Position) {
    committed.send_if_modified(|known| {
        let newer = size > *known;
        if newer {
            *known = size;
        }
        newer
    });
}

/// Rows per multi-row statement of openings and erasures: six parameters a row stays far below
/// SQLite's 32,766 and PostgreSQL's 65,535 bind parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 1_000;

/// Events read back per statement when the tree is rebuilt from the log ([`backfill`]).
pub(crate) const BACKFILL_PAGE: u32 = 10_000;

/// The SQL of each step of a commit, on one backend's write connection. Every method runs
/// inside the transaction [`LogWriter::begin`] opened, except [`LogWriter::abort`] and
/// [`LogWriter::append_whole`], which is a transaction of its own.
pub(crate) trait LogWriter {
    /// `recorded_at` as the backend binds it, made once per batch: SQLite stores RFC 3339
    /// text, PostgreSQL a TIMESTAMPTZ.
    type Time: Sync;

    fn time(at: DateTime<Utc>) -> Self::Time;

    /// Opens the write transaction holding the write lock (SQLite's `BEGIN IMMEDIATE`,
    /// PostgreSQL's `log_head` row, docs/adr/0005); returns the next position and the
    /// restriction fence, both read under the lock.
    async fn begin(&mut self) -> Result<(Position, i64), sqlx::Error>;

    /// Rolls back a transaction the fast path started, to redo it append by append.
    async fn rollback(&mut self) -> Result<(), sqlx::Error>;

    /// Rolls back after a failure; a connection that cannot is the backend's to forget.
    async fn abort(&mut self);

    /// The fast path: the idempotency keys, unique claims and events of every admitted append
    /// of the batch, in as few statements as the backend allows.
    async fn insert_stamped(
        &mut self,
        stamped: &Stamped<'_>,
        time: &Self::Time,
    ) -> Result<(), sqlx::Error>;

    async fn savepoint(&mut self) -> Result<(), sqlx::Error>;
    async fn release_savepoint(&mut self) -> Result<(), sqlx::Error>;
    /// Rolls back to the savepoint and releases it: the refused append left nothing.
    async fn drop_savepoint(&mut self) -> Result<(), sqlx::Error>;

    async fn idempotency(
        &mut self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, sqlx::Error>;
    async fn insert_key(
        &mut self,
        claim: &IdempotencyClaim,
        first: Position,
        last: Position,
        time: &Self::Time,
    ) -> Result<(), sqlx::Error>;
    async fn insert_claim(&mut self, claim: &str, position: Position) -> Result<(), sqlx::Error>;
    /// Makes `credential` its principal's only one, issued at `position`.
    async fn upsert_credential(
        &mut self,
        credential: &Credential,
        position: Position,
    ) -> Result<(), sqlx::Error>;
    async fn insert_event(
        &mut self,
        event: &StoredEvent,
        time: &Self::Time,
    ) -> Result<(), sqlx::Error>;
    /// Keeps the openings of sealed fields, each with its event (SPEC §12): multi-row
    /// INSERTs, as the events are written.
    async fn insert_openings(
        &mut self,
        rows: &[(&StoredEvent, &crate::event::OpenedField)],
    ) -> Result<(), sqlx::Error>;
    /// Keeps a webhook endpoint's new signing key, made by the event at `position`.
    async fn insert_webhook_key(
        &mut self,
        key: &crate::event::WebhookKeyRow,
        position: Position,
    ) -> Result<(), sqlx::Error>;
    /// Keeps tracking updates (SPEC §14); one already held is a unique violation.
    async fn insert_tracking(
        &mut self,
        rows: &[&crate::event::TrackingUpdateRow],
    ) -> Result<(), sqlx::Error>;
    /// Queues webhook messages, each caused by the event at its position.
    async fn insert_outbox(
        &mut self,
        rows: &[(&crate::event::OutboxMessage, Position)],
    ) -> Result<(), sqlx::Error>;
    /// Deletes what `erasure` names, recorded by the event at `position`.
    async fn erase(&mut self, erasure: &Erasure, position: Position) -> Result<(), sqlx::Error>;

    /// The hashes of `nodes` (None where one is not stored); see [`resolve_nodes`].
    async fn fetch_nodes(&mut self, nodes: &[NodeId]) -> Result<Vec<Option<Hash>>, sqlx::Error>;
    /// Inserts subtree hashes, every one of them [`is_kept`].
    async fn insert_nodes(&mut self, kept: &[&(NodeId, Hash)]) -> Result<(), sqlx::Error>;
    async fn clear_nodes(&mut self) -> Result<(), sqlx::Error>;
    /// Up to [`BACKFILL_PAGE`] events of positions `from..end`, in order.
    async fn events_between(
        &mut self,
        from: u64,
        end: u64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error>;

    /// Moves the restriction fence if it moved, announces the log's new size where the
    /// backend announces it, and commits: the one fsync of the batch.
    async fn finish(
        &mut self,
        fence: Option<i64>,
        size: Option<Position>,
    ) -> Result<(), sqlx::Error>;

    /// Inserts the batch's new subtree hashes (every one of them [`is_kept`]), then
    /// [`LogWriter::finish`]es. A backend may send both in one round trip.
    async fn finish_with_nodes(
        &mut self,
        kept: &[&(NodeId, Hash)],
        fence: Option<i64>,
        size: Option<Position>,
    ) -> Result<(), sqlx::Error> {
        nodes_then_finish(self, kept, fence, size).await
    }

    /// Events a batch may hold at most for [`LogWriter::append_whole`].
    const WHOLE_EVENTS: usize = WHOLE_EVENTS;

    /// What this writer knows of the head its last commit left, where the backend can commit
    /// a plain batch in one call ([`LogWriter::append_whole`]); `None` elsewhere.
    fn last_head(&mut self) -> Option<&mut LastHead> {
        None
    }

    /// The restriction fence this writer's last commit left, where the backend can commit a
    /// plain batch in one call against it and the tree's right edge that commit left (whose
    /// size is the next position); `None` elsewhere, after a failure, and for a while after
    /// another writer moved the head.
    fn expected_fence(&mut self) -> Option<i64> {
        self.last_head().and_then(|head| head.expected_fence())
    }

    /// Remembers the fence a commit left, or forgets it.
    fn set_fence(&mut self, fence: Option<i64>) {
        if let Some(head) = self.last_head() {
            head.set_fence(fence);
        }
    }

    /// Another writer had moved the head [`LogWriter::append_whole`] expected.
    fn head_moved(&mut self) {
        if let Some(head) = self.last_head() {
            head.head_moved();
        }
    }

    /// Commits a plain batch ([`is_plain`]) with its subtree hashes, the fence moved
    /// to `fence` and the size announced, in one call outside any transaction, if the log's
    /// head is still `head`; `false`: another writer moved it, and nothing was written.
    async fn append_whole(
        &mut self,
        _head: (Position, i64),
        _stamped: &Stamped<'_>,
        _time: &Self::Time,
        _kept: &[&(NodeId, Hash)],
        _fence: Option<i64>,
        _size: Option<Position>,
    ) -> Result<bool, sqlx::Error> {
        Ok(false)
    }
}

/// Commits a writer makes the general way after another writer moved the head it expected:
/// while writers take turns, the one-call attempt would mostly find the head moved, and each
/// such attempt is spent for nothing.
const AFTER_A_MOVED_HEAD: u32 = 16;

/// What a writer knows of the head its last commit left, for [`LogWriter::append_whole`]:
/// the restriction fence, unless it failed since or another writer was found writing lately.
#[derive(Debug, Default)]
pub(crate) struct LastHead {
    fence: Option<i64>,
    /// Commits left to make the general way because another writer was found writing.
    others_writing: u32,
}

impl LastHead {
    /// [`LogWriter::expected_fence`].
    pub(crate) fn expected_fence(&self) -> Option<i64> {
        self.fence.filter(|_| self.others_writing == 0)
    }

    /// [`LogWriter::set_fence`].
    pub(crate) fn set_fence(&mut self, fence: Option<i64>) {
        self.fence = fence;
        self.others_writing = self.others_writing.saturating_sub(1);
    }

    /// [`LogWriter::head_moved`].
    pub(crate) fn head_moved(&mut self) {
        self.fence = None;
        self.others_writing = AFTER_A_MOVED_HEAD;
    }
}

/// [`LogWriter::finish_with_nodes`] in two round trips: the nodes' INSERT, then the commit.
pub(crate) async fn nodes_then_finish<W: LogWriter + ?Sized>(
    writer: &mut W,
    kept: &[&(NodeId, Hash)],
    fence: Option<i64>,
    size: Option<Position>,
) -> Result<(), sqlx::Error> {
    if !kept.is_empty() {
        writer.insert_nodes(kept).await?;
    }
    writer.finish(fence, size).await
}

/// Commits a batch of appends in one transaction and one fsync. Each append that a unique key
/// refuses is refused alone (SAVEPOINT); any other error rolls the whole transaction back and
/// fails every append (no partial write).
#[tracing::instrument(level = "trace", skip_all, fields(appends = batch.len()))]
pub(crate) async fn commit_batch<W: LogWriter>(
    writer: &mut W,
    batch: &[Append],
    heads: &[Vec<LeafHead>],
    frontier: &mut Option<Frontier>,
) -> BatchOutcome {
    match try_commit_batch(writer, batch, heads, frontier).await {
        Ok(outcome) => outcome,
        Err(err) => {
            // The transaction may be half-open; roll it back so the next batch starts clean,
            // and forget the tree's right edge, which may hold leaves that were not committed.
            *frontier = None;
            writer.set_fence(None);
            writer.abort().await;
            BatchOutcome::Failed(Arc::new(err))
        }
    }
}

async fn try_commit_batch<W: LogWriter>(
    writer: &mut W,
    batch: &[Append],
    heads: &[Vec<LeafHead>],
    frontier: &mut Option<Frontier>,
) -> Result<BatchOutcome, sqlx::Error> {
    if let Some(fence) = writer.expected_fence() {
        if let Some(outcome) = try_whole(writer, batch, heads, frontier, fence).await? {
            return Ok(outcome);
        }
    }
    let (next, fence) = writer.begin().await?;
    // Read once the write lock is held, so that across processes `recorded_at` follows
    // positions as far as the nodes' clocks agree. Stored with microsecond precision; truncate
    // here so the answer equals what reads return.
    let recorded_at = Utc::now().trunc_subsecs(6);
    let time = W::time(recorded_at);
    // Fast path: the whole batch in a few statements; statements, not rows, are what a batch
    // costs (a round trip to SQLite's worker thread, or to the server).
    let mut new_fence = fence;
    let stamped = Stamped::new(batch, next, &mut new_fence, recorded_at).begun(heads);
    // The events' leaf hashes are finished while the backend runs the INSERTs (SQLite's
    // worker thread, or the server): the writer is the one serial stage of every decision.
    let (inserted, leaves) = tokio::join!(writer.insert_stamped(&stamped, &time), async {
        stamped.leaves()
    });
    let mut leaves = Some(leaves);
    let fast = match inserted {
        Ok(()) => {
            let tracking = stamped.tracking();
            if tracking.is_empty() {
                Ok(())
            } else {
                writer.insert_tracking(&tracking).await
            }
        }
        Err(err) => Err(err),
    };
    let results = match fast {
        // Credentials are rare (a registration, a rotation): one statement each.
        Ok(()) => {
            for (credential, position) in stamped.credentials() {
                writer.upsert_credential(credential, position).await?;
            }
            let openings = stamped.openings();
            if !openings.is_empty() {
                writer.insert_openings(&openings).await?;
            }
            for (key, position) in stamped.webhook_keys() {
                writer.insert_webhook_key(key, position).await?;
            }
            let outbox = stamped.outbox();
            if !outbox.is_empty() {
                writer.insert_outbox(&outbox).await?;
            }
            // Erasures are rare (a request, a retention batch): statements of their own.
            for (erasure, position) in stamped.erasures() {
                writer.erase(erasure, position).await?;
            }
            stamped.into_results()
        }
        // Some append of the batch is refused (a taken stream version, claim or key). Redo
        // the batch one SAVEPOINT per append, so that only the refused ones fail. The lock is
        // released in between, so the head is read again.
        Err(err) if is_unique_violation(&err) => {
            // The appends redone one by one take other positions: their leaves are hashed
            // as they commit.
            leaves = None;
            drop(stamped);
            writer.rollback().await?;
            let (next, fence) = writer.begin().await?;
            new_fence = fence;
            insert_one_by_one(writer, batch, next, &mut new_fence, recorded_at, &time).await?
        }
        Err(err) => return Err(err),
    };
    let committed: Vec<&StoredEvent> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .collect();
    let nodes = append_leaves(writer, frontier, &committed, leaves).await?;
    let kept = kept_of(&nodes);
    let size = committed.last().map(|e| e.position.next());
    writer
        .finish_with_nodes(&kept, (new_fence != fence).then_some(new_fence), size)
        .await?;
    writer.set_fence(Some(new_fence));
    Ok(BatchOutcome::Done(results))
}

/// Events a batch may hold for [`try_whole`] on PostgreSQL ([`LogWriter::WHOLE_EVENTS`]). Its
/// leaves are hashed before the call, where the general path hashes them while the backend runs
/// its INSERTs: past about a thousand events (~0.4 µs each) the hashing costs the batch more
/// than the two round trips saved (0.3–0.4 ms on PostgreSQL; BENCHMARKS.md, "PostgreSQL").
pub(crate) const WHOLE_EVENTS: usize = 1_000;

/// Whether a batch is for [`try_whole`]: at most `limit` events, and nothing written but
/// events, idempotency keys, unique claims, sealed fields' openings, webhook messages and
/// tracking updates. Never a credential, a webhook key or an erasure.
fn is_plain(batch: &[Append], limit: usize) -> bool {
    batch.iter().map(|a| a.events.len()).sum::<usize>() <= limit
        && batch
            .iter()
            .all(|a| a.credential.is_none() && a.webhook_key.is_none() && a.erasure.is_none())
}

/// The fast path in one call, where the backend offers it ([`LogWriter::append_whole`]) and
/// this writer knows the fence and the tree's right edge its last commit left: positions,
/// leaves and subtree hashes are computed before anything is sent. `None` when the batch
/// writes more than events, keys and claims, when another writer moved the head, or when a
/// unique key refused an append: the general path then runs as if this had not been tried
/// (nothing was written, and the edge is kept as it was).
async fn try_whole<W: LogWriter>(
    writer: &mut W,
    batch: &[Append],
    heads: &[Vec<LeafHead>],
    frontier: &mut Option<Frontier>,
    fence: i64,
) -> Result<Option<BatchOutcome>, sqlx::Error> {
    if !is_plain(batch, W::WHOLE_EVENTS) {
        return Ok(None);
    }
    // The edge's size is the next position as this writer left the log; `log_append` checks
    // that nobody appended since.
    let Some(mut edge) = frontier.clone() else {
        return Ok(None);
    };
    let next = Position::new(edge.size());
    let recorded_at = Utc::now().trunc_subsecs(6);
    let time = W::time(recorded_at);
    let mut new_fence = fence;
    let stamped = Stamped::new(batch, next, &mut new_fence, recorded_at).begun(heads);
    let leaves = stamped.leaves();
    let mut nodes = Vec::with_capacity(leaves.len() * 2);
    for leaf in leaves {
        nodes.extend(edge.push(leaf));
    }
    let kept = kept_of(&nodes);
    let size = stamped
        .events
        .iter()
        .flatten()
        .last()
        .map(|e| e.position.next());
    let moved_fence = (new_fence != fence).then_some(new_fence);
    match writer
        .append_whole((next, fence), &stamped, &time, &kept, moved_fence, size)
        .await
    {
        Ok(true) => {
            *frontier = Some(edge);
            writer.set_fence(Some(new_fence));
            Ok(Some(BatchOutcome::Done(stamped.into_results())))
        }
        Ok(false) => {
            writer.head_moved();
            Ok(None)
        }
        Err(err) if is_unique_violation(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Checks an append against the restriction fence and moves the fence if the append restricts
/// (SPEC §5.2, docs/adr/0003). `first` is the position its first event would get.
pub(crate) fn pass_fence(
    append: &Append,
    first: Position,
    fence: &mut i64,
) -> Result<(), StoreError> {
    if let Some(before) = append.guard.decided_before {
        if *fence >= before.as_i64() {
            return Err(StoreError::Stale {
                restricted_at: Position::from_i64(*fence),
            });
        }
    }
    if append.guard.restricts && !append.events.is_empty() {
        *fence = first.as_i64();
    }
    Ok(())
}

/// The events of `append` as they will be stored from position `first` on.
pub(crate) fn stamp(
    append: &Append,
    first: Position,
    recorded_at: DateTime<Utc>,
) -> Vec<StoredEvent> {
    append
        .events
        .iter()
        .enumerate()
        .map(|(i, event)| StoredEvent {
            position: Position::new(first.get() + i as u64),
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            actor: append.provenance.actor.clone(),
            request_id: append.provenance.request_id.clone(),
            recorded_at,
            payload: event.payload.clone(),
            openings: event.openings.clone(),
        })
        .collect()
}

/// A batch past the fence and stamped with positions, for the fast path: each append's events
/// (none where the fence refused it) and each refusal.
pub(crate) struct Stamped<'a> {
    batch: &'a [Append],
    events: Vec<Vec<StoredEvent>>,
    refused: Vec<Option<StoreError>>,
    /// Each append's events' leaf hashes as their callers began them ([`LeafHead`]), where
    /// they did.
    heads: &'a [Vec<LeafHead>],
}

impl<'a> Stamped<'a> {
    pub(crate) fn new(
        batch: &'a [Append],
        first: Position,
        fence: &mut i64,
        recorded_at: DateTime<Utc>,
    ) -> Self {
        let mut next = first;
        let mut events = Vec::with_capacity(batch.len());
        let mut refused = Vec::with_capacity(batch.len());
        for append in batch {
            match pass_fence(append, next, fence) {
                Ok(()) => {
                    let stamped = stamp(append, next, recorded_at);
                    next = Position::new(next.get() + stamped.len() as u64);
                    events.push(stamped);
                    refused.push(None);
                }
                Err(stale) => {
                    events.push(Vec::new());
                    refused.push(Some(stale));
                }
            }
        }
        Self {
            batch,
            events,
            refused,
            heads: &[],
        }
    }

    /// The same, with each append's events' leaf hashes begun by its caller (in the order of
    /// `batch` and of each append's events; none past the end), which [`Stamped::leaves`]
    /// finishes.
    pub(crate) fn begun(self, heads: &'a [Vec<LeafHead>]) -> Self {
        Self { heads, ..self }
    }

    /// The leaf hash of every admitted event, in log order: finished from the head its caller
    /// began where there is one, hashed whole otherwise.
    pub(crate) fn leaves(&self) -> Vec<Hash> {
        let mut leaves = Vec::with_capacity(self.events.iter().map(Vec::len).sum());
        for (i, events) in self.events.iter().enumerate() {
            let heads = self.heads.get(i).map_or(&[][..], Vec::as_slice);
            for (j, event) in events.iter().enumerate() {
                leaves.push(match heads.get(j) {
                    Some(head) => head.finish(&event.leaf()),
                    None => leaf_of(event),
                });
            }
        }
        leaves
    }

    /// The idempotency key of each admitted append that holds events, with those events.
    pub(crate) fn keys(&self) -> Vec<(&IdempotencyClaim, &[StoredEvent])> {
        self.batch
            .iter()
            .zip(&self.events)
            .filter_map(|(a, e)| Some((a.idempotency.as_ref()?, e.as_slice())))
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }

    /// Each unique claim of an admitted append, with the append's first position.
    pub(crate) fn claims(&self) -> Vec<(&str, i64)> {
        self.batch
            .iter()
            .zip(&self.events)
            .filter_map(|(a, e)| Some((a, e.first()?.position.as_i64())))
            .flat_map(|(a, p)| a.unique_claims.iter().map(move |c| (c.as_str(), p)))
            .collect()
    }

    /// Each credential of an admitted append, with the append's first position.
    pub(crate) fn credentials(&self) -> Vec<(&Credential, Position)> {
        self.batch
            .iter()
            .zip(&self.events)
            .filter_map(|(a, e)| Some((a.credential.as_ref()?, e.first()?.position)))
            .collect()
    }

    /// Each webhook key of an admitted append, with the append's first position.
    pub(crate) fn webhook_keys(&self) -> Vec<(&crate::event::WebhookKeyRow, Position)> {
        self.batch
            .iter()
            .zip(&self.events)
            .filter_map(|(a, e)| Some((a.webhook_key.as_ref()?, e.first()?.position)))
            .collect()
    }

    /// Each webhook message of an admitted append, with the position of the event causing it.
    pub(crate) fn outbox(&self) -> Vec<(&crate::event::OutboxMessage, Position)> {
        self.batch
            .iter()
            .zip(&self.events)
            .filter_map(|(a, e)| Some((a, e.first()?.position)))
            .flat_map(|(a, p)| a.outbox.iter().map(move |m| (m, caused_at(p, m))))
            .collect()
    }

    /// Each sealed field's opening of an admitted event, with its event (SPEC §12).
    pub(crate) fn openings(&self) -> Vec<(&StoredEvent, &crate::event::OpenedField)> {
        self.events
            .iter()
            .flatten()
            .flat_map(|e| e.openings.iter().map(move |o| (e, o)))
            .collect()
    }

    /// Each tracking update of an admitted append.
    pub(crate) fn tracking(&self) -> Vec<&crate::event::TrackingUpdateRow> {
        self.batch
            .iter()
            .zip(&self.events)
            .filter(|(_, e)| !e.is_empty())
            .flat_map(|(a, _)| a.tracking.iter())
            .collect()
    }

    /// Each erasure of an admitted append, with the append's first position.
    pub(crate) fn erasures(&self) -> Vec<(&Erasure, Position)> {
        self.batch
            .iter()
            .zip(&self.events)
            .filter_map(|(a, e)| Some((a.erasure.as_ref()?, e.first()?.position)))
            .collect()
    }

    /// Every admitted event, in log order.
    pub(crate) fn events(&self) -> Vec<&StoredEvent> {
        self.events.iter().flatten().collect()
    }

    fn into_results(self) -> Vec<AppendResult> {
        self.events
            .into_iter()
            .zip(self.refused)
            .map(|(events, refusal)| match refusal {
                Some(stale) => Err(stale),
                None => Ok(events),
            })
            .collect()
    }
}

/// The slow path: each append in its own SAVEPOINT, so a unique violation refuses only it.
#[tracing::instrument(level = "trace", skip_all, fields(appends = batch.len()))]
async fn insert_one_by_one<W: LogWriter>(
    writer: &mut W,
    batch: &[Append],
    first: Position,
    fence: &mut i64,
    recorded_at: DateTime<Utc>,
    time: &W::Time,
) -> Result<Vec<AppendResult>, sqlx::Error> {
    let mut next = first;
    let mut results = Vec::with_capacity(batch.len());
    for append in batch {
        let before = *fence;
        if let Err(stale) = pass_fence(append, next, fence) {
            results.push(Err(stale));
            continue;
        }
        writer.savepoint().await?;
        match append_one(writer, append, next, recorded_at, time).await {
            Ok(events) => {
                writer.release_savepoint().await?;
                next = Position::new(next.get() + events.len() as u64);
                results.push(Ok(events));
            }
            Err(ClassifiedError::Refused(refusal)) => {
                writer.drop_savepoint().await?;
                // A refused append restricts nothing.
                *fence = before;
                results.push(Err(refusal));
            }
            Err(ClassifiedError::Failed(err)) => return Err(err),
        }
    }
    Ok(results)
}

async fn append_one<W: LogWriter>(
    writer: &mut W,
    append: &Append,
    first: Position,
    recorded_at: DateTime<Utc>,
    time: &W::Time,
) -> Result<Vec<StoredEvent>, ClassifiedError> {
    // An empty append holds no position, so it may claim nothing either.
    if append.events.is_empty() {
        return Ok(Vec::new());
    }
    let last = Position::new(first.get() + append.events.len().saturating_sub(1) as u64);
    if let Some(claim) = &append.idempotency {
        // The writer holds the write lock (SQLite's file lock; on PostgreSQL every writer of
        // every process holds the log head), so this look-up cannot race another writer; the
        // unique key is the backstop.
        if let Some(record) = writer
            .idempotency(&claim.scope, &claim.key)
            .await
            .map_err(ClassifiedError::Failed)?
        {
            return Err(ClassifiedError::Refused(StoreError::IdempotencyKeyUsed(
                record,
            )));
        }
        writer
            .insert_key(claim, first, last, time)
            .await
            .map_err(|e| classify(e, UniqueKey::Idempotency))?;
    }
    for claim in &append.unique_claims {
        writer
            .insert_claim(claim, first)
            .await
            .map_err(|e| classify(e, UniqueKey::Claim(claim)))?;
    }
    if let Some(credential) = &append.credential {
        writer
            .upsert_credential(credential, first)
            .await
            .map_err(|e| classify(e, UniqueKey::Claim(&credential.principal_id)))?;
    }
    let stored = stamp(append, first, recorded_at);
    for event in &stored {
        writer
            .insert_event(event, time)
            .await
            .map_err(|e| classify(e, UniqueKey::StreamVersion(&event.stream_id)))?;
        let openings: Vec<_> = event.openings.iter().map(|o| (event, o)).collect();
        if !openings.is_empty() {
            writer
                .insert_openings(&openings)
                .await
                .map_err(ClassifiedError::Failed)?;
        }
    }
    if let Some(key) = &append.webhook_key {
        writer
            .insert_webhook_key(key, first)
            .await
            .map_err(ClassifiedError::Failed)?;
    }
    if !append.tracking.is_empty() {
        let rows: Vec<_> = append.tracking.iter().collect();
        writer
            .insert_tracking(&rows)
            .await
            .map_err(|e| classify(e, UniqueKey::Claim(TRACKING_UPDATE_CLAIM)))?;
    }
    if !append.outbox.is_empty() {
        let rows: Vec<_> = append
            .outbox
            .iter()
            .map(|m| (m, caused_at(first, m)))
            .collect();
        writer
            .insert_outbox(&rows)
            .await
            .map_err(ClassifiedError::Failed)?;
    }
    if let Some(erasure) = &append.erasure {
        writer
            .erase(erasure, first)
            .await
            .map_err(ClassifiedError::Failed)?;
    }
    Ok(stored)
}

/// The claim a refused tracking update names: the same update (shipment, time and status)
/// was kept by another append first.
pub const TRACKING_UPDATE_CLAIM: &str = "tracking_update";

/// Where a message is queued: at the event of its append it names, `first` the append's first.
fn caused_at(first: Position, message: &crate::event::OutboxMessage) -> Position {
    Position::new(first.get() + message.cause as u64)
}

/// A position, index or size as SQL's signed 64-bit integer.
pub(crate) fn sql_index(i: u64) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Erasure, OpenedField, OutboxMessage, TrackingUpdateRow, WebhookKeyRow};

    /// An append of `events` events, with an idempotency key and a unique claim.
    fn append(events: usize) -> Append {
        let mut append = Append::for_test("s", 1);
        append.events = vec![append.events[0].clone(); events];
        append.idempotency = Some(IdempotencyClaim {
            scope: "scope".to_owned(),
            key: "key".to_owned(),
            fingerprint: "f".to_owned(),
        });
        append
    }

    /// After another writer moved the head, a writer commits the general way for a while,
    /// then tries the one-call commit again.
    #[test]
    fn a_moved_head_turns_the_one_call_commit_off_for_a_while() {
        let mut head = LastHead::default();
        assert_eq!(head.expected_fence(), None);
        head.set_fence(Some(-1));
        assert_eq!(head.expected_fence(), Some(-1));
        head.head_moved();
        for _ in 0..AFTER_A_MOVED_HEAD {
            assert_eq!(head.expected_fence(), None);
            head.set_fence(Some(-1));
        }
        assert_eq!(head.expected_fence(), Some(-1));
    }

    /// Everything the one-call commit does not write sends its batch the general way: a
    /// batch it took would lose those rows.
    #[test]
    fn only_what_the_call_writes_takes_the_one_call_commit() {
        assert!(is_plain(
            &[append(1), append(WHOLE_EVENTS - 1)],
            WHOLE_EVENTS
        ));
        assert!(
            !is_plain(&[append(1), append(WHOLE_EVENTS)], WHOLE_EVENTS),
            "too many events"
        );
        fn text(s: &str) -> String {
            s.to_owned()
        }
        let others: [fn(&mut Append); 6] = [
            |a| {
                a.credential = Some(Credential {
                    principal_id: text("p"),
                    token_sha256: text("d"),
                })
            },
            |a| {
                a.webhook_key = Some(WebhookKeyRow {
                    endpoint_id: text("e"),
                    public_key: text("k"),
                    secret: text("s"),
                })
            },
            |a| {
                a.outbox.push(OutboxMessage {
                    message_id: text("m"),
                    endpoint_id: text("e"),
                    event_type: text("consent.granted"),
                    occurred_at: text("2026-12-05T00:00:00Z"),
                    data: text("{}"),
                    cause: 0,
                    shipment_id: None,
                })
            },
            |a| {
                a.tracking.push(TrackingUpdateRow {
                    update_id: text("u"),
                    shipment_id: text("s"),
                    status: text("in_transit"),
                    occurred_at: text("2026-12-05T00:00:00.000000Z"),
                    received_at: 0,
                    details: text("{}"),
                })
            },
            |a| a.erasure = Some(Erasure::default()),
            |a| {
                a.events[0].openings.push(OpenedField {
                    pointer: text("/payload/x"),
                    value: text("v"),
                    salt: text("s"),
                })
            },
        ];
        for (i, other) in others.iter().enumerate() {
            let mut second = append(1);
            other(&mut second);
            let batch = [append(1), second];
            // Openings, messages and tracking updates are written by the call too.
            let written_beside = matches!(i, 2 | 3 | 5);
            assert_eq!(is_plain(&batch, WHOLE_EVENTS), written_beside, "case {i}");
        }
    }
}
