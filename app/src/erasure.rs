//! Erasure and retention of personal data (SPEC §12, docs/adr/0008): one recorded
//! `PersonalDataErased` event whose commit deletes the openings of the shipments it names
//! (their tracking numbers and recipient references), the free texts of consents and requests
//! scoped to them, and the unique claims on their numbers; then the bytes leave every file
//! ([`scrub`]). Every proof stands: no leaf changes.
//!
//! Path: `erase_shipment` / `erase_subject` / [`sweep_retention`] → [`erase`] → one append
//! (the deletes in its transaction) → the read model forgets the numbers (commit hook) →
//! [`scrub`] in the background: audit file blanked, WAL checkpoints, snapshot rewritten.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use consent_ledger_domain::erasure::{ErasureCause, ErasureEvent, ERASURE_STREAM};
use consent_ledger_domain::personal::Personal;
use consent_ledger_domain::shipment::ShipmentEvent;
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    CarrierCode, Reason, RecipientRef, Role, ShipmentId, TrackingNumber,
};
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::{
    subject_digest, Append, Erasure, Guard, NewEvent, Position, StoredEvent,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{AppError, ERASED_CLAIM};
use crate::shipments::tracking_claim;
use crate::state::AppState;
use crate::write::{self, Answer, WriteContext};

/// Who may erase: the carrier's privacy officer, and admins (SPEC §12).
pub const ERASERS: &[Role] = &[Role::PrivacyOfficer, Role::Admin];

/// How long the clean-up after an erasure may take: SPEC §12 gives 60 s for the bytes to leave
/// every file.
pub const SCRUB_WITHIN: Duration = Duration::from_secs(50);

/// Shipments per `PersonalDataErased` event of a retention sweep.
pub const RETENTION_BATCH: usize = 500;

/// `{"reason"}`: why a shipment's personal data is erased.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseShipment {
    /// Why (e.g. the Art. 17 request it answers). Sealed in the log like every free text.
    #[serde(default)]
    #[schema(required = true, value_type = Reason)]
    pub reason: Option<Reason>,
}

/// `{"recipient_ref","reason"}`: erase every shipment of one data subject.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseSubject {
    #[serde(default)]
    #[schema(required = true, value_type = RecipientRef)]
    pub recipient_ref: Option<RecipientRef>,
    #[serde(default)]
    #[schema(required = true, value_type = Reason)]
    pub reason: Option<Reason>,
}

/// `{"position","shipments"}`: the erasure's record and how many shipments it erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    pub position: u64,
    pub shipments: usize,
}

impl Erased {
    fn of(events: &[StoredEvent]) -> Result<Self, AppError> {
        let event = events
            .last()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("an erasure recorded nothing")))?;
        let ErasureEvent::PersonalDataErased { shipments, .. } =
            event.decode().map_err(AppError::internal)?;
        Ok(Self {
            position: event.position.get(),
            shipments: shipments.len(),
        })
    }
}

fn required<T>(value: Option<T>, field: &str, detail: &str) -> Result<T, AppError> {
    value.ok_or_else(|| AppError::invalid(field, detail))
}

/// `POST /v1/shipments/{id}/erase`. A shipment unknown, or erased already, is not found.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn erase_shipment(
    state: &Arc<AppState>,
    caller: &Caller,
    id: ShipmentId,
    input: EraseShipment,
    context: WriteContext,
) -> Result<(Erased, Answer), AppError> {
    caller.require(ERASERS)?;
    let reason = required(input.reason, "reason", "say why the data is erased")?;
    let answer = write::record(
        state,
        context,
        |meta| async {
            let target = async || {
                let target = Target::of(state, &[id]).await?;
                Ok((!target.shipments.is_empty()).then_some(target))
            };
            erase_settled(state, target, ErasureCause::Shipment, reason, meta).await
        },
        |events, _| Erased::of(events),
    )
    .await?;
    spawn_scrub(state);
    Ok(answer)
}

/// `POST /v1/subjects/erase`: every shipment registered with the recipient reference. A
/// reference with no shipment left is answered `{"shipments":0}` and still recorded, so that a
/// later DSAR can say the request was carried out.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn erase_subject(
    state: &Arc<AppState>,
    caller: &Caller,
    input: EraseSubject,
    context: WriteContext,
) -> Result<(Erased, Answer), AppError> {
    caller.require(ERASERS)?;
    let subject = required(
        input.recipient_ref,
        "recipient_ref",
        "name the data subject's recipient reference",
    )?;
    let reason = required(input.reason, "reason", "say why the data is erased")?;
    let answer = write::record(
        state,
        context,
        |meta| async {
            let target = async || {
                let ids: Vec<ShipmentId> = state
                    .store
                    .recipient_shipments(subject.as_str())
                    .await?
                    .iter()
                    .filter_map(|id| ShipmentId::parse(id).ok())
                    .collect();
                let mut target = Target::of(state, &ids).await?;
                // The subject is recorded erased even when nothing of it is left, so that a
                // DSAR answers that the request was carried out.
                target.subjects.insert(subject_digest(subject.as_str()));
                Ok(Some(target))
            };
            erase_settled(state, target, ErasureCause::Subject, reason, meta).await
        },
        |events, _| Erased::of(events),
    )
    .await?;
    spawn_scrub(state);
    Ok(answer)
}

/// What one erasure deletes.
#[derive(Debug, Default)]
struct Target {
    shipments: Vec<ShipmentId>,
    claims: Vec<String>,
    subjects: BTreeSet<String>,
    /// The shipments' tracking numbers: denials of unknown parcels that recorded one are
    /// erased too.
    numbers: Vec<String>,
    /// Retention: its period.
    retention_days: Option<u32>,
    /// Retention: denials of unknown parcels recorded before this position lose their numbers.
    asked_before: Option<Position>,
}

/// Times an erasure recomputes what it erases after a concurrent one erased some of it.
const ATTEMPTS: usize = 5;

/// Records an erasure of what `target` finds (`None`: nothing to erase, not found). When a
/// concurrent erasure (another request, another node, retention) committed first on one of
/// the same shipments, the claim refuses this one whole, and it looks again: each shipment is
/// erased, and recorded, exactly once.
async fn erase_settled(
    state: &AppState,
    mut target: impl AsyncFnMut() -> Result<Option<Target>, AppError>,
    cause: ErasureCause,
    reason: Reason,
    meta: CommandMeta,
) -> Result<Vec<StoredEvent>, AppError> {
    for _ in 0..ATTEMPTS {
        let Some(found) = target().await? else {
            return Err(AppError::not_found());
        };
        match erase(state, found, cause, reason.clone(), meta.clone()).await {
            Err(AppError::Conflict {
                slug: "already-erased",
                ..
            }) => continue,
            other => return other,
        }
    }
    Err(AppError::conflict(
        "already-erased",
        "concurrent erasures kept erasing the same shipments; retry",
    ))
}

impl Target {
    /// The shipments of `ids` whose personal fields are still kept, with their claims and the
    /// digests of their recipient references: one look-up of their openings, the carriers from
    /// the read model. A shipment registered before commitments (its leaf holds the values)
    /// has no openings: its registration is read instead, and what can be deleted is.
    async fn of(state: &AppState, ids: &[ShipmentId]) -> Result<Self, AppError> {
        let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut tracking: HashMap<String, String> = HashMap::new();
        let mut subjects: HashMap<String, String> = HashMap::new();
        for (id, pointer, value) in state.store.shipment_openings(&keys).await? {
            match pointer.as_str() {
                TRACKING_POINTER => tracking.insert(id, value),
                RECIPIENT_POINTER => subjects.insert(id, value),
                _ => None,
            };
        }
        let mut target = Self::default();
        for (id, key) in ids.iter().zip(&keys) {
            let found = match tracking.remove(key) {
                Some(number) => {
                    let carrier = state.projector.read().access.shipment_carrier(*id).cloned();
                    let number = TrackingNumber::parse(number).map_err(AppError::internal)?;
                    carrier.map(|c| (c, number, subjects.remove(key)))
                }
                None => legacy(state, key).await?,
            };
            let Some((carrier, number, subject)) = found else {
                continue;
            };
            target.claims.push(tracking_claim(&carrier, &number));
            target.numbers.push(number.as_str().to_owned());
            if let Some(subject) = subject {
                target.subjects.insert(subject_digest(&subject));
            }
            target.shipments.push(*id);
        }
        Ok(target)
    }
}

const TRACKING_POINTER: &str = "/payload/ShipmentRegistered/tracking_number";
const RECIPIENT_POINTER: &str = "/payload/ShipmentRegistered/recipient_ref";

/// A shipment registered before commitments (schema version 1), whose leaf holds its values:
/// (carrier, tracking number, recipient reference) from its registration.
async fn legacy(
    state: &AppState,
    id: &str,
) -> Result<Option<(CarrierCode, TrackingNumber, Option<String>)>, AppError> {
    let stream = state.store.read_stream("shipment", id).await?;
    let Some(registration) = stream.first().filter(|e| e.schema_version < 2) else {
        return Ok(None);
    };
    let ShipmentEvent::ShipmentRegistered {
        carrier,
        tracking_number: Personal::Known(number),
        recipient_ref,
        ..
    } = registration.decode().map_err(AppError::internal)?
    else {
        return Ok(None);
    };
    let subject = recipient_ref
        .and_then(Personal::into_known)
        .map(|r| r.as_str().to_owned());
    Ok(Some((carrier, number, subject)))
}

/// Records one erasure of `target` and deletes what it names in the same commit.
async fn erase(
    state: &AppState,
    target: Target,
    cause: ErasureCause,
    reason: Reason,
    meta: CommandMeta,
) -> Result<Vec<StoredEvent>, AppError> {
    let erased: BTreeSet<ShipmentId> = target.shipments.iter().copied().collect();
    let (consents, requests) = {
        let model = state.projector.read();
        let scoped = |scope: &ConsentScope| match scope {
            ConsentScope::Shipments { shipment_ids } => {
                shipment_ids.iter().any(|s| erased.contains(s))
            }
            ConsentScope::Shipper { .. } => false,
        };
        let consents: Vec<_> = model
            .consents
            .values()
            .filter(|c| scoped(&c.scope))
            .map(|c| c.id)
            .collect();
        let requests: Vec<_> = model
            .requests
            .values()
            .filter(|r| scoped(&r.scope))
            .map(|r| r.id)
            .collect();
        (consents, requests)
    };
    // Every stream whose openings go. Tracking updates (SPEC §14) and queued delivery bodies
    // (§13) of these shipments are to be deleted in this same commit when they exist.
    let mut streams: Vec<(String, String)> = target
        .shipments
        .iter()
        .map(|id| ("shipment".to_owned(), id.to_string()))
        .collect();
    streams.extend(
        consents
            .iter()
            .map(|id| ("consent".to_owned(), id.to_string())),
    );
    streams.extend(
        requests
            .iter()
            .map(|id| ("consent_request".to_owned(), id.to_string())),
    );
    let denials = state.store.asked_positions(&target.numbers).await?;
    let claims = target
        .shipments
        .iter()
        .map(|id| format!("{ERASED_CLAIM}{id}"))
        .collect();
    let event = ErasureEvent::PersonalDataErased {
        cause,
        shipments: target.shipments,
        consents,
        requests,
        reason: reason.into(),
        denials: denials.iter().map(|p| p.get()).collect(),
        asked_before: target.asked_before.map(Position::get),
        retention_days: target.retention_days,
        erased_at: state.clock.now(),
    };
    let id = state.ids.new_id().to_string();
    let event =
        NewEvent::from_domain(&event, ERASURE_STREAM, &id, 1).map_err(AppError::internal)?;
    let events = state
        .store
        .append(Append {
            events: vec![event],
            provenance: meta.provenance,
            idempotency: meta.idempotency,
            unique_claims: claims,
            erasure: Some(Erasure {
                streams,
                claims: target.claims,
                subjects: target.subjects.into_iter().collect(),
                positions: denials,
                asked_before: target.asked_before,
            }),
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
            tracking: Vec::new(),
            guard: Guard::default(),
        })
        .await
        .map_err(AppError::from)?;
    state.metrics.erasures.fetch_add(1, Ordering::Relaxed);
    Ok(events)
}

/// Makes the erased bytes leave every file, in the background (SPEC §12: within 60 s): the
/// audit projection's erased rows are blanked (however far behind the log it is), both SQLite
/// files are checkpointed and their WALs truncated (PostgreSQL: the tables vacuumed), and the
/// read-model snapshot is rewritten without the erased index entries.
///
/// Erasures coalesce: while one clean-up waits to start, another erasure asks for nothing more
/// (the waiting one covers it), so a burst of erasures costs one clean-up running and at most
/// one waiting, never a queue of snapshot writes.
pub fn spawn_scrub(state: &Arc<AppState>) {
    if state.scrub_requested.swap(true, Ordering::AcqRel) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = scrub(&state).await {
            // Retried by the housekeeping loop within a second (e.g. a checkpoint kept busy by
            // a long reader): the 60 s of SPEC §12 are not left to the next erasure.
            state.scrub_failed.store(true, Ordering::Release);
            tracing::error!(error = %e, "cleaning up after an erasure failed; retrying");
        }
    });
}

/// See [`spawn_scrub`]; one at a time per node.
pub async fn scrub(state: &AppState) -> Result<(), AppError> {
    let _one = state.scrubbing.lock().await;
    // From here on, an erasure asks for a clean-up of its own: this one may have read past
    // what it commits.
    state.scrub_requested.store(false, Ordering::Release);
    // The erased rows of the audit projection are blanked now, not when it reaches the
    // erasure in log order: under a load it cannot keep up with, that is minutes away.
    state
        .gdpr
        .blank_unapplied_erasures()
        .await
        .map_err(AppError::internal)?;
    checkpoint_all(state).await?;
    state
        .projector
        .save_snapshot(&state.snapshot_path)
        .await
        .map_err(AppError::internal)?;
    // The snapshot write may have been the last thing in a WAL; nothing personal in it, but
    // a second checkpoint leaves the WALs empty for whoever looks.
    checkpoint_all(state).await
}

/// Checkpoints and truncates the store's WALs with the audit projection held still in this
/// process: a catch-up (a view's) that began its write while the projection's WAL was being
/// truncated would wait for the checkpoint while holding the read snapshot the checkpoint
/// waits for, both until a busy timeout.
async fn checkpoint_all(state: &AppState) -> Result<(), AppError> {
    let _still = state.gdpr.hold().await;
    Ok(state.store.scrub(SCRUB_WITHIN).await?)
}

/// Whether an access decision about `id` was recorded at or after `since` (the audit
/// projection, caught up before a sweep, answers).
async fn decided_since(
    state: &AppState,
    id: ShipmentId,
    since: DateTime<Utc>,
) -> Result<bool, AppError> {
    let filter = consent_ledger_store::gdpr::AccessFilter {
        shipment_id: Some(id.to_string()),
        from: Some(since.timestamp_micros()),
        ..Default::default()
    };
    Ok(!state.store.gdpr_access(&filter, None, 1).await?.is_empty())
}

/// One pass of retention (`serve --retention-days N`): erases, in recorded batches, every
/// shipment registered before `now - days` with no access decision since. Returns how many
/// shipments it erased.
#[tracing::instrument(level = "info", skip_all, fields(days = days))]
pub async fn sweep_retention(state: &Arc<AppState>, days: u32) -> Result<usize, AppError> {
    let cutoff: DateTime<Utc> = state.clock.now() - chrono::Duration::days(i64::from(days));
    state.gdpr.catch_up().await.map_err(AppError::internal)?;
    let before = state.store.first_recorded_since(cutoff).await?;
    let reason = Reason::parse(format!(
        "retention: no event about the shipment for more than {days} days (Art. 5(1)(e))"
    ))
    .map_err(AppError::internal)?;
    let mut after: Option<Position> = None;
    let mut erased = 0usize;
    loop {
        let candidates = state
            .store
            .unerased_shipments(after, before, u32::try_from(RETENTION_BATCH).unwrap_or(500))
            .await?;
        let Some(last) = candidates.last() else {
            break;
        };
        after = Some(last.0);
        let mut ids = Vec::with_capacity(candidates.len());
        for (_, id) in &candidates {
            let Ok(id) = ShipmentId::parse(id) else {
                continue;
            };
            if !decided_since(state, id, cutoff).await? {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            continue;
        }
        let mut target = Target::of(state, &ids).await?;
        target.retention_days = Some(days);
        let n = target.shipments.len();
        if n == 0 {
            continue;
        }
        let meta = CommandMeta::new("retention", state.ids.new_id().to_string());
        match erase(state, target, ErasureCause::Retention, reason.clone(), meta).await {
            Ok(_) => {}
            // Another node's sweep or an erasure request took some of the batch first: the
            // next sweep finds what is left.
            Err(AppError::Conflict {
                slug: "already-erased",
                ..
            }) => continue,
            Err(e) => return Err(e),
        }
        erased += n;
        state
            .metrics
            .retention_erased
            .fetch_add(n as u64, Ordering::Relaxed);
        tracing::info!(erased, "retention: erased a batch of shipments");
    }
    // Numbers asked for by denials of unknown parcels belong to no shipment: erased by age.
    let asked = state.store.asked_before(before).await?;
    if asked {
        let target = Target {
            retention_days: Some(days),
            asked_before: Some(before),
            ..Target::default()
        };
        let meta = CommandMeta::new("retention", state.ids.new_id().to_string());
        erase(state, target, ErasureCause::Retention, reason, meta).await?;
        tracing::info!("retention: erased the numbers of denials of unknown parcels");
    }
    if erased > 0 || asked {
        scrub(state).await?;
    }
    Ok(erased)
}
