//! Tracking subscriptions (SPEC §14): a partner (or the gateway for one) subscribes to the
//! tracking updates of shipments it names — up to 100 a call, each decided as a read and the
//! decision recorded (`"channel":"webhook"`): the allowed ones are accepted, the others
//! rejected with the reason the partner is told — or of every shipment its consents cover,
//! present and future (`"scope":"consented"`, never fanned out per shipment). Lists, reads and
//! deletions of a partner's own subscriptions; another partner's reads as missing.

use consent_ledger_domain::access::Channel;
use consent_ledger_domain::access::DenyReason;
use consent_ledger_domain::subscription::{
    SubscriptionCommand, SubscriptionEvent, SubscriptionScope,
};
use consent_ledger_domain::values::{
    CarrierCode, DataCategory, NonEmptySet, PartnerId, Purpose, Role, ShipmentId, SubscriptionId,
    TrackingNumber,
};
use consent_ledger_projections::model::SubscriptionView;
use consent_ledger_store::cqrs::CommandMeta;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::decide::{self, DecisionRequest};
use crate::error::AppError;
use crate::state::AppState;
use crate::write::{self, Answer, WriteContext};

/// Who subscribes: a partner for itself, the gateway for a partner it names.
pub const SUBSCRIBERS: &[Role] = &[Role::Partner, Role::Gateway];

/// The most shipments one call names.
pub const MAX_SHIPMENTS: usize = 100;

/// A shipment named by id, or by carrier and tracking number.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentItem {
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub shipment_id: Option<ShipmentId>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub carrier: Option<CarrierCode>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub tracking_number: Option<TrackingNumber>,
}

/// `{"purpose","data_categories","shipments":[…]}` or `{"purpose","data_categories",
/// "scope":"consented"}`; `"partner_id"` from the gateway.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub partner_id: Option<PartnerId>,
    #[schema(value_type = String)]
    pub purpose: Purpose,
    #[schema(value_type = Vec<String>)]
    pub data_categories: NonEmptySet<DataCategory>,
    /// 1 to 100 shipments…
    #[serde(default)]
    #[schema(max_items = 100)]
    pub shipments: Option<Vec<ShipmentItem>>,
    /// … or `"consented"`: every shipment the partner's consents cover, now and later.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A shipment subscribed to: its index in `shipments`, and the decision that allowed it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedItem {
    pub index: usize,
    #[schema(value_type = String, format = Uuid)]
    pub shipment_id: ShipmentId,
    pub decision_id: Uuid,
}

/// A shipment refused: its index, and why (as the partner is told).
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedItem {
    pub index: usize,
    #[schema(value_type = String)]
    pub reason: DenyReason,
    pub decision_id: Uuid,
}

/// `{"id"?,"accepted":[…],"rejected":[…]}`: no `id` when nothing was allowed (nothing made).
#[derive(Debug, Serialize, ToSchema)]
pub struct Subscribed {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub id: Option<SubscriptionId>,
    pub accepted: Vec<AcceptedItem>,
    pub rejected: Vec<RejectedItem>,
}

/// `{"items":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
}

/// `POST /v1/subscriptions`.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: CreateSubscription,
    context: WriteContext,
) -> Result<Subscribed, AppError> {
    caller.require(SUBSCRIBERS)?;
    let items = match (input.shipments, input.scope.as_deref()) {
        (Some(items), None) if (1..=MAX_SHIPMENTS).contains(&items.len()) => Some(items),
        (Some(_), None) => {
            return Err(AppError::invalid("shipments", "1 to 100 shipments"));
        }
        (None, Some("consented")) => None,
        (None, Some(_)) => {
            return Err(AppError::invalid(
                "scope",
                "\"consented\", or name the shipments instead",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "scope",
                "either shipments or scope, not both",
            ))
        }
        (None, None) => {
            return Err(AppError::invalid(
                "shipments",
                "name 1 to 100 shipments, or \"scope\":\"consented\"",
            ))
        }
    };
    // Who the subscription is for, checked as a decision checks it.
    let partner = decide::asking_partner(&state.projector.read(), caller, input.partner_id, "")?;
    let request = |item: &ShipmentItem| DecisionRequest {
        partner_id: input.partner_id,
        shipment_id: item.shipment_id,
        carrier: item.carrier.clone(),
        tracking_number: item.tracking_number.clone(),
        purpose: input.purpose,
        data_categories: input.data_categories.clone(),
        on_behalf_of: None,
        at_least_as_fresh: None,
    };
    let id = SubscriptionId::from_uuid(state.ids.new_id());
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    let scope = match items {
        None => SubscriptionScope::Consented,
        Some(items) => {
            let questions = {
                let model = state.projector.read();
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let mut q = decide::question(
                            &model,
                            caller,
                            &request(item),
                            &format!("shipments[{i}]."),
                        )?;
                        q.channel = Some(Channel::Webhook);
                        Ok(q)
                    })
                    .collect::<Result<Vec<_>, AppError>>()?
            };
            let meta = CommandMeta::new(caller.id.to_string(), state.ids.new_id().to_string());
            let (_, answers) = decide::decide_and_record(state, caller, &questions, meta).await?;
            let model = state.projector.read();
            for (index, (q, answer)) in questions.iter().zip(answers).enumerate() {
                match (answer.allowed, model.access.resolve(&q.shipment)) {
                    (true, Some(shipment_id)) => accepted.push(AcceptedItem {
                        index,
                        shipment_id,
                        decision_id: answer.decision_id,
                    }),
                    _ => rejected.push(RejectedItem {
                        index,
                        reason: answer.reason.unwrap_or(DenyReason::NoConsent),
                        decision_id: answer.decision_id,
                    }),
                }
            }
            if accepted.is_empty() {
                return Ok(Subscribed {
                    id: None,
                    accepted,
                    rejected,
                });
            }
            SubscriptionScope::Shipments {
                shipment_ids: accepted.iter().map(|a| a.shipment_id).collect(),
            }
        }
    };
    let command = SubscriptionCommand::Create {
        id,
        partner,
        purpose: input.purpose,
        data_categories: input.data_categories,
        scope,
    };
    let (recorded, answer) = write::record(
        state,
        context,
        |meta| async {
            Ok(state
                .subscriptions
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| {
            let first = events.first().ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("a subscription recorded nothing"))
            })?;
            match first
                .decode::<SubscriptionEvent>()
                .map_err(AppError::internal)?
            {
                SubscriptionEvent::SubscriptionCreated { id, .. } => Ok(id),
                _ => Err(AppError::internal(anyhow::anyhow!(
                    "a subscription recorded another event"
                ))),
            }
        },
    )
    .await?;
    if matches!(answer, Answer::Replay) {
        // The first call's subscription, as recorded (its decisions were the first call's).
        let view = get(state, caller, recorded)?;
        let accepted = match view.scope {
            SubscriptionScope::Shipments { shipment_ids } => shipment_ids
                .into_iter()
                .enumerate()
                .map(|(index, shipment_id)| AcceptedItem {
                    index,
                    shipment_id,
                    decision_id: Uuid::nil(),
                })
                .collect(),
            SubscriptionScope::Consented => Vec::new(),
        };
        return Ok(Subscribed {
            id: Some(recorded),
            accepted,
            rejected: Vec::new(),
        });
    }
    Ok(Subscribed {
        id: Some(recorded),
        accepted,
        rejected,
    })
}

/// The subscription `id` if the caller may see it: its partner's, or the gateway's; another
/// partner's is not found.
pub fn get(
    state: &AppState,
    caller: &Caller,
    id: SubscriptionId,
) -> Result<SubscriptionView, AppError> {
    caller.require(SUBSCRIBERS)?;
    let view = state
        .projector
        .read()
        .subscriptions
        .get(&id)
        .cloned()
        .ok_or_else(AppError::not_found)?;
    if !caller.sees_partner(view.partner_id) {
        return Err(AppError::not_found());
    }
    Ok(view)
}

/// `GET /v1/subscriptions[?partner_id=]`: a partner's own; the gateway's all, or one partner's.
pub fn list(
    state: &AppState,
    caller: &Caller,
    partner: Option<PartnerId>,
) -> Result<SubscriptionList, AppError> {
    caller.require(SUBSCRIBERS)?;
    let only = caller.partner_filter(partner);
    let items = state
        .projector
        .read()
        .subscriptions
        .values()
        .filter(|s| only.is_none_or(|p| s.partner_id == p))
        .cloned()
        .collect();
    Ok(SubscriptionList { items })
}

/// `DELETE /v1/subscriptions/{id}`: ends it (recorded); no update is delivered through it after.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    id: SubscriptionId,
    context: WriteContext,
) -> Result<(SubscriptionView, Answer), AppError> {
    get(state, caller, id)?;
    let (_, answer) = write::record(
        state,
        context,
        |meta| async {
            Ok(state
                .subscriptions
                .execute(&id.to_string(), SubscriptionCommand::Delete, meta)
                .await?)
        },
        |events, _| Ok(events.len()),
    )
    .await?;
    Ok((get(state, caller, id)?, answer))
}
