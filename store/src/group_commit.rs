//! Group commit: one writer task owns the write connection, gathers every append that is
//! waiting when it becomes free into one transaction with one fsync, and answers each caller
//! only after that transaction is durable (SPEC §5.1). Under load the batch grows by itself;
//! when idle a lone append commits at once, so latency stays one fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_ledger_audit::leaf::LeafHead;
use consent_ledger_audit::tree::Frontier;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::StoreError;
use crate::event::{Append, Position, StoredEvent};
use crate::postgres;
use crate::write_path::{announce, commit_batch, AppendResult, BatchOutcome};

/// Told of every committed batch by the writer, after it is durable and before any of its
/// callers is answered. The read side applies the events here, so that a 2xx for a revocation
/// means this process's decider already denies through that consent (SPEC §5.2).
pub trait CommitHook: Send + Sync {
    /// The events of one committed batch, in log order.
    fn committed(&self, events: &mut dyn Iterator<Item = &StoredEvent>);
}

/// Where the writer finds its hook; set once, after the read side that implements it exists.
pub(crate) type HookSlot = Arc<std::sync::OnceLock<Arc<dyn CommitHook>>>;

/// What the writer announces after each commit that wrote something: the log's new size, and
/// the same size again when the commit queued webhook messages.
#[derive(Clone)]
pub(crate) struct Announced {
    /// Every commit of an event.
    pub(crate) committed: Arc<watch::Sender<Position>>,
    /// Every commit that queued a webhook message (on PostgreSQL the same sender as
    /// `committed`: other processes' commits are announced without saying what they queued).
    pub(crate) outbox: Arc<watch::Sender<Position>>,
}

/// Appends taken into one transaction at most. Bounds the time one batch holds the lock.
const MAX_BATCH: usize = 4096;
/// The longest a batch waits for the callers the last batch answered (PostgreSQL only).
const SIBLINGS_WINDOW: Duration = Duration::from_micros(100);
/// Batches committed without waiting for the last one's callers after they did not all come
/// back within [`SIBLINGS_WINDOW`].
const UNWAITED_AFTER_A_MISS: u32 = 16;
/// Appends that may wait for the writer before callers are slowed down (back-pressure).
const QUEUE_DEPTH: usize = 16 * 1024;

struct Job {
    append: Append,
    /// Its events' leaf hashes, begun by the caller ([`LeafHead`]).
    heads: Vec<LeafHead>,
    reply: oneshot::Sender<AppendResult>,
}

/// The handle callers append through. Dropping the last handle lets the writer finish what is
/// queued and stop, which is how shutdown flushes the group commit.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
}

/// Counters of the writer, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed (each one fsync).
    pub batches: AtomicU64,
    /// Appends committed.
    pub appends: AtomicU64,
    /// Events committed.
    pub events: AtomicU64,
    /// Appends refused (conflict, claim, idempotency key, stale decision).
    pub refused: AtomicU64,
    /// Batches that failed as a whole (store unavailable); nothing of them was written.
    pub failed_batches: AtomicU64,
    /// Webhook messages queued (outbox rows committed).
    pub outbox: AtomicU64,
}

/// The write connection of one backend. Gathering appends into batches, committing them
/// ([`crate::write_path`]) and answering them is the same for both; only the SQL each step
/// runs differs.
pub(crate) enum WriteConnection {
    // Both boxed: the SQLite writer keeps its one call's prepared statements, the PostgreSQL
    // writer the connect options it reconnects with, and the connection moves with its task.
    Sqlite(Box<crate::sqlite::Writer>),
    Postgres(Box<postgres::Writer>),
}

impl WriteConnection {
    /// How long the writer may wait, once a batch has begun, for the callers the last batch
    /// answered (see [`gather_siblings`]); `None` where it never waits.
    ///
    /// PostgreSQL's commit is a round trip and the server's WAL flush (0.5 ms on this
    /// project's machines), and its writer is a task on the runtime its callers run on: a
    /// caller answered comes back within tens of microseconds, so waiting for it makes one
    /// commit of what would be two. SQLite's writer has its thread to itself and its callers
    /// (HTTP requests, mostly) come back from the network: it never waits.
    fn siblings_window(&self) -> Option<Duration> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(_) => Some(SIBLINGS_WINDOW),
        }
    }

    async fn commit_batch(
        &mut self,
        batch: &[Append],
        heads: &[Vec<LeafHead>],
        frontier: &mut Option<Frontier>,
    ) -> BatchOutcome {
        match self {
            Self::Sqlite(conn) => commit_batch(conn.as_mut(), batch, heads, frontier).await,
            Self::Postgres(writer) => commit_batch(writer.as_mut(), batch, heads, frontier).await,
        }
    }
}

impl GroupCommit {
    /// Starts the writer; it announces each committed batch's new log size on `committed`.
    ///
    /// On SQLite the writer runs on a thread of its own ([`COMMIT_THREAD`]) with a
    /// single-threaded runtime: it waits on SQLite's worker thread three times a batch, and on
    /// the shared runtime each wait parked a worker and each answer woke one (and often the
    /// other, to steal it), which took half that runtime's CPU under single decisions
    /// (BENCHMARKS.md, "Where a decision's CPU goes"). On PostgreSQL the connection's socket
    /// belongs to the runtime that opened it, so the writer is a task there. Fails where the
    /// system gives no thread: the store then does not open.
    pub(crate) fn spawn(
        conn: WriteConnection,
        hook: HookSlot,
        announced: Announced,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        let own_thread = matches!(conn, WriteConnection::Sqlite(_));
        let writer = run(queue, conn, hook, announced, stats.clone());
        if own_thread {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(COMMIT_THREAD.to_owned())
                .spawn(move || runtime.block_on(writer))?;
        } else {
            tokio::spawn(writer);
        }
        Ok(Self { jobs, stats })
    }

    pub(crate) fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Appends atomically; returns once the events are fsynced, with their positions.
    pub(crate) async fn append(&self, append: Append) -> AppendResult {
        let (reply, answer) = oneshot::channel();
        // Begun here, on the caller's thread, so that the commit's one thread only finishes
        // each hash over the fields it stamps.
        let heads = append
            .events
            .iter()
            .map(|e| LeafHead::new(&append.provenance.actor, &e.event_type, e.payload.as_str()))
            .collect();
        self.jobs
            .send(Job {
                append,
                heads,
                reply,
            })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }
}

/// The name of the SQLite writer's thread, as `/proc/self/task/*/comm` shows it.
const COMMIT_THREAD: &str = "log-commit";

#[tracing::instrument(skip_all)]
async fn run(
    mut queue: mpsc::Receiver<Job>,
    mut conn: WriteConnection,
    hook: HookSlot,
    announced: Announced,
    stats: Arc<WriterStats>,
) {
    // The Merkle tree's right edge, kept between batches (loaded on the first one).
    let mut frontier = None;
    let mut appends = Vec::with_capacity(MAX_BATCH);
    let mut heads = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    let window = conn.siblings_window();
    // Callers that may come back for the next batch: those the last one answered and those
    // that were already waiting when it was answered.
    let mut expected = 0;
    // Batches left to commit without waiting, after a wait the callers did not fill.
    let mut unwaited = 0;
    while let Some(first) = queue.recv().await {
        let mut batch = Batch {
            appends: &mut appends,
            heads: &mut heads,
            replies: &mut replies,
        };
        batch.push(first);
        batch.drain(&mut queue);
        if let Some(window) = window {
            if unwaited > 0 {
                unwaited -= 1;
            } else if !batch.gather_siblings(&mut queue, expected, window).await {
                unwaited = UNWAITED_AFTER_A_MISS;
            }
        }
        let outcome = conn.commit_batch(&appends, &heads, &mut frontier).await;
        if let BatchOutcome::Done(results) = &outcome {
            let mut events = results.iter().filter_map(|r| r.as_ref().ok()).flatten();
            if let Some(hook) = hook.get() {
                hook.committed(&mut events.clone());
            }
            if let Some(last) = events.next_back() {
                let size = last.position.next();
                announce(&announced.committed, size);
                let queued = appends
                    .iter()
                    .zip(results)
                    .any(|(append, r)| r.is_ok() && !append.outbox.is_empty());
                if queued {
                    announce(&announced.outbox, size);
                }
            }
        }
        count(&stats, &appends, &outcome);
        expected = appends.len() + queue.len();
        answer(outcome, replies.drain(..));
        appends.clear();
        heads.clear();
    }
    tracing::debug!("group commit writer stopped: every queued append is answered");
}

/// The batch being gathered.
struct Batch<'a> {
    appends: &'a mut Vec<Append>,
    heads: &'a mut Vec<Vec<LeafHead>>,
    replies: &'a mut Vec<oneshot::Sender<AppendResult>>,
}

impl Batch<'_> {
    fn push(&mut self, job: Job) {
        self.appends.push(job.append);
        self.heads.push(job.heads);
        self.replies.push(job.reply);
    }

    /// Takes every append waiting, up to [`MAX_BATCH`].
    fn drain(&mut self, queue: &mut mpsc::Receiver<Job>) {
        while self.appends.len() < MAX_BATCH {
            let Ok(job) = queue.try_recv() else { break };
            self.push(job);
        }
    }

    /// Waits, at most `window`, until the batch holds the `expected` callers of the last one.
    ///
    /// A group commit whose callers each wait for their answer before appending again splits
    /// them in two: those answered by one commit come back while the next one, which holds the
    /// others, is under way, so every commit carries half of them (4.9 grants a transaction
    /// for 8 clients on PostgreSQL). Waiting for the callers just answered — they are already
    /// running — joins the halves again, as PostgreSQL's own `commit_delay` with
    /// `commit_siblings` does for its WAL flush. A lone caller never waits (the one it expects
    /// is itself), and neither does a batch that is already as large as the last. Returns
    /// whether the expected callers came: callers that come back slower than the window
    /// (over the network) are not waited for again for a while ([`UNWAITED_AFTER_A_MISS`]).
    async fn gather_siblings(
        &mut self,
        queue: &mut mpsc::Receiver<Job>,
        expected: usize,
        window: Duration,
    ) -> bool {
        let target = expected.min(MAX_BATCH);
        let started = Instant::now();
        while self.appends.len() < target {
            if started.elapsed() >= window {
                return false;
            }
            // The callers run on this runtime's workers: yielding lets them, where a timer
            // (a millisecond at the least) would wait far past the window.
            tokio::task::yield_now().await;
            self.drain(queue);
        }
        true
    }
}

fn count(stats: &WriterStats, appends: &[Append], outcome: &BatchOutcome) {
    match outcome {
        BatchOutcome::Done(results) => {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            for (append, r) in appends.iter().zip(results) {
                match r {
                    Ok(events) => {
                        stats.appends.fetch_add(1, Ordering::Relaxed);
                        stats
                            .outbox
                            .fetch_add(append.outbox.len() as u64, Ordering::Relaxed);
                        stats
                            .events
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        BatchOutcome::Failed(_) => {
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn answer(outcome: BatchOutcome, replies: impl Iterator<Item = oneshot::Sender<AppendResult>>) {
    match outcome {
        BatchOutcome::Done(results) => {
            for (reply, result) in replies.zip(results) {
                // A caller that went away (client disconnect) still had its append committed.
                let _ = reply.send(result);
            }
        }
        BatchOutcome::Failed(err) => {
            tracing::error!(error = %err, "group commit failed; nothing of the batch was written");
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(err.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u64) -> Job {
        let (reply, _answer) = oneshot::channel();
        Job {
            append: Append::for_test("gathered", n),
            heads: Vec::new(),
            reply,
        }
    }

    /// A batch begun with one append, and the queue its writer gathers from.
    struct Gathered {
        appends: Vec<Append>,
        heads: Vec<Vec<LeafHead>>,
        replies: Vec<oneshot::Sender<AppendResult>>,
        jobs: mpsc::Sender<Job>,
        queue: mpsc::Receiver<Job>,
    }

    impl Gathered {
        fn begun() -> Self {
            let (jobs, queue) = mpsc::channel(16);
            let mut gathered = Self {
                appends: Vec::new(),
                heads: Vec::new(),
                replies: Vec::new(),
                jobs,
                queue,
            };
            gathered.batch().0.push(job(1));
            gathered
        }

        fn batch(&mut self) -> (Batch<'_>, &mut mpsc::Receiver<Job>) {
            let batch = Batch {
                appends: &mut self.appends,
                heads: &mut self.heads,
                replies: &mut self.replies,
            };
            (batch, &mut self.queue)
        }

        /// A caller that appends again once the writer lets its task run.
        fn coming_back(&self, n: u64) {
            let jobs = self.jobs.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let _ = jobs.send(job(n)).await;
            });
        }

        /// Whether the expected callers came, and how long it waited.
        async fn gather(&mut self, expected: usize, window: Duration) -> (bool, Duration) {
            let started = Instant::now();
            let (mut batch, queue) = self.batch();
            let came = batch.gather_siblings(queue, expected, window).await;
            (came, started.elapsed())
        }
    }

    // On one thread, the callers' tasks run only when the writer yields: what the window
    // waits for is exactly what they append.
    #[tokio::test(flavor = "current_thread")]
    async fn callers_that_come_back_while_the_writer_waits_join_its_batch() {
        let mut gathered = Gathered::begun();
        for n in 2..=8 {
            gathered.coming_back(n);
        }
        let window = Duration::from_secs(5);
        let (came, waited) = gathered.gather(8, window).await;
        assert!(came);
        assert_eq!(gathered.appends.len(), 8);
        assert!(waited < window, "it stops once they are all in");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_as_large_as_the_last_does_not_wait() {
        let mut gathered = Gathered::begun();
        gathered.coming_back(2);
        let window = Duration::from_secs(5);
        // A lone caller expects itself; a batch past what is expected takes no more.
        for expected in [1, 0] {
            let (came, waited) = gathered.gather(expected, window).await;
            assert!(came);
            assert!(waited < window);
            let held = gathered.appends.len();
            assert_eq!(held, 1, "it did not yield to the other caller");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn callers_that_do_not_come_back_are_waited_for_one_window_only() {
        let mut gathered = Gathered::begun();
        gathered.coming_back(2);
        let window = Duration::from_millis(20);
        let (came, waited) = gathered.gather(4, window).await;
        assert!(!came, "two of the four expected never came");
        assert_eq!(
            gathered.appends.len(),
            2,
            "the one that came is in the batch"
        );
        assert!(waited >= window, "waited {waited:?}");
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    }
}
