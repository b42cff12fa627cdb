//! Consent-gated delivery of tracking updates (SPEC §14, docs/adr/0011), read top to bottom:
//!
//! - [`fan_out`]: for each update the gateway sends and each live subscription covering its
//!   shipment (those naming it, and every `consented` one), one decision on one state of the
//!   read model with the subscription's purpose and categories, recorded with
//!   `"channel":"webhook"`; an allowed one carries the SHA-256 of the exact body its
//!   `tracking.updated` message will send (`body_sha256`), the message queued in the same
//!   append as the decision and the update itself — one transaction of the group commit, so a
//!   crash keeps all of them or none, and an update sent again is refused by the store and
//!   fans out once.
//! - [`Grounds`]: what a queued message rests on; the delivery worker checks it again right
//!   before sending, and a message whose consent was revoked, expired or whose partner was
//!   suspended meanwhile is never sent: [`cancel`] records `TrackingDeliveryCancelled`.
//! - [`end_subscriptions`]: a subscription to a shipment ends 14 days after its journey did
//!   (`delivered`, `returned_to_sender`); the partner gets a last `tracking.updated` with
//!   `"subscription_ended": true` in the commit that records it.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use consent_ledger_domain::access::{AccessEvent, Channel, DenyReason};
use consent_ledger_domain::subscription::{
    SubscriptionCommand, SubscriptionError, SubscriptionScope,
};
use consent_ledger_domain::values::{
    AuthorizationId, ConsentId, DataCategory, PartnerId, Purpose, ShipmentId, SubscriptionId,
    WebhookEndpointId,
};
use consent_ledger_domain::webhook::WebhookEventType;
use consent_ledger_projections::decider::{Categories, ShipmentRef, Verdict};
use consent_ledger_projections::model::WebhookStatus;
use consent_ledger_projections::ReadModel;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::tracking::TrackingUpdateRow;
use consent_ledger_store::{
    Append, Guard, NewEvent, OutboxMessage, Provenance, QueuedMessage, StoreError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::decide::{self, Question};
use crate::error::AppError;
use crate::state::AppState;
use crate::update::minimised;
use crate::webhooks::outbox::render;

/// The `data` of a `tracking.updated` message (SPEC §14): what was decided, and the update
/// minimised to the categories it allowed. Its decision records the SHA-256 of the whole body.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackingUpdated {
    #[schema(value_type = String, format = Uuid)]
    pub subscription_id: SubscriptionId,
    /// The recorded decision that allowed this delivery; its `body_sha256` is this body's.
    pub decision_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub shipment_id: ShipmentId,
    #[schema(value_type = String)]
    pub purpose: Purpose,
    /// What the partner was granted of what it subscribed to.
    #[schema(value_type = Vec<String>)]
    pub data_categories: Vec<DataCategory>,
    /// The consents it rests on.
    #[schema(value_type = Vec<String>)]
    pub consent_ids: Vec<ConsentId>,
    /// The carrier authorizations it rests on (SPEC §16); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub authorization_ids: Vec<AuthorizationId>,
    /// `status`, `occurred_at`, `description` (`status_events`), `location`,
    /// `proof_of_delivery`, `recipient_contact`: only the granted ones.
    #[schema(value_type = Object)]
    pub update: serde_json::Value,
}

/// The last message of a subscription to a shipment (14 days after its journey ended): no
/// tracking data.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionEnded {
    #[schema(value_type = String, format = Uuid)]
    pub subscription_id: SubscriptionId,
    #[schema(value_type = String, format = Uuid)]
    pub shipment_id: ShipmentId,
    #[schema(value_type = String, format = Uuid)]
    pub partner_id: PartnerId,
    /// Always `true`.
    pub subscription_ended: bool,
}

/// A `tracking.updated` webhook as a partner's endpoint receives it (Standard Webhooks v1a
/// headers; canonical JSON).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // the schema of the body `fan_out` renders
pub struct TrackingUpdatedMessage {
    /// `tracking.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339: when it was decided.
    pub timestamp: String,
    pub data: TrackingUpdatedData,
}

/// A delivery, or a subscription's end.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum TrackingUpdatedData {
    Update(TrackingUpdated),
    Ended(SubscriptionEnded),
}

/// What a batch of updates fans out to: the decisions to record and the messages to queue
/// with them.
#[derive(Debug, Default)]
pub struct FanOut {
    pub events: Vec<NewEvent>,
    pub outbox: Vec<OutboxMessage>,
    /// Decisions that allowed (each with its messages).
    pub allowed: u64,
}

/// Decides every (update × live subscription covering its shipment) on `model` at `now`. A
/// partner with no enabled endpoint for `tracking.updated` is skipped: nothing would leave. A
/// `consented` subscription records only what its partner's consents allow (it names no
/// shipment, so a shipment no consent covers is none of its business); one naming the
/// shipment records denials too.
pub fn fan_out(
    state: &AppState,
    model: &ReadModel,
    rows: &[TrackingUpdateRow],
    now: DateTime<Utc>,
) -> Result<FanOut, AppError> {
    let mut out = FanOut::default();
    let mut endpoints: HashMap<PartnerId, Vec<WebhookEndpointId>> = HashMap::new();
    let timestamp = now.to_rfc3339_opts(SecondsFormat::Micros, true);
    for row in rows {
        let shipment = ShipmentId::parse(&row.shipment_id).map_err(AppError::internal)?;
        let consenting = model.access.partners_covering(shipment);
        for id in model.subscribed.covering(shipment, consenting) {
            let Some(subscription) = model.subscriptions.get(&id) else {
                continue;
            };
            let partner = subscription.partner_id;
            let targets = endpoints
                .entry(partner)
                .or_insert_with(|| tracking_endpoints(model, partner));
            if targets.is_empty() {
                continue;
            }
            let question = Question {
                partner,
                shipment: ShipmentRef::Id(shipment),
                purpose: subscription.purpose,
                requested: Categories::of(subscription.data_categories.as_slice()),
                on_behalf_of: None,
                channel: Some(Channel::Webhook),
            };
            let decision_id = state.ids.new_id();
            let (mut event, answer) = decide::decided(model, &question, decision_id, now);
            if !answer.allowed {
                if subscription.scope != SubscriptionScope::Consented {
                    out.events.push(decide::recorded(&event)?);
                }
                continue;
            }
            let data = TrackingUpdated {
                update: minimised(row, &answer.data_categories)?,
                subscription_id: id,
                decision_id,
                shipment_id: shipment,
                purpose: subscription.purpose,
                data_categories: answer.data_categories,
                consent_ids: answer.consent_ids,
                authorization_ids: answer.authorization_ids,
            };
            let data = serde_json::to_value(&data)
                .and_then(|d| consent_ledger_audit::leaf::canonical_text(&d))
                .map_err(AppError::internal)?;
            let body = render(
                WebhookEventType::TrackingUpdated.as_str(),
                &timestamp,
                &data,
                None,
            )
            .map_err(AppError::internal)?;
            if let AccessEvent::TrackingAccessAllowed { body_sha256, .. } = &mut event {
                *body_sha256 = Some(hex::encode(Sha256::digest(&body)));
            }
            let cause = out.events.len();
            out.events.push(decide::recorded(&event)?);
            for endpoint in targets.iter() {
                out.outbox.push(OutboxMessage {
                    message_id: format!("msg_{}", state.ids.new_id().simple()),
                    endpoint_id: endpoint.to_string(),
                    event_type: WebhookEventType::TrackingUpdated.as_str().to_owned(),
                    occurred_at: timestamp.clone(),
                    data: data.clone(),
                    cause,
                    shipment_id: Some(row.shipment_id.clone()),
                });
            }
            out.allowed += 1;
        }
    }
    Ok(out)
}

/// A partner's enabled endpoints that take `tracking.updated`.
fn tracking_endpoints(model: &ReadModel, partner: PartnerId) -> Vec<WebhookEndpointId> {
    model
        .webhooks
        .values()
        .filter(|e| {
            e.partner_id == partner
                && e.status == WebhookStatus::Enabled
                && e.event_types.contains(&WebhookEventType::TrackingUpdated)
        })
        .map(|e| e.id)
        .collect()
}

/// Keeps `rows` and their fan-out in one append (one transaction), deciding again when a
/// restriction committed meanwhile (SPEC §5.2). `Ok(false)`: another request kept one of the
/// updates first; the caller leaves out what the store now holds and calls again.
pub async fn keep_and_fan_out(
    state: &AppState,
    provenance: &Provenance,
    rows: &[TrackingUpdateRow],
) -> Result<bool, AppError> {
    for _ in 0..8 {
        let (fan, decided_before) = {
            let model = state.projector.read();
            (
                fan_out(state, &model, rows, state.clock.now())?,
                model.next_position(),
            )
        };
        if fan.events.is_empty() {
            // No subscription covers them: the updates alone, a plain durable insert.
            state.store.insert_tracking(rows).await?;
            return Ok(true);
        }
        let allowed = fan.allowed;
        let denied = fan.events.len() as u64 - allowed;
        let append = Append {
            events: fan.events,
            provenance: provenance.clone(),
            idempotency: None,
            unique_claims: Vec::new(),
            erasure: None,
            webhook_key: None,
            outbox: fan.outbox,
            tracking: rows.to_vec(),
            credential: None,
            guard: Guard {
                restricts: false,
                decided_before: Some(decided_before),
            },
        };
        match state.store.append(append).await {
            Ok(_) => {
                use std::sync::atomic::Ordering::Relaxed;
                state.metrics.decisions_allowed.fetch_add(allowed, Relaxed);
                state.metrics.decisions_denied.fetch_add(denied, Relaxed);
                return Ok(true);
            }
            Err(StoreError::Stale { .. }) => {
                state.projector.catch_up().await?;
            }
            Err(StoreError::ClaimTaken { claim })
                if claim == consent_ledger_store::TRACKING_UPDATE_CLAIM =>
            {
                return Ok(false)
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(AppError::Unavailable(anyhow::anyhow!(
        "restrictions kept committing while fanning out; retry"
    )))
}

/// What a queued `tracking.updated` message rests on, read from its data: checked again right
/// before it is sent.
#[derive(Debug, Clone, Deserialize)]
pub struct Grounds {
    pub decision_id: Uuid,
    pub shipment_id: ShipmentId,
    pub purpose: Purpose,
    pub data_categories: Vec<DataCategory>,
    pub consent_ids: Vec<ConsentId>,
    #[serde(default)]
    pub authorization_ids: Vec<AuthorizationId>,
}

impl Grounds {
    /// The grounds of a message that carries a tracking update; `None` for any other message
    /// (a subscription's last message carries none).
    pub fn of(message: &QueuedMessage) -> Option<Self> {
        if message.event_type != WebhookEventType::TrackingUpdated.as_str() {
            return None;
        }
        serde_json::from_str(&message.data).ok()
    }

    /// Why the message may no longer be sent to `partner` at `now`, if it may not: every
    /// consent it rested on must still allow it (SPEC §14, as §5.2 for a replayed decision).
    pub fn lost(
        &self,
        model: &ReadModel,
        partner: PartnerId,
        now: DateTime<Utc>,
    ) -> Option<DenyReason> {
        let verdict = model.access.decide(
            partner,
            &ShipmentRef::Id(self.shipment_id),
            self.purpose,
            Categories::of(&self.data_categories),
            now,
        );
        match verdict {
            Verdict::Denied { reason, .. } => Some(reason),
            Verdict::Allowed {
                consents,
                authorizations,
                ..
            } => self
                .consent_ids
                .iter()
                .find(|c| !consents.contains(c))
                .map(|gone| match model.consents.get(gone) {
                    Some(c) if c.revocation.is_none() => DenyReason::ConsentExpired,
                    _ => DenyReason::ConsentRevoked,
                })
                .or_else(|| {
                    let gone = self
                        .authorization_ids
                        .iter()
                        .find(|a| !authorizations.contains(a))?;
                    Some(model.why_not_authorized(*gone, self.shipment_id, now))
                }),
        }
    }
}

/// Records that the delivery of `grounds`' decision was cancelled for `reason`, once: a second
/// cancellation of the same decision (another endpoint's message, another node) finds it
/// recorded.
pub async fn cancel(
    state: &AppState,
    partner: PartnerId,
    grounds: &Grounds,
    reason: DenyReason,
) -> Result<(), AppError> {
    let event = AccessEvent::TrackingDeliveryCancelled {
        cancelled_at: state.clock.now(),
        decision_id: grounds.decision_id,
        partner,
        reason,
        shipment: grounds.shipment_id,
    };
    let append = Append {
        events: vec![decide::recorded(&event)?],
        provenance: Provenance {
            actor: "system".into(),
            request_id: state.ids.new_id().to_string(),
        },
        idempotency: None,
        unique_claims: Vec::new(),
        erasure: None,
        webhook_key: None,
        outbox: Vec::new(),
        tracking: Vec::new(),
        credential: None,
        guard: Guard::default(),
    };
    match state.store.append(append).await {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Ends every subscription to a shipment whose journey ended (`delivered` or
/// `returned_to_sender`) at least `serve`'s subscription period (SPEC §14: 14 days) before
/// `now`, each once, with its last message. Answers how many ended.
#[tracing::instrument(skip_all)]
pub async fn end_subscriptions(state: &AppState, now: DateTime<Utc>) -> usize {
    let live: Vec<(ShipmentId, Vec<SubscriptionId>)> = state
        .projector
        .read()
        .subscribed
        .shipments()
        .map(|(s, subs)| (*s, subs.to_vec()))
        .collect();
    if live.is_empty() {
        return 0;
    }
    let cutoff = (now - state.config.subscription_end).to_rfc3339_opts(SecondsFormat::Micros, true);
    let ids: Vec<String> = live.iter().map(|(s, _)| s.to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let over = match state.store.journeys_ended(&ids, &cutoff).await {
        Ok(over) => over,
        Err(e) => {
            tracing::warn!(error = %e, "reading ended journeys failed; retried next sweep");
            return 0;
        }
    };
    let mut ended = 0;
    for (shipment, subscriptions) in live {
        if !over.contains(&shipment.to_string()) {
            continue;
        }
        for subscription in subscriptions {
            match end(state, subscription, shipment, now).await {
                Ok(()) => ended += 1,
                Err(e) => {
                    tracing::warn!(%subscription, error = %e, "ending a subscription failed; retried next sweep")
                }
            }
        }
    }
    if ended > 0 {
        tracing::info!(ended, "subscriptions to delivered shipments ended");
    }
    ended
}

/// Ends one shipment of a subscription, with the last message to its partner's endpoints.
async fn end(
    state: &AppState,
    subscription: SubscriptionId,
    shipment: ShipmentId,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let (partner, endpoints) = {
        let model = state.projector.read();
        let partner = model
            .subscriptions
            .get(&subscription)
            .map(|s| s.partner_id)
            .ok_or_else(AppError::not_found)?;
        (partner, tracking_endpoints(&model, partner))
    };
    let data = serde_json::to_value(SubscriptionEnded {
        subscription_id: subscription,
        shipment_id: shipment,
        partner_id: partner,
        subscription_ended: true,
    })
    .map_err(AppError::internal)?;
    let mut meta = CommandMeta::new("system", state.ids.new_id().to_string());
    for endpoint in endpoints {
        let mut message = crate::webhooks::outbox::message_to(
            state,
            endpoint,
            WebhookEventType::TrackingUpdated,
            now,
            &data,
        )?;
        message.shipment_id = Some(shipment.to_string());
        meta.outbox.push(message);
    }
    let ended = state
        .subscriptions
        .execute(
            &subscription.to_string(),
            SubscriptionCommand::End {
                shipment_id: shipment,
            },
            meta,
        )
        .await;
    match ended {
        // Deleted meanwhile, or ended by another node's sweep: nothing to do.
        Err(consent_ledger_store::cqrs::CommandError::Rejected(SubscriptionError::NotCovered)) => {
            Ok(())
        }
        other => other.map(drop).map_err(AppError::from),
    }
}
