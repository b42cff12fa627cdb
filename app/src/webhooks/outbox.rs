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
    let data = within_bound(data).map_err(AppError::internal)?;
    Ok(OutboxMessage {
        message_id: format!("msg_{}", state.ids.new_id().simple()),
        endpoint_id: endpoint.to_string(),
        event_type: event_type.as_str().to_owned(),
        occurred_at: occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        data,
        cause: 0,
        shipment_id: None,
    })
}

/// A message's body, the same bytes at every attempt: `{"type","timestamp","data"}`,
/// canonical JSON (RFC 8785), with `position` (the causing event's) added to `data` when given.
/// A `tracking.updated` body is rendered without it before its commit, because its decision
/// records the body's SHA-256 (SPEC §14); it names its decision instead.
pub fn render(
    event_type: &str,
    timestamp: &str,
    data: &str,
    position: Option<u64>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut data: serde_json::Value = serde_json::from_str(data)?;
    if let (Some(fields), Some(position)) = (data.as_object_mut(), position) {
        fields.insert("position".into(), position.into());
    }
    let body = serde_json::json!({
        "type": event_type,
        "timestamp": timestamp,
        "data": data,
    });
    Ok(consent_ledger_audit::leaf::canonical_text(&body)?.into_bytes())
}

/// The most `data` may take, so that the whole body stays under SPEC §13's 20 kB.
pub const DATA_LIMIT: usize = 16 * 1024;

/// `data` as canonical JSON, under [`DATA_LIMIT`]: a consent scoped to so many shipments that
/// their ids do not fit names how many there are instead (`"shipment_count"`) and says so
/// (`"scope_omitted": true`); the partner reads the list with `GET /v1/consents/{id}`.
pub fn within_bound(data: &serde_json::Value) -> Result<String, serde_json::Error> {
    let text = consent_ledger_audit::leaf::canonical_text(data)?;
    let listed = data["scope"]["shipment_ids"].as_array().map(Vec::len);
    match listed {
        Some(count) if text.len() > DATA_LIMIT => {
            let mut data = data.clone();
            data["scope"] = serde_json::json!({"type": "shipments", "shipment_count": count});
            data["scope_omitted"] = true.into();
            consent_ledger_audit::leaf::canonical_text(&data)
        }
        _ => Ok(text),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_too_long_for_a_message_is_counted_not_listed() {
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("01a24104-1d48-7475-b308-{i:012}"))
            .collect();
        let data = serde_json::json!({
            "consent_id": "01a24104-1d59-706b-bad1-e26333ab5ca9",
            "scope": {"type": "shipments", "shipment_ids": ids},
        });
        let text = within_bound(&data).expect("canonical");
        assert!(text.len() < DATA_LIMIT, "{} bytes", text.len());
        let bounded: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(bounded["scope"]["shipment_count"], 1000);
        assert_eq!(bounded["scope_omitted"], true);
        assert_eq!(bounded["consent_id"], data["consent_id"]);

        let few = serde_json::json!({"scope": {"type": "shipments", "shipment_ids": ["a"]}});
        let text = within_bound(&few).expect("canonical");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).expect("JSON"),
            few
        );
    }
}
