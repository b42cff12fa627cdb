//! The GDPR projection (issue 6, docs/adr/0006): access decisions and shipment
//! registrations, copied from the log into indexed tables of the store, so that the GDPR
//! views (`/v1/audit/access`, `dsar`, `ropa`) are index look-ups.
//!
//! It is fed by catch-up alone — reading the log from the position the projection stored, in
//! pages, each page written in its own transaction — never by the decision group commit, so
//! the decision path does not wait for it. Several processes may catch up at once: a page is
//! written only if the stored position is still the one it was read from.

use std::sync::Arc;

use consent_ledger_domain::access::{AccessEvent, Channel, ACCESS_STREAM};
use consent_ledger_domain::erasure::{ErasureEvent, ERASURE_STREAM};
use consent_ledger_domain::personal::Personal;
use consent_ledger_domain::shipment::ShipmentEvent;
use consent_ledger_store::gdpr::{GdprAccess, GdprBatch, GdprShipment};
use consent_ledger_store::{DecisionScan, Position, Store, StoredEvent};

use crate::ProjectionError;

/// Events read (and written as one transaction) per catch-up step.
const PAGE: u32 = 5_000;

/// How the projection reads the log and writes its rows: following the log in `serve`,
/// through its own connections at the lowest CPU priority, beside the decisions
/// ([`Store::read_range_behind`], [`Store::gdpr_apply`]); when it rebuilds offline
/// (`replay --audit`), reading through the store's read connections ([`Store::read_pages`]);
/// for a request that waits on it (a view asked while it is behind), reading and writing
/// through connections at the decisions' priority ([`Store::gdpr_apply_now`]).
#[derive(Clone, Copy)]
enum Connections {
    Behind,
    Bulk,
    Now,
}

/// Keeps the store's GDPR tables up to date with the log.
#[derive(Clone)]
pub struct GdprProjector {
    store: Store,
    // One catch-up at a time in this process (others are fenced by the stored position).
    catching_up: Arc<tokio::sync::Mutex<()>>,
}

impl GdprProjector {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            catching_up: Arc::default(),
        }
    }

    /// Applies every event committed now, at the lowest CPU priority, as the projection
    /// follows the log in the background; returns the position applied up to.
    pub async fn catch_up(&self) -> Result<Position, ProjectionError> {
        let end = self.store.next_position().await?;
        self.apply_until(end, Connections::Behind).await
    }

    /// Empties the audit tables and builds them again from the whole log, reporting the
    /// position reached after each step; returns the position applied up to.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(Position),
    ) -> Result<Position, ProjectionError> {
        {
            let _one_at_a_time = self.catching_up.lock().await;
            self.store.gdpr_reset().await?;
        }
        let end = self.store.next_position().await?;
        let mut reached = Position::new(0);
        while reached < end {
            let step = Position::new(
                reached
                    .get()
                    .saturating_add(u64::from(PAGE) * 10)
                    .min(end.get()),
            );
            let before = reached;
            reached = self.apply_until(step, Connections::Bulk).await?;
            progress(reached);
            if reached <= before {
                break;
            }
        }
        Ok(reached)
    }

    /// Holds the projection still in this process (no page applied) until the guard drops:
    /// for a reader that reads its position and then what it holds, and must not see a page
    /// applied in between (another process's catch-up is fenced by the stored position only).
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.catching_up.lock().await
    }

    /// Blanks at once what the erasures the projection has not applied yet erased from the rows
    /// it holds (SPEC §12: within 60 s of an erasure no file holds an erased value), where
    /// catching up to them would take as long as its lag under load. Taken between two of its
    /// pages (one catch-up at a time in this process): no page read before an erasure deleted
    /// its openings is written after the blanking, and the pages after it read the events
    /// without them. Applying the erasures in log order later blanks the same rows again.
    #[tracing::instrument(skip(self))]
    pub async fn blank_unapplied_erasures(&self) -> Result<(), ProjectionError> {
        let _one_at_a_time = self.catching_up.lock().await;
        let from = self.store.gdpr_position().await?;
        let to = self.store.next_position().await?;
        let erasures = self.erasures_between(from, to, false).await?;
        if erasures.erased.is_empty()
            && erasures.erased_positions.is_empty()
            && erasures.asked_before.is_none()
        {
            return Ok(());
        }
        Ok(self.store.gdpr_blank(&erasures).await?)
    }

    /// The erasures recorded at positions `from..to`, as the projection applies them (its
    /// batch's `erased`, `erased_positions` and `asked_before`), and with `registrations` the
    /// shipments registered there (its `shipments`), read in the same scan.
    pub async fn erasures_between(
        &self,
        from: Position,
        to: Position,
        registrations: bool,
    ) -> Result<GdprBatch, ProjectionError> {
        let scan = DecisionScan {
            also_types: if registrations {
                vec!["shipment".to_owned()]
            } else {
                Vec::new()
            },
            ..DecisionScan::of(ERASURE_STREAM)
        };
        let mut events = Vec::new();
        self.store
            .scan_decisions(from.get()..to.get(), &scan, |found| {
                events.extend(found);
                true
            })
            .await?;
        rows(&events)
    }

    /// Applies events until at least every one before `target` is in (SPEC §5.2's
    /// `at_least_as_fresh`); returns the position applied up to. For a request that waits on
    /// it: at the decisions' CPU priority, where [`GdprProjector::catch_up`], which follows the
    /// log in the background, runs at the lowest (docs/adr/0006).
    #[tracing::instrument(skip(self))]
    pub async fn catch_up_to(&self, target: Position) -> Result<Position, ProjectionError> {
        self.apply_until(target, Connections::Now).await
    }

    /// [`GdprProjector::catch_up_to`], reading the log and writing the rows through `connections`.
    async fn apply_until(
        &self,
        target: Position,
        connections: Connections,
    ) -> Result<Position, ProjectionError> {
        loop {
            // One page at a time in this process, the lock taken for each page: a request's
            // catch-up waits for at most the page the background one is writing (the lock is
            // fair), not for all it set out to apply.
            let _one_at_a_time = self.catching_up.lock().await;
            let from = self.store.gdpr_position().await?;
            if from >= target {
                return Ok(from);
            }
            let events = match connections {
                Connections::Behind => self.store.read_range_behind(from, PAGE).await?,
                Connections::Bulk | Connections::Now => self.store.read_pages(from, PAGE).await?,
            };
            let Some(last) = events.last() else {
                return Ok(from);
            };
            let next = last.position.next();
            let batch = rows(&events)?;
            // `false`: another process wrote this page first; read the position again.
            match connections {
                Connections::Now => self.store.gdpr_apply_now(from, next, &batch).await?,
                Connections::Behind | Connections::Bulk => {
                    self.store.gdpr_apply(from, next, &batch).await?
                }
            };
        }
    }
}

/// The GDPR rows of a page of events: what the projection writes for them (the access view
/// reads the decisions it has not applied yet through the same conversion).
pub fn rows(events: &[StoredEvent]) -> Result<GdprBatch, ProjectionError> {
    let mut batch = GdprBatch::default();
    for e in events {
        let bad = |err: serde_json::Error| crate::ApplyError {
            position: e.position,
            event_type: e.event_type.clone(),
            detail: err.to_string(),
        };
        match e.stream_type.as_str() {
            "shipment" => {
                let ShipmentEvent::ShipmentRegistered {
                    id,
                    shipper,
                    carrier,
                    tracking_number,
                    destination_country,
                    recipient_ref,
                    ..
                } = e.decode().map_err(bad)?;
                batch.shipments.push(GdprShipment {
                    shipment_id: id.to_string(),
                    shipper_id: shipper.to_string(),
                    carrier: carrier.to_string(),
                    // An erased value (read after its erasure) is left blank, as the erasure
                    // blanks the rows written before it.
                    tracking_number: tracking_number
                        .known()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    destination_country: destination_country.to_string(),
                    recipient_ref: recipient_ref
                        .and_then(Personal::into_known)
                        .map(|r| r.to_string()),
                    position: e.position.get(),
                });
            }
            ERASURE_STREAM => {
                let ErasureEvent::PersonalDataErased {
                    shipments,
                    denials,
                    asked_before,
                    ..
                } = e.decode().map_err(bad)?;
                batch
                    .erased
                    .extend(shipments.iter().map(ToString::to_string));
                batch.erased_positions.extend(denials);
                if asked_before.is_some() {
                    batch.asked_before = batch.asked_before.max(asked_before);
                }
            }
            ACCESS_STREAM => {
                let event: AccessEvent = e.decode().map_err(bad)?;
                batch.accesses.extend(access_row(e.position, event));
            }
            _ => {}
        }
    }
    Ok(batch)
}

fn joined<T: std::fmt::Display>(items: &[T]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item.to_string());
    }
    out
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

fn channel_name(channel: Channel) -> String {
    match channel {
        Channel::Pull => "pull",
        Channel::Webhook => "webhook",
    }
    .to_owned()
}

/// The row of a decision; a delivery's cancellation is recorded on its decision's stream and
/// is no access of its own.
pub fn access_row(position: Position, event: AccessEvent) -> Option<GdprAccess> {
    Some(match event {
        AccessEvent::TrackingAccessAllowed {
            authorizations,
            dpa,
            body_sha256: _,
            channel,
            consents,
            decided_at,
            decision_id,
            granted,
            on_behalf_of,
            partner,
            purpose,
            requested,
            shipment,
        } => GdprAccess {
            position: position.get(),
            decided_at: micros(decided_at),
            allowed: true,
            reason: None,
            partner_id: partner.to_string(),
            on_behalf_of: on_behalf_of.map(|p| p.to_string()),
            shipment_id: Some(shipment.to_string()),
            shipper_id: None,
            carrier: None,
            tracking_number: None,
            purpose: purpose.to_string(),
            requested: joined(&requested),
            granted: joined(&granted),
            consent_ids: joined(&consents),
            decision_id: decision_id.to_string(),
            channel: channel.map(channel_name),
            authorization_ids: joined(&authorizations),
            dpa_id: dpa.map(|d| d.to_string()),
        },
        AccessEvent::TrackingAccessDenied {
            authorization,
            carrier,
            channel,
            consent,
            decided_at,
            decision_id,
            on_behalf_of,
            partner,
            purpose,
            reason,
            requested,
            shipment,
            tracking_number,
        } => GdprAccess {
            position: position.get(),
            decided_at: micros(decided_at),
            allowed: false,
            reason: serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
            partner_id: partner.to_string(),
            on_behalf_of: on_behalf_of.map(|p| p.to_string()),
            shipment_id: shipment.map(|s| s.to_string()),
            shipper_id: None,
            carrier: carrier.map(|c| c.to_string()),
            tracking_number: tracking_number
                .and_then(Personal::into_known)
                .map(|t| t.to_string()),
            purpose: purpose.to_string(),
            requested: joined(&requested),
            granted: String::new(),
            consent_ids: consent.map(|c| c.to_string()).unwrap_or_default(),
            decision_id: decision_id.to_string(),
            channel: channel.map(channel_name),
            authorization_ids: authorization.map(|a| a.to_string()).unwrap_or_default(),
            dpa_id: None,
        },
        AccessEvent::TrackingDeliveryCancelled { .. } => return None,
    })
}
