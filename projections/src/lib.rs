//! # consent-ledger projections
//!
//! Read models derived from the global log alone, so they can always be rebuilt from it.
//!
//! # Layout
//! - [`model`]: the [`ReadModel`] the API lists and looks up (principals, consents,
//!   requests) and its `apply(event)`; it owns the decider index.
//! - [`decider`]: the compact in-memory index that answers access decisions (SPEC §3) and
//!   "who may see this shipment at time T".
//! - [`gdpr`]: the GDPR tables in the store (access decisions, shipments, daily
//!   counts), fed by catch-up from their own stored position, outside the group commit.
//! - [`snapshot`]: the model on disk with the position it reached, so a restart replays only
//!   what came after.
//! - [`Projector`]: applies what this process commits (the store's commit hook, before the
//!   writer answers) and catches up by reading the log from the model's own position, so an
//!   event committed by another process is applied too, in order; [`Projector::follow`] does
//!   so whenever the store announces another process's commit.
//!
//! Hot path: `POST /v1/decisions → Decider::decide (in memory, under a read lock) →
//! Store::append (group commit, restriction fence) → commit hook → response`.
//!
pub mod authorization;
pub mod decider;
pub mod gdpr;
pub mod model;
pub mod snapshot;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use consent_ledger_domain::values::{PartnerId, PrincipalId, ShipmentId, ShipperId};
use consent_ledger_domain::{Directory, PartnerFacts};
use consent_ledger_store::{CommitHook, Position, RawEvent, Store, StoreError, StoredEvent};

pub use model::{ApplyError, ReadModel};

/// Events read from the log per round trip while catching up.
const CATCH_UP_PAGE: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("log reader stopped: {0}")]
    Reader(String),
}

/// Keeps a [`ReadModel`] up to date with the log.
#[derive(Clone)]
pub struct Projector {
    store: Store,
    model: Arc<RwLock<ReadModel>>,
    // Serialises catch-ups so that events are applied once and in order.
    catching_up: Arc<tokio::sync::Mutex<()>>,
    // Set when the commit hook saw a gap: another process wrote, and only reading the log
    // brings the model up to date.
    behind: Arc<AtomicBool>,
}

impl Projector {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            model: Arc::default(),
            catching_up: Arc::default(),
            behind: Arc::new(AtomicBool::new(true)),
        }
    }

    /// True when events may have been committed that the model has not applied (another
    /// process wrote); [`Projector::catch_up`] clears it.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Admits a credential read from the credentials table (see
    /// [`ReadModel::admit_credential`]).
    pub fn admit_credential(&self, id: PrincipalId, token_sha256: &str, issued_at: u64) -> bool {
        self.model
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .admit_credential(id, token_sha256, issued_at)
    }

    /// Shared read access to the model. Hold it briefly: writers wait while it is held.
    pub fn read(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.model.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts from the snapshot at `path` if there is one that belongs to this log; returns
    /// the position it brought the model to (`None`: no usable snapshot, a full replay
    /// follows). Call before the first catch-up.
    pub async fn load_snapshot(&self, path: &Path) -> Result<Option<Position>, ProjectionError> {
        let owned = path.to_owned();
        let loaded = tokio::task::spawn_blocking(move || snapshot::read(&owned))
            .await
            .map_err(|e| ProjectionError::Snapshot(e.to_string()))?;
        let (model, last) = match loaded {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "snapshot unreadable; replaying the log instead");
                return Ok(None);
            }
        };
        let next = model.next_position();
        let in_log = match next.get().checked_sub(1) {
            None => None,
            Some(p) => self
                .store
                .read_range(Position::new(p), 1)
                .await?
                .into_iter()
                .next(),
        };
        let matches = match (&last, &in_log) {
            (None, None) => true,
            (Some(l), Some(e)) => {
                l.position == e.position.get()
                    && l.stream_type == e.stream_type
                    && l.stream_id == e.stream_id
                    && l.event_type == e.event_type
            }
            _ => false,
        };
        if !matches {
            tracing::warn!(path = %path.display(), "snapshot does not belong to this log; replaying the log instead");
            return Ok(None);
        }
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = model;
        Ok(Some(next))
    }

    /// Replaces the model, e.g. with one built by [`Projector::replay`].
    pub fn install(&self, model: ReadModel) {
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = model;
    }

    /// Writes a snapshot of the model to `path` (atomically). The model is frozen under the
    /// read lock; the file is written outside it.
    pub async fn save_snapshot(&self, path: &Path) -> Result<Position, ProjectionError> {
        let frozen =
            snapshot::freeze(&self.read()).map_err(|e| ProjectionError::Snapshot(e.to_string()))?;
        let next = frozen.next;
        let last = match next.checked_sub(1) {
            None => None,
            Some(p) => self
                .store
                .read_range(Position::new(p), 1)
                .await?
                .into_iter()
                .next()
                .map(|e| snapshot::LastEvent {
                    position: e.position.get(),
                    stream_type: e.stream_type,
                    stream_id: e.stream_id,
                    event_type: e.event_type,
                }),
        };
        let owned = path.to_owned();
        tokio::task::spawn_blocking(move || snapshot::write(&owned, frozen, last))
            .await
            .map_err(|e| ProjectionError::Snapshot(e.to_string()))?
            .map_err(|e| ProjectionError::Snapshot(e.to_string()))?;
        Ok(Position::new(next))
    }

    /// Builds a fresh model from the whole log, as `consent-ledger replay` does; `progress`
    /// is told the position reached after every page.
    pub async fn replay(
        store: &Store,
        mut progress: impl FnMut(Position),
    ) -> Result<ReadModel, ProjectionError> {
        // The log up to its size now; the events of the stream the model only counts stay in
        // SQLite's scan. The next page is read (on SQLite's thread and another runtime
        // worker) while this one is applied.
        let end = store.next_position().await?;
        let (pages, mut next_page) = tokio::sync::mpsc::channel(2);
        let reader = tokio::spawn(read_pages(store.clone(), end, pages));
        let mut model = ReadModel::default();
        while let Some(page) = next_page.recv().await {
            for event in &page? {
                model.skip_to(event.position);
                model.apply_raw(event)?;
            }
            progress(model.next_position());
        }
        reader
            .await
            .map_err(|e| ProjectionError::Reader(e.to_string()))?;
        model.skip_to(end);
        progress(end);
        Ok(model)
    }

    /// Applies every committed event the model has not seen; returns the model's next position.
    #[tracing::instrument(skip(self))]
    pub async fn catch_up(&self) -> Result<Position, ProjectionError> {
        let _one_at_a_time = self.catching_up.lock().await;
        self.behind.store(false, Ordering::Release);
        // Everything committed now; events of the stream the model only counts are passed
        // over in SQLite's scan.
        let end = self.store.next_position().await?;
        loop {
            let from = self.read().next_position();
            if from >= end {
                return Ok(from);
            }
            let events = self
                .store
                .read_range_except(from, end, CATCH_UP_PAGE, ReadModel::SKIPPED_STREAM)
                .await?;
            let mut model = self.model.write().unwrap_or_else(|p| p.into_inner());
            for event in &events {
                // The commit hook may have applied some of these meanwhile. The positions
                // between the model's and this event's are skipped-stream events: every other
                // event before this one was read, in order, and applied.
                if event.position >= model.next_position() {
                    model.skip_to(event.position);
                    model.apply_raw(event)?;
                }
            }
            if events.len() < CATCH_UP_PAGE as usize {
                model.skip_to(end);
                return Ok(model.next_position());
            }
        }
    }
}

impl Projector {
    /// Follows the log: catches up each time the store announces a size the model has not
    /// reached — on PostgreSQL, any process's commit (LISTEN/NOTIFY), so this node's read model
    /// trails another node's writes by about one round trip. This process's own commits are
    /// applied by the commit hook before they are announced, so they cost no read here. Runs
    /// until the task is aborted or the store is gone; a failed catch-up is retried at the next
    /// announcement (and by whoever else calls [`Projector::catch_up`]).
    pub async fn follow(&self, mut committed: tokio::sync::watch::Receiver<Position>) {
        loop {
            let announced = *committed.borrow_and_update();
            if self.read().next_position() < announced {
                if let Err(e) = self.catch_up().await {
                    tracing::warn!(error = %e, "following the log: catching up failed");
                }
            }
            if committed.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Sends the log's events before `end` that the model applies, page by page, until `end` or
/// until the receiver is gone.
async fn read_pages(
    store: Store,
    end: Position,
    pages: tokio::sync::mpsc::Sender<Result<Vec<RawEvent>, StoreError>>,
) {
    let mut from = Position::ZERO;
    loop {
        let page = store
            .read_range_except(from, end, CATCH_UP_PAGE, ReadModel::SKIPPED_STREAM)
            .await;
        let last = match &page {
            Ok(events) if events.len() == CATCH_UP_PAGE as usize => events.last(),
            _ => None,
        };
        let Some(last) = last.map(|e| e.position) else {
            let _ = pages.send(page).await;
            return;
        };
        from = last.next();
        if pages.send(page).await.is_err() {
            return;
        }
    }
}

/// Applies what this process commits, in the writer, before the writer answers: a caller
/// reads its own writes, and a revocation's 2xx means decisions here already see it.
impl CommitHook for Projector {
    fn committed(&self, events: &mut dyn Iterator<Item = &StoredEvent>) {
        let mut model = self.model.write().unwrap_or_else(|p| p.into_inner());
        for event in events {
            let next = model.next_position();
            if event.position < next {
                continue;
            }
            if event.position > next {
                // Another process committed in between; catch_up reads what is missing.
                self.behind.store(true, Ordering::Release);
                return;
            }
            if let Err(e) = model.apply(event) {
                tracing::error!(error = %e, "cannot apply a committed event; the read model stops here");
                self.behind.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// The domain's directory, answered from the current model.
impl Directory for Projector {
    fn partner(&self, id: PartnerId) -> Option<PartnerFacts> {
        self.read().partner_facts(id)
    }
    fn shipment_owner(&self, id: ShipmentId) -> Option<ShipperId> {
        self.read().shipment_owner(id)
    }
    fn is_shipper(&self, id: ShipperId) -> bool {
        self.read().is_shipper(id)
    }
}
