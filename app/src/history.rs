//! An object's history (SPEC §7 `GET /v1/consents/{id}`, `GET /v1/consent-requests/{id}`):
//! its stream's events, oldest first, with who recorded each and in which request; and what a
//! shipper's approval narrowed from what the partner asked.

use chrono::{DateTime, Utc};
use consent_ledger_domain::values::{DataCategory, Purpose};
use consent_ledger_projections::model::{ConsentView, RequestView};
use consent_ledger_store::{Position, StoredEvent};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppError;
use crate::state::AppState;

/// One event of a consent's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub position: Position,
    pub event_type: String,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub request_id: String,
    pub event: serde_json::Value,
}

/// What a shipper's approval took away from a partner's consent request.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct Narrowing {
    /// Asked for and not granted.
    pub purposes_removed: Vec<Purpose>,
    /// Asked for and not granted.
    pub data_categories_removed: Vec<DataCategory>,
    /// Present when the consent ends before the end asked for.
    pub valid_until: Option<ValidUntilNarrowed>,
}

/// An end earlier than the one asked for.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct ValidUntilNarrowed {
    /// Null: asked for without an end.
    pub requested: Option<DateTime<Utc>>,
    pub granted: DateTime<Utc>,
}

impl Narrowing {
    /// What `consent` grants less than `asked`, or `None` when it grants all of it.
    pub fn between(asked: &RequestView, consent: &ConsentView) -> Option<Self> {
        let purposes_removed: Vec<Purpose> = asked
            .purposes
            .iter()
            .filter(|p| !consent.purposes.contains(p))
            .copied()
            .collect();
        let data_categories_removed: Vec<DataCategory> = asked
            .data_categories
            .iter()
            .filter(|c| !consent.data_categories.contains(c))
            .copied()
            .collect();
        let valid_until = match (asked.valid_until, consent.valid_until) {
            (requested, Some(granted)) if requested.is_none_or(|r| granted < r) => {
                Some(ValidUntilNarrowed { requested, granted })
            }
            _ => None,
        };
        let narrowed = !purposes_removed.is_empty()
            || !data_categories_removed.is_empty()
            || valid_until.is_some();
        narrowed.then_some(Self {
            purposes_removed,
            data_categories_removed,
            valid_until,
        })
    }
}

/// One stream's events, oldest first, as history entries.
#[tracing::instrument(level = "debug", skip(state))]
pub async fn stream_history(
    state: &AppState,
    stream_type: &str,
    stream_id: &str,
) -> Result<Vec<HistoryEntry>, AppError> {
    state
        .store
        .read_stream(stream_type, stream_id)
        .await?
        .into_iter()
        .map(history_entry)
        .collect()
}

fn history_entry(e: StoredEvent) -> Result<HistoryEntry, AppError> {
    // Events are stored as {"EventType": {fields}}; the history shows the fields.
    let value = e.opened_value().map_err(AppError::internal)?;
    let event = match value {
        serde_json::Value::Object(mut map) if map.len() == 1 => {
            map.remove(&e.event_type).unwrap_or_default()
        }
        other => other,
    };
    Ok(HistoryEntry {
        position: e.position,
        event_type: e.event_type,
        recorded_at: e.recorded_at,
        actor: e.actor,
        request_id: e.request_id,
        event,
    })
}
