//! Carrier authorizations of tracking intermediaries (SPEC §16): an admin authorizes a partner
//! under a DPA of the register, lists and revokes; the partner reads its own; a shipper sees
//! every authorization that can cover its shipments and objects (GDPR Art. 21) or withdraws its
//! objection; privacy officers and regulators read them all. A revocation and an objection are
//! restrictions: effective at commit on every node (SPEC §5.2).

use chrono::{DateTime, Utc};
use consent_ledger_domain::authorization::{
    AuthorizationCommand, AuthorizationScope, AuthorizationTerms,
};
use consent_ledger_domain::personal::Personal;
use consent_ledger_domain::values::{
    AuthorizationId, CarrierCode, CountryCode, DataCategory, DpaId, LegalBasis, NonEmptySet,
    PartnerId, PrincipalId, Purpose, Reason, Role, ShipperId,
};
use consent_ledger_domain::webhook::WebhookEventType;
use consent_ledger_projections::authorization::{AuthorizationStatus, AuthorizationView};
use consent_ledger_projections::ReadModel;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::state::AppState;
use crate::webhooks::outbox;
use crate::write::{self, Answer, Created, Positioned, WriteContext};

/// Who reads authorizations: a partner its own, a shipper those that can cover its
/// shipments; these roles every one.
pub const READERS: &[Role] = &[
    Role::Admin,
    Role::Partner,
    Role::Shipper,
    Role::PrivacyOfficer,
    Role::Regulator,
];

/// `POST /v1/authorizations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantAuthorization {
    #[schema(value_type = String, format = Uuid)]
    pub partner_id: PartnerId,
    /// An agreement of the register with this partner, in force.
    #[schema(value_type = String, format = Uuid)]
    pub dpa_id: DpaId,
    /// Which shipments: those matching every list named (none named: all).
    #[serde(default)]
    #[schema(value_type = AuthorizationScope)]
    pub scope: ScopeInput,
    #[schema(value_type = Vec<Purpose>)]
    pub purposes: NonEmptySet<Purpose>,
    #[schema(value_type = Vec<DataCategory>)]
    pub data_categories: NonEmptySet<DataCategory>,
    /// `legitimate_interests`, `contract` or `legal_obligation`: never consent.
    pub legal_basis: LegalBasis,
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
}

/// An authorization's `scope` as sent: its shippers in the caller's order, so that a problem
/// names the index the caller sent (the scope's set sorts and deduplicates them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeInput {
    #[serde(default)]
    pub carriers: Option<NonEmptySet<CarrierCode>>,
    #[serde(default)]
    pub destination_countries: Option<NonEmptySet<CountryCode>>,
    #[serde(default)]
    pub shipper_ids: Option<Vec<ShipperId>>,
}

/// `POST /v1/authorizations/{id}/revoke`: `{"reason"?}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeAuthorization {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Reason>,
}

/// `GET /v1/authorizations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationList {
    pub items: Vec<AuthorizationView>,
}

/// What narrows a list.
#[derive(Debug, Default, Clone, Copy)]
pub struct ListFilter {
    pub partner: Option<PartnerId>,
    pub shipper: Option<ShipperId>,
    pub status: Option<AuthorizationStatus>,
}

fn principal_is(model: &ReadModel, id: PrincipalId, role: Role) -> bool {
    model.principals.get(&id).is_some_and(|p| p.role == role)
}

/// The view as `caller` may see it at `now`, or `None` when it may not see it at all: a
/// partner its own (objections without the shipper's words), a shipper one that can cover its
/// shipments (its own objection only).
fn seen_by(
    caller: &Caller,
    view: &AuthorizationView,
    now: DateTime<Utc>,
) -> Option<AuthorizationView> {
    let mut view = view.clone();
    view.status = view.status_at(now);
    match caller.role {
        Role::Partner if view.partner_id != caller.id.as_partner() => return None,
        Role::Partner => {
            for o in &mut view.objections {
                o.reason = Personal::Erased;
            }
        }
        Role::Shipper => {
            let shipper = caller.id.as_shipper();
            if !view.concerns(shipper) {
                return None;
            }
            view.objections.retain(|o| o.shipper_id == shipper);
        }
        _ => {}
    }
    Some(view)
}

/// One authorization, if the caller may see it (otherwise 404).
pub fn get(
    state: &AppState,
    caller: &Caller,
    id: AuthorizationId,
) -> Result<AuthorizationView, AppError> {
    caller.require(READERS)?;
    let now = state.clock.now();
    let model = state.projector.read();
    model
        .authorizations
        .get(&id)
        .and_then(|v| seen_by(caller, v, now))
        .ok_or_else(AppError::not_found)
}

/// The authorizations the caller may see, oldest first.
pub fn list(
    state: &AppState,
    caller: &Caller,
    filter: ListFilter,
) -> Result<AuthorizationList, AppError> {
    caller.require(READERS)?;
    let now = state.clock.now();
    let model = state.projector.read();
    let items = model
        .authorizations
        .values()
        .filter(|v| filter.partner.is_none_or(|p| v.partner_id == p))
        .filter(|v| filter.shipper.is_none_or(|s| v.concerns(s)))
        .filter_map(|v| seen_by(caller, v, now))
        .filter(|v| filter.status.is_none_or(|s| v.status == s))
        .collect();
    Ok(AuthorizationList { items })
}

/// The `data` of an authorization's messages to its partner (SPEC §13): what it covers, never
/// a shipper's words.
fn message_data(id: AuthorizationId, terms: &AuthorizationTerms) -> serde_json::Value {
    serde_json::json!({
        "authorization_id": id,
        "partner_id": terms.partner,
        "dpa_id": terms.dpa,
        "scope": terms.scope,
        "purposes": terms.purposes,
        "data_categories": terms.data_categories,
        "legal_basis": terms.legal_basis,
        "valid_from": terms.valid_from,
        "valid_until": terms.valid_until,
    })
}

/// Authorizes a partner (admin) under one of its agreements in force.
#[tracing::instrument(level = "debug", skip_all, fields(partner = %input.partner_id))]
pub async fn grant(
    state: &AppState,
    caller: &Caller,
    input: GrantAuthorization,
    context: WriteContext,
) -> Result<(Created, Answer), AppError> {
    caller.require(&[Role::Admin])?;
    let now = state.clock.now();
    let id = AuthorizationId::from_uuid(state.ids.new_id());
    let ScopeInput {
        carriers,
        destination_countries,
        shipper_ids: sent,
    } = input.scope;
    let shipper_ids = sent
        .clone()
        .map(NonEmptySet::new)
        .transpose()
        .map_err(|e| AppError::invalid("scope.shipper_ids", e.to_string()))?;
    let terms = AuthorizationTerms {
        partner: input.partner_id,
        dpa: input.dpa_id,
        scope: AuthorizationScope {
            carriers,
            destination_countries,
            shipper_ids,
        },
        purposes: input.purposes,
        data_categories: input.data_categories,
        legal_basis: input.legal_basis,
        valid_from: input.valid_from.unwrap_or(now),
        valid_until: input.valid_until,
    };
    let outbox = {
        let model = state.projector.read();
        if !principal_is(&model, PrincipalId::from(terms.partner), Role::Partner) {
            return Err(AppError::invalid("partner_id", "not a partner"));
        }
        match model.dpas.get(&terms.dpa) {
            Some(d) if d.partner_id != terms.partner => {
                return Err(AppError::invalid(
                    "dpa_id",
                    "not an agreement of this partner",
                ))
            }
            Some(d) if !d.in_force(now) => {
                return Err(AppError::invalid("dpa_id", "the agreement is not in force"))
            }
            Some(_) => {}
            None => return Err(AppError::invalid("dpa_id", "no such agreement")),
        }
        // In the order sent, so that a problem names the caller's index (the set sorts them).
        if let Some(i) = sent
            .iter()
            .flatten()
            .position(|s| !principal_is(&model, PrincipalId::from(*s), Role::Shipper))
        {
            return Err(AppError::invalid(
                format!("scope.shipper_ids[{i}]"),
                "not a shipper",
            ));
        }
        let data = message_data(id, &terms);
        drop(model);
        outbox::messages(
            state,
            terms.partner,
            WebhookEventType::AuthorizationGranted,
            now,
            &data,
        )?
    };
    write::record(
        state,
        context,
        |mut meta| async {
            meta.outbox = outbox;
            Ok(state
                .authorizations
                .execute(
                    &id.to_string(),
                    AuthorizationCommand::Grant { id, terms },
                    meta,
                )
                .await?)
        },
        |events, _| Created::of(events),
    )
    .await
}

/// Revokes an authorization (admin): no read allowed through it commits after the answer.
#[tracing::instrument(level = "debug", skip_all, fields(authorization = %id))]
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: AuthorizationId,
    input: RevokeAuthorization,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    caller.require(&[Role::Admin])?;
    let now = state.clock.now();
    let view = get(state, caller, id)?;
    let mut data = message_data(id, &view.terms());
    data["revoked_at"] = serde_json::json!(now);
    let outbox = outbox::messages(
        state,
        view.partner_id,
        WebhookEventType::AuthorizationRevoked,
        now,
        &data,
    )?;
    write::record(
        state,
        context,
        |mut meta| async {
            // Effective at commit, on every node (SPEC §5.2).
            meta.restricts = true;
            meta.outbox = outbox;
            Ok(state
                .authorizations
                .execute(
                    &id.to_string(),
                    AuthorizationCommand::Revoke {
                        reason: input.reason,
                    },
                    meta,
                )
                .await?)
        },
        |events, _| Positioned::of(events),
    )
    .await
}

/// Whether the caller may object to (or withdraw its objection to) authorization `id`: 404
/// unless it may see it, 403 unless it is a shipper. A transport checks this before reading a
/// body.
pub fn may_object(state: &AppState, caller: &Caller, id: AuthorizationId) -> Result<(), AppError> {
    get(state, caller, id)?;
    caller.require(&[Role::Shipper])
}

/// The calling shipper objects (Art. 21): its shipments are excluded from the commit on, on
/// every node (SPEC §5.2). The partner is told, without the shipper's words.
#[tracing::instrument(level = "debug", skip_all, fields(authorization = %id))]
pub async fn object(
    state: &AppState,
    caller: &Caller,
    id: AuthorizationId,
    reason: Reason,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    may_object(state, caller, id)?;
    let now = state.clock.now();
    let view = get(state, caller, id)?;
    let mut data = message_data(id, &view.terms());
    data["shipper_id"] = serde_json::json!(caller.id.as_shipper());
    data["objected_at"] = serde_json::json!(now);
    let outbox = outbox::messages(
        state,
        view.partner_id,
        WebhookEventType::AuthorizationObjected,
        now,
        &data,
    )?;
    let shipper = caller.id.as_shipper();
    write::record(
        state,
        context,
        |mut meta| async {
            meta.restricts = true;
            meta.outbox = outbox;
            Ok(state
                .authorizations
                .execute(
                    &id.to_string(),
                    AuthorizationCommand::Object { shipper, reason },
                    meta,
                )
                .await?)
        },
        |events, _| Positioned::of(events),
    )
    .await
}

/// The calling shipper withdraws its objection: the authorization covers its shipments again.
#[tracing::instrument(level = "debug", skip_all, fields(authorization = %id))]
pub async fn withdraw_objection(
    state: &AppState,
    caller: &Caller,
    id: AuthorizationId,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    may_object(state, caller, id)?;
    let shipper = caller.id.as_shipper();
    write::record(
        state,
        context,
        |meta| async {
            Ok(state
                .authorizations
                .execute(
                    &id.to_string(),
                    AuthorizationCommand::WithdrawObjection { shipper },
                    meta,
                )
                .await?)
        },
        |events, _| Positioned::of(events),
    )
    .await
}
