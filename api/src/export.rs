//! Export bundles (SPEC §6, §7 `/v1/audit/export`, §8 `export`): the selected events with their
//! leaf data and inclusion proofs against a checkpoint signed for the export.

use consent_ledger_audit::bundle::{BundleHeader, BundleLine, BUNDLE_FORMAT};
use consent_ledger_audit::leaf::leaf_data;
use consent_ledger_domain::access::{AccessEvent, ACCESS_STREAM};
use consent_ledger_domain::values::{PartnerId, ShipmentId};
use consent_ledger_store::{Position, StoredEvent};
use serde::Deserialize;

use crate::problem::ApiError;
use crate::state::AppState;

/// Which events a bundle holds: access decisions, narrowed to one shipment and/or one partner;
/// with a shipment, also its registration.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportFilter {
    pub shipment: Option<ShipmentId>,
    pub partner: Option<PartnerId>,
}

impl ExportFilter {
    fn selects(&self, e: &StoredEvent) -> bool {
        if e.stream_type == "shipment" {
            return self.partner.is_none()
                && self.shipment.is_some_and(|s| e.stream_id == s.to_string());
        }
        if e.stream_type != ACCESS_STREAM {
            return false;
        }
        let Ok(event) = AccessEvent::deserialize(&e.payload) else {
            return false;
        };
        let (partner, shipment) = match event {
            AccessEvent::TrackingAccessAllowed {
                partner, shipment, ..
            } => (partner, Some(shipment)),
            AccessEvent::TrackingAccessDenied {
                partner, shipment, ..
            } => (partner, shipment),
        };
        self.partner.is_none_or(|p| p == partner)
            && self.shipment.is_none_or(|s| shipment == Some(s))
    }
}

const PAGE: u32 = 10_000;

/// Builds the bundle: signs a checkpoint of the log now, then one line per selected event
/// before it. `progress` is told how far the scan got.
pub async fn bundle(
    state: &AppState,
    filter: ExportFilter,
    mut progress: impl FnMut(u64, u64),
) -> Result<String, ApiError> {
    let (size, note) = crate::routes::log::sign_checkpoint(state).await?;
    let header = BundleHeader {
        format: BUNDLE_FORMAT.to_owned(),
        origin: state.log_key.name().to_owned(),
        vkey: state.log_key.vkey(),
        checkpoint: note,
        consistency: None,
    };
    let mut out = serde_json::to_string(&header).map_err(|e| ApiError::Internal(e.into()))?;
    out.push('\n');
    let mut from = 0;
    while from < size {
        let events = state.store.read_range(Position::new(from), PAGE).await?;
        if events.is_empty() {
            break;
        }
        for e in events
            .iter()
            .filter(|e| e.position.get() < size && filter.selects(e))
        {
            let position = e.position.get();
            let leaf = String::from_utf8(
                leaf_data(&e.leaf()).map_err(|err| ApiError::Internal(err.into()))?,
            )
            .map_err(|err| ApiError::Internal(err.into()))?;
            let proof = state.store.inclusion_proof(position, size).await?;
            let line = serde_json::to_string(&BundleLine::new(position, leaf, &proof))
                .map_err(|err| ApiError::Internal(err.into()))?;
            out.push_str(&line);
            out.push('\n');
        }
        from = events.last().map_or(size, |e| e.position.get() + 1);
        progress(from.min(size), size);
    }
    Ok(out)
}
