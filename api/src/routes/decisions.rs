//! The hot path (SPEC §3 access decision, §5): `POST /v1/decisions` and
//! `POST /v1/decisions/batch`.
//!
//! `Decider::decide` (in memory, microseconds) → one event per decision → `Store::append`
//! through the group commit (one fsync for every decision waiting) → the commit hook applies it
//! → the answer. No answer, allow or deny, is sent before its event is durable (§5.3).
//!
//! Revocation is effective at commit (§5.2): an allowed decision is appended with
//! `Guard::decided_before` = the position its state had applied up to. If a revocation or
//! suspension committed at or after that position, the store refuses it as stale and the
//! decision is made again on the fresher state, so no allow commits after a revoke's commit.

use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use consent_ledger_domain::access::{AccessEvent, DenyReason, ACCESS_STREAM};
use consent_ledger_domain::values::{
    CarrierCode, ConsentId, DataCategory, NonEmptySet, PartnerId, PrincipalId, Purpose, Role,
    ShipmentId, TrackingNumber,
};
use consent_ledger_projections::decider::{Categories, Outcome, ShipmentRef};
use consent_ledger_projections::ReadModel;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::{Append, Guard, NewEvent, Position, StoreError, StoredEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::write::write;

/// Most decisions in one batch call (SPEC §7).
pub const MAX_BATCH: usize = 1_000;
/// Times a decision is made again after a concurrent restriction before giving up (503).
const STALE_RETRIES: usize = 8;

/// SPEC §7 decision body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The partner asking to read. A partner asks for itself; the gateway must name one.
    #[serde(default)]
    pub partner_id: Option<PartnerId>,
    /// The shipment, by id …
    #[serde(default)]
    pub shipment_id: Option<ShipmentId>,
    /// … or by carrier and tracking number.
    #[serde(default)]
    pub carrier: Option<CarrierCode>,
    #[serde(default)]
    pub tracking_number: Option<TrackingNumber>,
    pub purpose: Purpose,
    pub data_categories: NonEmptySet<DataCategory>,
    /// The partner a tracking intermediary reads for; recorded with the decision.
    #[serde(default)]
    pub on_behalf_of: Option<PartnerId>,
    /// A position from an earlier write answer; the decision is made on state at least that new.
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBatch {
    /// 1 to 1,000 decisions.
    pub items: Vec<DecisionRequest>,
}

/// SPEC §7 decision answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionAnswer {
    pub decision_id: Uuid,
    pub position: u64,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
    pub consent_ids: Vec<ConsentId>,
    /// requested ∩ granted: what the partner may read (data minimisation).
    pub data_categories: Vec<DataCategory>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub results: Vec<DecisionAnswer>,
}

/// A decision request checked against the caller: whose access, on which shipment.
#[derive(Debug, Clone)]
pub struct Question {
    pub partner: PartnerId,
    pub shipment: ShipmentRef,
    pub purpose: Purpose,
    pub requested: Categories,
    pub on_behalf_of: Option<PartnerId>,
}

fn is_partner(model: &ReadModel, id: PartnerId) -> bool {
    model
        .principals
        .get(&PrincipalId::from(id))
        .is_some_and(|p| p.role == Role::Partner)
}

/// Checks one request; `at` prefixes field names (`items[3].`) in a batch.
fn question(
    model: &ReadModel,
    caller: &Caller,
    r: &DecisionRequest,
    at: &str,
) -> Result<Question, ApiError> {
    let partner = match (caller.role, r.partner_id) {
        (Role::Partner, None) => caller.id.as_partner(),
        (Role::Partner, Some(p)) if p == caller.id.as_partner() => p,
        (Role::Partner, Some(_)) => {
            return Err(ApiError::invalid(
                format!("{at}partner_id"),
                "a partner asks for its own access only",
            ))
        }
        (_, None) => {
            return Err(ApiError::invalid(
                format!("{at}partner_id"),
                "the gateway must name the partner",
            ))
        }
        (_, Some(p)) if is_partner(model, p) => p,
        (_, Some(p)) => {
            return Err(ApiError::invalid(
                format!("{at}partner_id"),
                format!("{p} is not a partner"),
            ))
        }
    };
    if let Some(p) = r.on_behalf_of.filter(|p| !is_partner(model, *p)) {
        return Err(ApiError::invalid(
            format!("{at}on_behalf_of"),
            format!("{p} is not a partner"),
        ));
    }
    let shipment = match (r.shipment_id, &r.carrier, &r.tracking_number) {
        (Some(id), None, None) => ShipmentRef::Id(id),
        (None, Some(c), Some(t)) => ShipmentRef::Tracking(c.clone(), t.clone()),
        (None, Some(_), None) => {
            return Err(ApiError::invalid(
                format!("{at}tracking_number"),
                "required with carrier",
            ))
        }
        (None, None, Some(_)) => {
            return Err(ApiError::invalid(
                format!("{at}carrier"),
                "required with tracking_number",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                format!("{at}shipment_id"),
                "name the shipment either by shipment_id or by carrier and tracking_number",
            ))
        }
    };
    Ok(Question {
        partner,
        shipment,
        purpose: r.purpose,
        requested: Categories::of(r.data_categories.as_slice()),
        on_behalf_of: r.on_behalf_of,
    })
}

/// Decides every question on one state of the model and records them in one append; decides
/// again if a restriction committed meanwhile. Returns the committed decision events.
pub async fn decide_and_record(
    state: &AppState,
    questions: &[Question],
    meta: CommandMeta,
) -> Result<Vec<StoredEvent>, ApiError> {
    for _ in 0..STALE_RETRIES {
        let (events, decided_before) = {
            let model = state.projector.read();
            let now = state.clock.now();
            let mut any_allowed = false;
            let events: Vec<NewEvent> = questions
                .iter()
                .map(|q| {
                    let (event, allowed) = decide(&model, q, now);
                    any_allowed |= allowed;
                    event
                })
                .collect::<Result<_, _>>()?;
            (events, any_allowed.then(|| model.next_position()))
        };
        let append = Append {
            events,
            provenance: meta.provenance.clone(),
            idempotency: meta.idempotency.clone(),
            unique_claims: Vec::new(),
            guard: Guard {
                restricts: false,
                decided_before,
            },
        };
        match state.store.append(append).await {
            Err(StoreError::Stale { .. }) => state.projector.catch_up().await.map(|_| ())?,
            Ok(events) => {
                let allowed = events
                    .iter()
                    .filter(|e| e.event_type == "TrackingAccessAllowed")
                    .count() as u64;
                state
                    .metrics
                    .decisions_allowed
                    .fetch_add(allowed, Ordering::Relaxed);
                state
                    .metrics
                    .decisions_denied
                    .fetch_add(events.len() as u64 - allowed, Ordering::Relaxed);
                return Ok(events);
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::Unavailable(anyhow::anyhow!(
        "restrictions kept committing while deciding; retry"
    )))
}

/// One decision as the event that records it, and whether it allowed.
fn decide(
    model: &ReadModel,
    q: &Question,
    now: chrono::DateTime<chrono::Utc>,
) -> (Result<NewEvent, ApiError>, bool) {
    let verdict = model
        .access
        .decide(q.partner, &q.shipment, q.purpose, q.requested, now);
    let decision_id = Uuid::now_v7();
    let (event, allowed) = match (verdict.outcome, verdict.shipment) {
        (
            Outcome::Allowed {
                consents,
                categories,
            },
            Some(shipment),
        ) => (
            AccessEvent::TrackingAccessAllowed {
                decision_id,
                partner: q.partner,
                shipment,
                purpose: q.purpose,
                requested: q.requested.to_vec(),
                granted: categories.to_vec(),
                consents,
                on_behalf_of: q.on_behalf_of,
                decided_at: now,
            },
            true,
        ),
        (outcome, shipment) => {
            let reason = match outcome {
                Outcome::Denied(reason) => reason,
                Outcome::Allowed { .. } => DenyReason::UnknownShipment,
            };
            // An unknown shipment is recorded by the reference asked for.
            let (shipment, carrier, tracking_number) = match (&q.shipment, shipment) {
                (_, Some(known)) => (Some(known), None, None),
                (ShipmentRef::Id(asked), None) => (Some(*asked), None, None),
                (ShipmentRef::Tracking(c, t), None) => (None, Some(c.clone()), Some(t.clone())),
            };
            (
                AccessEvent::TrackingAccessDenied {
                    decision_id,
                    partner: q.partner,
                    shipment,
                    consent: verdict.consent,
                    carrier,
                    tracking_number,
                    purpose: q.purpose,
                    requested: q.requested.to_vec(),
                    reason,
                    on_behalf_of: q.on_behalf_of,
                    decided_at: now,
                },
                false,
            )
        }
    };
    let event = NewEvent::from_presorted_domain(&event, ACCESS_STREAM, &decision_id.to_string(), 1)
        .map_err(|e| ApiError::Internal(e.into()));
    (event, allowed)
}

/// The answer for a recorded decision event.
fn answer(stored: &StoredEvent) -> Result<DecisionAnswer, ApiError> {
    let event: AccessEvent = stored
        .payload
        .decode()
        .map_err(|e| ApiError::Internal(e.into()))?;
    let position = stored.position.get();
    Ok(match event {
        AccessEvent::TrackingAccessAllowed {
            decision_id,
            granted,
            consents,
            ..
        } => DecisionAnswer {
            decision_id,
            position,
            allowed: true,
            reason: None,
            consent_ids: consents,
            data_categories: granted,
        },
        AccessEvent::TrackingAccessDenied {
            decision_id,
            reason,
            ..
        } => DecisionAnswer {
            decision_id,
            position,
            allowed: false,
            reason: Some(reason),
            consent_ids: Vec::new(),
            data_categories: Vec::new(),
        },
    })
}

/// Makes the model at least as fresh as `position` (SPEC §5.2's explicit form).
async fn ensure_fresh(
    state: &AppState,
    position: Option<u64>,
    field: &str,
) -> Result<(), ApiError> {
    let Some(position) = position else {
        return Ok(());
    };
    let wanted = Position::new(position);
    if state.projector.read().next_position() > wanted {
        return Ok(());
    }
    if state.projector.catch_up().await? > wanted {
        return Ok(());
    }
    Err(ApiError::invalid(
        field,
        format!("position {position} is not committed yet"),
    ))
}

/// Decide whether a partner may read a shipment's tracking data, and record the decision.
#[utoipa::path(post, path = "/v1/decisions", tag = "decisions", request_body = DecisionRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 200, body = DecisionAnswer, description = "allowed or denied; recorded before it is sent"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
#[post("/v1/decisions")]
pub async fn decide_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Partner, Role::Gateway])?;
    let body = read_body(payload).await?;
    let input: DecisionRequest = parse_json(&body)?;
    ensure_fresh(&state, input.at_least_as_fresh, "at_least_as_fresh").await?;
    let q = question(&state.projector.read(), &caller, &input, "")?;
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::OK,
        |meta| async { decide_and_record(&state, std::slice::from_ref(&q), meta).await },
        |events, _| {
            let first = events
                .first()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no decision recorded")))?;
            Ok(serde_json::to_value(answer(first)?).unwrap_or_default())
        },
    )
    .await
}

/// Up to 1,000 decisions in one call, recorded in one append.
#[utoipa::path(post, path = "/v1/decisions/batch", tag = "decisions", request_body = DecisionBatch,
    security(("bearer" = [])),
    responses((status = 200, body = BatchAnswer), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
#[post("/v1/decisions/batch")]
pub async fn decide_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Partner, Role::Gateway])?;
    let body = read_body(payload).await?;
    let input: DecisionBatch = parse_json(&body)?;
    if input.items.is_empty() || input.items.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "items",
            format!("must hold 1 to {MAX_BATCH} decisions"),
        ));
    }
    let freshest = input.items.iter().filter_map(|i| i.at_least_as_fresh).max();
    ensure_fresh(&state, freshest, "at_least_as_fresh").await?;
    let questions = {
        let model = state.projector.read();
        input
            .items
            .iter()
            .enumerate()
            .map(|(i, r)| question(&model, &caller, r, &format!("items[{i}].")))
            .collect::<Result<Vec<_>, _>>()?
    };
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::OK,
        |meta| async { decide_and_record(&state, &questions, meta).await },
        |events, _| {
            let results = events.iter().map(answer).collect::<Result<Vec<_>, _>>()?;
            Ok(serde_json::to_value(BatchAnswer { results }).unwrap_or_default())
        },
    )
    .await
}
