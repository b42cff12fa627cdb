//! The hot path (SPEC §3 access decision, §5), read top to bottom:
//!
//! request → [`question`] (who asks, about which parcel) → [`Decider::decide`] on one state of
//! the read model (in memory, microseconds) → one event per decision → [`Store::append`]
//! through the group commit (one fsync for every decision waiting) → the commit hook applies
//! it → the answer, built from the verdict.
//!
//! Three guarantees of §5 hold here, each marked `§5` where it is kept:
//! - **Durable before answered** (§5.3): no answer, allow or deny, exists before its event is
//!   fsynced — the answer is built only from what `append` returned.
//! - **Revocation fence** (§5.2): every decision is appended with `Guard::decided_before` = the
//!   position its state had applied up to. If a revocation, suspension or token rotation
//!   committed at or after that position, the store refuses it as stale and the decision is
//!   made again on the fresher state, so no allow commits after a revoke's commit, and no
//!   decision at all on a token rotated or suspended meanwhile (the caller is checked again
//!   on the state each attempt decides on: [`Caller::still_holds`]).
//! - **No read without a record** (§5.1): the only way to an `allowed: true` is through an
//!   appended `TrackingAccessAllowed` event.
//!
//! [`Decider::decide`]: consent_ledger_projections::decider::Decider::decide
//! [`Store::append`]: consent_ledger_store::Store::append

use std::sync::atomic::Ordering;

use consent_ledger_domain::access::{AccessEvent, Channel, DenyReason, ACCESS_STREAM};
use consent_ledger_domain::values::{
    AuthorizationId, CarrierCode, ConsentId, DataCategory, DpaId, NonEmptySet, PartnerId,
    PrincipalId, Purpose, Role, ShipmentId, TrackingNumber,
};
use consent_ledger_projections::decider::{Categories, ShipmentRef, Verdict};
use consent_ledger_projections::ReadModel;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::{Append, Guard, NewEvent, Position, StoreError, StoredEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::AppError;
use crate::state::AppState;
use crate::write::{self, Answer, WriteContext, IDEMPOTENCY_KEY};

/// Most decisions in one batch call (SPEC §7).
pub const MAX_BATCH: usize = 1_000;
/// Times a decision is made again after a concurrent restriction before giving up (503).
const STALE_RETRIES: usize = 8;
/// How long a decision's `Idempotency-Key` replays its answer (docs/adr/0003): long enough for
/// any client's retries, short enough that a key is not a standing pass.
pub const DECISION_KEY_TTL: chrono::Duration = chrono::Duration::hours(24);

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
    #[schema(min_items = 1, max_items = 1000)]
    pub items: Vec<DecisionRequest>,
}

/// SPEC §7 decision answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionAnswer {
    pub decision_id: Uuid,
    pub position: u64,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
    pub consent_ids: Vec<ConsentId>,
    /// The carrier authorizations in force that cover the read (SPEC §16).
    pub authorization_ids: Vec<AuthorizationId>,
    /// The DPA the allowed read relies on (SPEC §16), when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpa_id: Option<DpaId>,
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
    /// Set when the ledger itself serves what is allowed (SPEC §14), recorded with it.
    pub channel: Option<Channel>,
}

fn is_partner(model: &ReadModel, id: PartnerId) -> bool {
    model
        .principals
        .get(&PrincipalId::from(id))
        .is_some_and(|p| p.role == Role::Partner)
}

/// Whose access a caller asks about: a partner its own (naming none, or itself); the gateway
/// must name a partner. `at` prefixes the field name (`items[3].`) in a batch.
pub fn asking_partner(
    model: &ReadModel,
    caller: &Caller,
    named: Option<PartnerId>,
    at: &str,
) -> Result<PartnerId, AppError> {
    let invalid = |detail: String| AppError::invalid(format!("{at}partner_id"), detail);
    match (caller.role, named) {
        (Role::Partner, None) => Ok(caller.id.as_partner()),
        (Role::Partner, Some(p)) if p == caller.id.as_partner() => Ok(p),
        (Role::Partner, Some(_)) => Err(invalid("a partner asks for its own access only".into())),
        (_, None) => Err(invalid("the gateway must name the partner".into())),
        (_, Some(p)) if is_partner(model, p) => Ok(p),
        (_, Some(p)) => Err(invalid(format!("{p} is not a partner"))),
    }
}

/// Checks one request against the caller; `at` prefixes field names (`items[3].`) in a batch.
pub fn question(
    model: &ReadModel,
    caller: &Caller,
    r: &DecisionRequest,
    at: &str,
) -> Result<Question, AppError> {
    let invalid = |field: &str, detail: String| AppError::invalid(format!("{at}{field}"), detail);
    let partner = asking_partner(model, caller, r.partner_id, at)?;
    if let Some(p) = r.on_behalf_of.filter(|p| !is_partner(model, *p)) {
        return Err(invalid("on_behalf_of", format!("{p} is not a partner")));
    }
    let shipment = match (r.shipment_id, &r.carrier, &r.tracking_number) {
        (Some(id), None, None) => ShipmentRef::Id(id),
        (None, Some(c), Some(t)) => ShipmentRef::Tracking(c.clone(), t.clone()),
        (None, Some(_), None) => {
            return Err(invalid("tracking_number", "required with carrier".into()))
        }
        (None, None, Some(_)) => {
            return Err(invalid("carrier", "required with tracking_number".into()))
        }
        _ => {
            return Err(invalid(
                "shipment_id",
                "name the shipment either by shipment_id or by carrier and tracking_number".into(),
            ))
        }
    };
    Ok(Question {
        partner,
        shipment,
        purpose: r.purpose,
        requested: Categories::of(r.data_categories.as_slice()),
        on_behalf_of: r.on_behalf_of,
        channel: None,
    })
}

/// Decides `questions` for `caller` and records them (one append, one answer each), retry-safe
/// under the context's idempotency key: a replay answers what the first call answered.
#[tracing::instrument(level = "debug", skip_all, fields(decisions = questions.len()))]
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    context: WriteContext,
    questions: &[Question],
) -> Result<(Vec<DecisionAnswer>, Answer), AppError> {
    // The first answer comes from the decisions just made; only a replay decodes stored events.
    let decided = std::sync::Mutex::new(None);
    write::record(
        state,
        context,
        |meta| async {
            let (events, answers) = decide_and_record(state, caller, questions, meta).await?;
            *decided.lock().unwrap_or_else(|p| p.into_inner()) = Some(answers);
            Ok(events)
        },
        |events, answer| {
            let first = match answer {
                Answer::First => decided.lock().unwrap_or_else(|p| p.into_inner()).take(),
                Answer::Replay => None,
            };
            match first {
                Some(answers) => Ok(answers),
                None => replayed(state, caller, events),
            }
        },
    )
    .await
}

/// Decides every question on one state of the model and records them in one append; decides
/// again if a restriction committed meanwhile. Returns the committed events and their answers.
#[tracing::instrument(level = "trace", skip_all, fields(decisions = questions.len()))]
pub async fn decide_and_record(
    state: &AppState,
    caller: &Caller,
    questions: &[Question],
    meta: CommandMeta,
) -> Result<(Vec<StoredEvent>, Vec<DecisionAnswer>), AppError> {
    for _ in 0..STALE_RETRIES {
        // One state of the read model for the whole batch, released before the append.
        let (events, answers, decided_before) = {
            let model = state.projector.read();
            // SPEC §2: the caller's token may have been rotated or its principal suspended
            // since it was authenticated (the fence below sent us round again).
            if !caller.still_holds(&model) {
                return Err(AppError::Unauthorized);
            }
            let now = state.clock.now();
            let mut events = Vec::with_capacity(questions.len());
            let mut answers = Vec::with_capacity(questions.len());
            for q in questions {
                let (event, answer) = decision(&model, q, state.ids.new_id(), now)?;
                events.push(event);
                answers.push(answer);
            }
            // §5.2 revocation fence: a decision is only valid if no restriction committed at
            // or after the position this state had applied up to.
            (events, answers, Some(model.next_position()))
        };
        let append = Append {
            idempotency: meta.idempotency.clone(),
            guard: Guard {
                restricts: false,
                decided_before,
            },
            ..Append::plain(events, meta.provenance.clone())
        };
        // §5.3 durable before answered: `append` returns once the batch holding these events
        // is fsynced; nothing of the answer leaves before.
        match state.store.append(append).await {
            // §5.2: a revocation or suspension committed meanwhile; decide again on it.
            Err(StoreError::Stale { .. }) => state.projector.catch_up().await.map(|_| ())?,
            Ok(events) => {
                let answers: Vec<DecisionAnswer> = answers
                    .into_iter()
                    .zip(&events)
                    .map(|(answer, stored)| DecisionAnswer {
                        position: stored.position.get(),
                        reason: answer.reason.map(|r| told(caller, r)),
                        ..answer
                    })
                    .collect();
                let allowed = answers.iter().filter(|a| a.allowed).count() as u64;
                state
                    .metrics
                    .decisions_allowed
                    .fetch_add(allowed, Ordering::Relaxed);
                state
                    .metrics
                    .decisions_denied
                    .fetch_add(answers.len() as u64 - allowed, Ordering::Relaxed);
                return Ok((events, answers));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(AppError::Unavailable(anyhow::anyhow!(
        "restrictions kept committing while deciding; retry"
    )))
}

/// One decision: the event that records it, and the answer it gives once recorded (its
/// position still to be filled in from the commit).
fn decision(
    model: &ReadModel,
    q: &Question,
    decision_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(NewEvent, DecisionAnswer), AppError> {
    let (event, answer) = decided(model, q, decision_id, now);
    Ok((recorded(&event)?, answer))
}

/// One decision on `model`: the event to record, and the answer it gives once recorded.
pub fn decided(
    model: &ReadModel,
    q: &Question,
    decision_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> (AccessEvent, DecisionAnswer) {
    let verdict = model
        .access
        .decide(q.partner, &q.shipment, q.purpose, q.requested, now);
    let verdict = match (verdict, q.on_behalf_of) {
        (verdict @ Verdict::Allowed { .. }, Some(recipient)) => {
            relayed(model, q, verdict, recipient, now)
        }
        (verdict, _) => verdict,
    };
    let (event, answer) = match verdict {
        // §5.1 no read without a record: this event is the only way to `allowed: true`.
        Verdict::Allowed {
            shipment,
            consents,
            authorizations,
            categories,
            dpa,
        } => (
            AccessEvent::TrackingAccessAllowed {
                authorizations: authorizations.clone(),
                body_sha256: None,
                channel: q.channel,
                decision_id,
                dpa,
                partner: q.partner,
                shipment,
                purpose: q.purpose,
                requested: q.requested.to_vec(),
                granted: categories.to_vec(),
                consents: consents.clone(),
                on_behalf_of: q.on_behalf_of,
                decided_at: now,
            },
            DecisionAnswer {
                decision_id,
                position: 0,
                allowed: true,
                reason: None,
                consent_ids: consents,
                authorization_ids: authorizations,
                dpa_id: dpa,
                data_categories: categories.to_vec(),
            },
        ),
        Verdict::Denied {
            shipment,
            reason,
            consent,
            authorization,
        } => {
            // An unknown shipment is recorded by the reference asked for.
            let (shipment, carrier, tracking_number) = match (&q.shipment, shipment) {
                (_, Some(known)) => (Some(known), None, None),
                (ShipmentRef::Id(asked), None) => (Some(*asked), None, None),
                (ShipmentRef::Tracking(c, t), None) => {
                    (None, Some(c.clone()), Some(t.clone().into()))
                }
            };
            (
                AccessEvent::TrackingAccessDenied {
                    authorization,
                    channel: q.channel,
                    decision_id,
                    partner: q.partner,
                    shipment,
                    consent,
                    carrier,
                    tracking_number,
                    purpose: q.purpose,
                    requested: q.requested.to_vec(),
                    reason,
                    on_behalf_of: q.on_behalf_of,
                    decided_at: now,
                },
                DecisionAnswer {
                    decision_id,
                    position: 0,
                    allowed: false,
                    reason: Some(reason),
                    consent_ids: Vec::new(),
                    authorization_ids: Vec::new(),
                    dpa_id: None,
                    data_categories: Vec::new(),
                },
            )
        }
    };
    (event, answer)
}

/// An allowed read relayed by an intermediary to `recipient` (SPEC §16): the data reaches
/// the recipient only when it is an active partner, and is a sub-processor on the DPA the
/// allow relied on or holds a consent or authorization of its own for the same read.
fn relayed(
    model: &ReadModel,
    q: &Question,
    verdict: Verdict,
    recipient: PartnerId,
    now: chrono::DateTime<chrono::Utc>,
) -> Verdict {
    let Verdict::Allowed { shipment, dpa, .. } = &verdict else {
        return verdict;
    };
    // Denied as if the recipient asked: the data would reach it. (Its suspension moves the
    // §5.2 fence like any restriction.)
    if model.access.is_suspended(recipient) {
        return Verdict::denied(Some(*shipment), DenyReason::PartnerSuspended);
    }
    let on_the_dpa = dpa.and_then(|d| model.dpas.get(&d)).is_some_and(|d| {
        d.sub_processors
            .iter()
            .any(|s| s.partner_id == Some(recipient))
    });
    let own_grant = || {
        matches!(
            model.access.decide(
                recipient,
                &ShipmentRef::Id(*shipment),
                q.purpose,
                q.requested,
                now
            ),
            Verdict::Allowed { .. }
        )
    };
    if on_the_dpa || own_grant() {
        verdict
    } else {
        Verdict::denied(Some(*shipment), DenyReason::DpaMissing)
    }
}

/// The event of a decision as appended: its own stream of one event.
pub fn recorded(event: &AccessEvent) -> Result<NewEvent, AppError> {
    // A tracking number asked for and unknown is personal: sealed into a commitment (SPEC
    // §12). Every other decision holds none, and is written in one serialisation.
    match event {
        AccessEvent::TrackingAccessDenied {
            tracking_number: Some(_),
            decision_id,
            ..
        } => NewEvent::from_domain(event, ACCESS_STREAM, &decision_id.to_string(), 1),
        AccessEvent::TrackingAccessAllowed { decision_id, .. }
        | AccessEvent::TrackingAccessDenied { decision_id, .. } => {
            NewEvent::from_presorted_domain(event, ACCESS_STREAM, &decision_id.to_string(), 1)
        }
        AccessEvent::TrackingDeliveryCancelled { decision_id, .. } => {
            NewEvent::from_presorted_domain(
                event,
                ACCESS_STREAM,
                &decision_id.to_string(),
                AccessEvent::CANCELLATION_VERSION,
            )
        }
    }
    .map_err(AppError::internal)
}

/// The answers of recorded decisions for a retry with the same `Idempotency-Key`, decoded from
/// their stored events — unless that would be a stale allow (docs/adr/0003): a key older than
/// [`DECISION_KEY_TTL`] replays nothing, and an allow whose ground is gone (a consent it rested
/// on revoked or expired, the partner suspended: the revocation's answer had returned, so the
/// model this replay caught up to holds it) is refused rather than repeated.
fn replayed(
    state: &AppState,
    caller: &Caller,
    events: &[StoredEvent],
) -> Result<Vec<DecisionAnswer>, AppError> {
    let now = state.clock.now();
    let model = state.projector.read();
    events
        .iter()
        .map(|stored| {
            let event: AccessEvent = stored.decode().map_err(AppError::internal)?;
            let position = stored.position.get();
            Ok(match event {
                AccessEvent::TrackingAccessAllowed {
                    decision_id,
                    decided_at,
                    partner,
                    shipment,
                    purpose,
                    requested,
                    granted,
                    consents,
                    authorizations,
                    dpa,
                    ..
                } => {
                    unexpired(decided_at, now)?;
                    // §5.2: the allow stands only while every consent and authorization it
                    // rested on still does.
                    let still = match model.access.decide(
                        partner,
                        &ShipmentRef::Id(shipment),
                        purpose,
                        Categories::of(&requested),
                        now,
                    ) {
                        Verdict::Allowed {
                            consents: in_force,
                            authorizations: authorized,
                            ..
                        } => {
                            consents.iter().all(|c| in_force.contains(c))
                                && authorizations.iter().all(|a| authorized.contains(a))
                        }
                        Verdict::Denied { .. } => false,
                    };
                    if !still {
                        return Err(AppError::Conflict {
                            slug: "decision-superseded",
                            detail: "the decision this Idempotency-Key recorded allowed reading, \
                                     but a revocation, suspension or expiry has committed since; \
                                     ask again without this key"
                                .into(),
                            field: Some(IDEMPOTENCY_KEY.into()),
                        });
                    }
                    DecisionAnswer {
                        decision_id,
                        position,
                        allowed: true,
                        reason: None,
                        consent_ids: consents,
                        authorization_ids: authorizations,
                        dpa_id: dpa,
                        data_categories: granted,
                    }
                }
                AccessEvent::TrackingDeliveryCancelled { .. } => {
                    return Err(AppError::internal(anyhow::anyhow!(
                        "a decision's key recorded a cancellation"
                    )))
                }
                AccessEvent::TrackingAccessDenied {
                    decision_id,
                    decided_at,
                    reason,
                    ..
                } => {
                    unexpired(decided_at, now)?;
                    DecisionAnswer {
                        decision_id,
                        position,
                        allowed: false,
                        reason: Some(told(caller, reason)),
                        consent_ids: Vec::new(),
                        authorization_ids: Vec::new(),
                        dpa_id: None,
                        data_categories: Vec::new(),
                    }
                }
            })
        })
        .collect()
}

/// The reason `caller` is told: a partner cannot tell another tenant's parcel from no parcel
/// (SPEC §2, [`DenyReason::as_seen_by_partner`]); the record keeps the true one.
pub fn told(caller: &Caller, reason: DenyReason) -> DenyReason {
    match caller.role {
        Role::Partner => reason.as_seen_by_partner(),
        _ => reason,
    }
}

/// A decision's key replays for [`DECISION_KEY_TTL`] after the decision.
fn unexpired(
    decided_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AppError> {
    if now - decided_at <= DECISION_KEY_TTL {
        return Ok(());
    }
    Err(AppError::Conflict {
        slug: "idempotency-key-expired",
        detail: format!(
            "a decision's Idempotency-Key replays its answer for {} hours; this one has expired: \
             ask again with a new key",
            DECISION_KEY_TTL.num_hours()
        ),
        field: Some(IDEMPOTENCY_KEY.into()),
    })
}

/// Makes the model at least as fresh as `position` (SPEC §5.2's explicit form).
#[tracing::instrument(level = "trace", skip(state))]
pub async fn ensure_fresh(
    state: &AppState,
    position: Option<u64>,
    field: &str,
) -> Result<(), AppError> {
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
    Err(AppError::invalid(
        field,
        format!("position {position} is not committed yet"),
    ))
}
