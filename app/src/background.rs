//! The background work of a running node (`serve`): the read model following other
//! processes' commits, snapshots, expiry of consent requests, pruning the rate limiters, the
//! GDPR projection following the log, checkpoints signed every N events or T seconds, and
//! retention (SPEC §12).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::approvals::expire_requests;
use crate::checkpoint::sign_checkpoint;
use crate::state::AppState;

/// Catches the read model up once a second (other processes' writes on SQLite, which announces
/// none; a missed announcement on PostgreSQL), writes snapshots, closes consent requests
/// whose time ran out (SPEC §3: expired after a configurable time), tells partners of
/// consents about to end or ended (SPEC §13), and prunes the rate limiters.
#[tracing::instrument(skip_all)]
pub async fn housekeeping(state: Arc<AppState>, snapshot: PathBuf, every: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut since_sweep = 0u32;
    let mut snapshot_at = state.projector.read().next_position().get();
    let mut erasures = state.projector.read().erasures;
    loop {
        tick.tick().await;
        // First, so that a store that cannot be read does not stop it: keys whose bucket has
        // refilled are forgotten, so the limiters hold only the keys seen in the last two seconds.
        state.rate_limits.prune();
        let applied = match state.projector.catch_up().await {
            Ok(applied) => applied.get(),
            Err(e) => {
                tracing::warn!(error = %e, "catching up the read model failed");
                continue;
            }
        };
        // An erasure recorded by any node: this node's files lose what it erased too.
        let seen = state.projector.read().erasures;
        let failed = state
            .scrub_failed
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        if seen != erasures || failed {
            erasures = seen;
            crate::erasure::spawn_scrub(&state);
        }
        // A snapshot every `every` events keeps a restart's replay short.
        if every > 0 && applied >= snapshot_at.saturating_add(every) {
            match state.projector.save_snapshot(&snapshot).await {
                Ok(at) => snapshot_at = at.get(),
                Err(e) => tracing::warn!(error = %e, "could not write the projection snapshot"),
            }
        }
        since_sweep += 1;
        if since_sweep >= 60 {
            since_sweep = 0;
            expire_requests(&state).await;
            crate::webhooks::expiry::notice_expiries(&state).await;
            crate::fanout::end_subscriptions(&state, state.clock.now()).await;
        }
    }
}

/// Keeps the GDPR tables following the log (docs/adr/0006): each second, whatever was
/// committed since is written in pages, each its own transaction, outside the group commit. The
/// GDPR views also catch up before answering, so this only keeps that step short.
#[tracing::instrument(skip_all)]
pub async fn gdpr_projection(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = state.gdpr.catch_up().await {
            tracing::warn!(error = %e, "catching up the GDPR projection failed");
        }
    }
}

/// A task on a thread of its own, with a runtime of its own, until told to stop: the thread
/// runs `run` with the receiving end of the stop signal, which fires when [`Worker::stop`] is
/// called or the worker is dropped.
pub struct Worker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts `run` on a thread named `name`.
    pub fn spawn(
        name: &str,
        run: impl FnOnce(tokio::sync::oneshot::Receiver<()>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Tells the task to stop and waits for its thread.
    pub fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// [`gdpr_projection`] on a thread of its own (`gdpr-follower`), at the projection writer's
/// lower CPU priority: turning each page of events into rows (decoding a page of 5,000 takes
/// about 15 ms) then runs beside the decision path instead of on its runtime's workers, where
/// it held up the decisions queued behind it (BENCHMARKS.md, "The GDPR projection behind the
/// decisions"). Dropping it (or [`GdprFollower::stop`]) stops it; a catch-up in progress is
/// abandoned (its transaction rolled back, the next one writes its rows).
///
/// On PostgreSQL the database server does the projection's work, and the pool it shares with
/// the decisions holds connections bound to the runtime that opened them (one opened on a
/// runtime that has stopped cannot be used again): there it follows as a task of the caller's
/// runtime, as before.
pub struct GdprFollower(Follower);

enum Follower {
    Thread(Worker),
    Task(tokio::task::JoinHandle<()>),
}

impl GdprFollower {
    /// Starts following (on PostgreSQL, inside a Tokio runtime).
    pub fn spawn(state: Arc<AppState>) -> std::io::Result<Self> {
        if !state.store.is_embedded() {
            return Ok(Self(Follower::Task(tokio::spawn(gdpr_projection(state)))));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Worker::spawn("gdpr-follower", move |stopped| {
            consent_ledger_store::lower_thread_priority();
            runtime.block_on(async {
                tokio::select! {
                    () = gdpr_projection(state) => {}
                    _ = stopped => {}
                }
            });
        })
        .map(|worker| Self(Follower::Thread(worker)))
    }

    /// Stops following and waits for the thread.
    pub fn stop(self) {
        match self.0 {
            Follower::Thread(worker) => worker.stop(),
            Follower::Task(task) => task.abort(),
        }
    }
}

/// Signs a checkpoint every `events` events, or after `every` with any new event (SPEC §6).
#[tracing::instrument(skip_all)]
pub async fn checkpoints(state: Arc<AppState>, events: u64, every: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = match state.store.latest_checkpoint().await {
        Ok(found) => found.map_or(0, |(size, _)| size),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the newest checkpoint");
            0
        }
    };
    let mut signed_at = std::time::Instant::now();
    loop {
        tick.tick().await;
        let size = state.projector.read().next_position().get();
        let due = size > last
            && (size >= last.saturating_add(events.max(1)) || signed_at.elapsed() >= every);
        if !due {
            continue;
        }
        match sign_checkpoint(&state).await {
            Ok((size, _)) => {
                last = size;
                signed_at = std::time::Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "could not sign a checkpoint"),
        }
    }
}

/// Retention (`serve --retention-days N`, SPEC §12): every `every`, erases the personal data of
/// every shipment with no event for more than `days` days, in recorded batches, with progress
/// in the log lines and `consent_ledger_retention_erased_shipments_total`.
#[tracing::instrument(skip_all, fields(days = days))]
pub async fn retention(state: Arc<AppState>, days: u32, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        match crate::erasure::sweep_retention(&state, days).await {
            Ok(0) => tracing::debug!("retention: nothing older than the period"),
            Ok(erased) => tracing::info!(
                erased,
                seconds = started.elapsed().as_secs_f64(),
                "retention: sweep done"
            ),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; retried next time"),
        }
    }
}

/// Tracking updates' retention (`serve --tracking-retention-days N`, SPEC §14): every `every`,
/// deletes those received more than N days ago.
#[tracing::instrument(skip_all)]
pub async fn tracking_retention(state: Arc<AppState>, days: u32, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match crate::tracking::sweep_retention(&state, days).await {
            Ok(0) => tracing::debug!("tracking retention: nothing older than the period"),
            Ok(deleted) => tracing::info!(deleted, days, "tracking retention: updates deleted"),
            Err(e) => tracing::warn!(error = %e, "tracking retention failed; retried next time"),
        }
    }
}
