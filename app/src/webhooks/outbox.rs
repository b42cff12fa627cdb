//! What a write queues for partners' webhook endpoints (SPEC §13, docs/adr/0010): one message
//! per enabled endpoint of the partner concerned that subscribed to the type, added to the
//! write's append so that the store queues them in the same transaction as the event.

use chrono::{DateTime, SecondsFormat, Utc};
use consent_ledger_domain::values::PartnerId;
use consent_ledger_domain::webhook::WebhookEventType;
use consent_ledger_projections::model::WebhookStatus;
use consent_ledger_store::OutboxMessage;

use crate::error::AppError;
use crate::state::AppState;

/// The messages of `event_type` about an event at `occurred_at` concerning `partner`, with
/// `data` (without the event's position, which the store stamps).
pub fn messages(
    state: &AppState,
    partner: PartnerId,
    event_type: WebhookEventType,
    occurred_at: DateTime<Utc>,
    data: &serde_json::Value,
) -> Result<Vec<OutboxMessage>, AppError> {
    let endpoints: Vec<String> = state
        .projector
        .read()
        .webhooks
        .values()
        .filter(|e| {
            e.partner_id == partner
                && e.status == WebhookStatus::Enabled
                && e.event_types.contains(&event_type)
        })
        .map(|e| e.id.to_string())
        .collect();
    if endpoints.is_empty() {
        return Ok(Vec::new());
    }
    // Canonical (RFC 8785), so that every attempt renders the same bytes.
    let data = consent_ledger_audit::leaf::canonical_text(data).map_err(AppError::internal)?;
    let occurred_at = occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true);
    Ok(endpoints
        .into_iter()
        .map(|endpoint_id| OutboxMessage {
            message_id: format!("msg_{}", state.ids.new_id().simple()),
            endpoint_id,
            event_type: event_type.as_str().to_owned(),
            occurred_at: occurred_at.clone(),
            data: data.clone(),
        })
        .collect())
}
