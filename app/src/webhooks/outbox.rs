//! What a write queues for partners' webhook endpoints (SPEC §13, docs/adr/0010): one message
//! per enabled endpoint of the partner concerned that subscribed to the type, added to the
//! write's append so that the store queues them in the same transaction as the event.

use chrono::{DateTime, SecondsFormat, Utc};
use consent_ledger_domain::values::{PartnerId, WebhookEndpointId};
use consent_ledger_domain::webhook::WebhookEventType;
use consent_ledger_projections::model::{ConsentView, WebhookStatus};
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
    let endpoints: Vec<WebhookEndpointId> = state
        .projector
        .read()
        .webhooks
        .values()
        .filter(|e| {
            e.partner_id == partner
                && e.status == WebhookStatus::Enabled
                && e.event_types.contains(&event_type)
        })
        .map(|e| e.id)
        .collect();
    endpoints
        .into_iter()
        .map(|endpoint| message_to(state, endpoint, event_type, occurred_at, data))
        .collect()
}

/// One message of `event_type` to one endpoint, with `data` canonical (RFC 8785), so that
/// every attempt renders the same bytes.
pub fn message_to(
    state: &AppState,
    endpoint: WebhookEndpointId,
    event_type: WebhookEventType,
    occurred_at: DateTime<Utc>,
    data: &serde_json::Value,
) -> Result<OutboxMessage, AppError> {
    Ok(OutboxMessage {
        message_id: format!("msg_{}", state.ids.new_id().simple()),
        endpoint_id: endpoint.to_string(),
        event_type: event_type.as_str().to_owned(),
        occurred_at: occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        data: consent_ledger_audit::leaf::canonical_text(data).map_err(AppError::internal)?,
    })
}

/// A consent message's `data` (SPEC §13): the consent's id, shipper, partner, scope, purposes,
/// data categories, legal basis and validity, as the read model holds them.
pub fn consent_data(consent: &ConsentView) -> serde_json::Value {
    serde_json::json!({
        "consent_id": consent.id,
        "shipper_id": consent.shipper_id,
        "partner_id": consent.partner_id,
        "scope": consent.scope,
        "purposes": consent.purposes,
        "data_categories": consent.data_categories,
        "legal_basis": consent.legal_basis,
        "valid_from": consent.valid_from,
        "valid_until": consent.valid_until,
    })
}
