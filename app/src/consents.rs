//! Consents (SPEC §3, §7): a shipper grants one to a partner and revokes it; its shipper, its
//! partner and auditors list and read it, with its history and the request it answered; and
//! its receipt in the field shape of ISO/IEC TS 27560, signed with the log key.
//!
//! Who may see a consent is decided here once ([`can_see`]); another tenant's consent and a
//! missing one answer alike (404), so existence does not leak.

use base64::Engine;
use chrono::{DateTime, Utc};
use consent_ledger_domain::consent::ConsentCommand;
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    ConsentId, DataCategory, DpaRef, LegalBasis, NonEmptySet, PartnerId, PrincipalId, Purpose,
    Reason, Role,
};
use consent_ledger_domain::webhook::WebhookEventType;
use consent_ledger_projections::model::{ConsentStatus, ConsentView, ReadModel, RequestView};
use consent_ledger_store::Position;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::history::{stream_history, HistoryEntry, Narrowing};
use crate::query::{page, ListQuery, Page};
use crate::state::AppState;
use crate::write::{self, Answer, Created, Positioned, WriteContext};

/// The `status` values a list of consents may be filtered by.
pub const STATUSES: &[&str] = &["active", "revoked", "expired", "not_yet_valid"];

/// Who grants a consent.
pub const GRANTORS: &[Role] = &[Role::Shipper];

/// A grant from the calling shipper to one partner (SPEC §7 consent body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantConsent {
    pub partner_id: PartnerId,
    pub scope: ConsentScope,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub legal_basis: LegalBasis,
    /// Defaults to the partner's DPA reference.
    #[serde(default)]
    pub dpa_ref: Option<DpaRef>,
    /// Defaults to now.
    #[serde(default, deserialize_with = "crate::query::optional_writable_time")]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::query::optional_writable_time")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// A consent with its status now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentOut {
    #[serde(flatten)]
    pub consent: ConsentView,
    pub status: ConsentStatus,
}

/// A consent, its full history, and the request it answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentDetail {
    #[serde(flatten)]
    pub consent: ConsentOut,
    /// The consent's own events: its grant, and its revocation with reason and actor.
    pub history: Vec<HistoryEntry>,
    /// The consent request it answered, as asked for.
    pub request: Option<RequestView>,
    /// That request's events: submitted by the partner, approved by the shipper.
    pub request_history: Vec<HistoryEntry>,
    /// What the approval granted less than the partner asked for; null when it granted all of
    /// it, or when the consent answered no request.
    pub narrowing: Option<Narrowing>,
}

/// Who may see a consent: its shipper, its partner, and auditors (SPEC §2).
pub fn can_see(caller: &Caller, consent: &ConsentView) -> bool {
    caller.is_auditor()
        || (caller.role == Role::Shipper && consent.shipper_id == caller.id.as_shipper())
        || (caller.role == Role::Partner && consent.partner_id == caller.id.as_partner())
}

/// The consent `id` if the caller may see it; 404 otherwise, whether it exists or not.
fn visible<'m>(
    model: &'m ReadModel,
    caller: &Caller,
    id: ConsentId,
) -> Result<&'m ConsentView, AppError> {
    model
        .consents
        .get(&id)
        .filter(|c| can_see(caller, c))
        .ok_or_else(AppError::not_found)
}

/// Grants a consent from the calling shipper; answers its id and position.
#[tracing::instrument(level = "debug", skip_all, fields(partner = %input.partner_id))]
pub async fn grant(
    state: &AppState,
    caller: &Caller,
    input: GrantConsent,
    context: WriteContext,
) -> Result<(Created, Answer), AppError> {
    caller.require(GRANTORS)?;
    let id = ConsentId::from_uuid(state.ids.new_id());
    let now = state.clock.now();
    // The start the aggregate would take by default, fixed here so that the partner's
    // `consent.granted` message (SPEC §13) says what the event records.
    let valid_from = input.valid_from.unwrap_or(now);
    let outbox = crate::webhooks::outbox::messages(
        state,
        input.partner_id,
        WebhookEventType::ConsentGranted,
        now,
        &serde_json::json!({
            "consent_id": id,
            "shipper_id": caller.id.as_shipper(),
            "partner_id": input.partner_id,
            "scope": input.scope,
            "purposes": input.purposes,
            "data_categories": input.data_categories,
            "legal_basis": input.legal_basis,
            "valid_from": valid_from,
            "valid_until": input.valid_until,
        }),
    )?;
    let command = ConsentCommand::GrantConsent {
        id,
        shipper: caller.id.as_shipper(),
        partner: input.partner_id,
        scope: input.scope,
        purposes: input.purposes,
        data_categories: input.data_categories,
        legal_basis: input.legal_basis,
        dpa_ref: input.dpa_ref,
        valid_from: Some(valid_from),
        valid_until: input.valid_until,
        origin_request: None,
    };
    write::record(
        state,
        context,
        |mut meta| async {
            meta.outbox = outbox;
            Ok(state
                .consents
                .create(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| Created::of(events),
    )
    .await
}

/// Whether the caller may revoke consent `id`: 404 unless it may see it, 403 unless it is the
/// shipper who granted it. [`revoke`] checks this itself; a transport may check it first, to
/// refuse before reading a body.
pub fn may_revoke(state: &AppState, caller: &Caller, id: ConsentId) -> Result<(), AppError> {
    let model = state.projector.read();
    let consent = visible(&model, caller, id)?;
    if !(caller.role == Role::Shipper && consent.shipper_id == caller.id.as_shipper()) {
        return Err(AppError::Forbidden(
            "only the shipper who granted a consent revokes it".into(),
        ));
    }
    Ok(())
}

/// Revokes a consent (its shipper). Effective at commit: no decision committed after the
/// answer allows through it (SPEC §5.2).
#[tracing::instrument(level = "debug", skip_all, fields(consent = %id))]
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: ConsentId,
    reason: Reason,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    may_revoke(state, caller, id)?;
    let now = state.clock.now();
    let outbox = {
        let consent = state
            .projector
            .read()
            .consents
            .get(&id)
            .cloned()
            .ok_or_else(AppError::not_found)?;
        // The reason is free text about the parcel or person (SPEC §12): not in the message.
        let mut data = crate::webhooks::outbox::consent_data(&consent);
        data["revoked_at"] = serde_json::json!(now);
        crate::webhooks::outbox::messages(
            state,
            consent.partner_id,
            WebhookEventType::ConsentRevoked,
            now,
            &data,
        )?
    };
    let command = ConsentCommand::RevokeConsent {
        revoked_by: caller.id,
        reason,
    };
    write::record(
        state,
        context,
        |mut meta| async {
            // Revocation is effective at commit: decisions decided before it are fenced off.
            meta.restricts = true;
            meta.outbox = outbox;
            Ok(state
                .consents
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| Positioned::of(events),
    )
    .await
}

/// The consents the caller may see, oldest first, filtered by partner, shipper and status.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub fn list(
    state: &AppState,
    caller: &Caller,
    q: &ListQuery<ConsentStatus, ConsentId>,
) -> Page<ConsentOut> {
    let now = state.clock.now();
    let model = state.projector.read();
    page(
        &model.consents,
        q.after,
        q.limit,
        |c| {
            let status = c.status_at(now);
            let wanted = can_see(caller, c) && q.selects(c.partner_id, c.shipper_id, status);
            wanted.then(|| ConsentOut {
                consent: c.clone(),
                status,
            })
        },
        |out| out.consent.id,
    )
}

/// One consent with its full history (grant, revocation with reason and actor) and the
/// request it answered.
#[tracing::instrument(level = "debug", skip_all, fields(consent = %id))]
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: ConsentId,
) -> Result<ConsentDetail, AppError> {
    let request_id = visible(&state.projector.read(), caller, id)?.request_id;
    let history = stream_history(state, "consent", &id.to_string()).await?;
    let request_history = match request_id {
        Some(r) => stream_history(state, "consent_request", &r.to_string()).await?,
        None => Vec::new(),
    };
    let now = state.clock.now();
    let model = state.projector.read();
    let consent = model.consents.get(&id).ok_or_else(AppError::not_found)?;
    let request = consent.request_id.and_then(|r| model.requests.get(&r));
    Ok(ConsentDetail {
        consent: ConsentOut {
            consent: consent.clone(),
            status: consent.status_at(now),
        },
        history,
        narrowing: request.and_then(|asked| Narrowing::between(asked, consent)),
        request: request.cloned(),
        request_history,
    })
}

/// A consent receipt in the field shape of ISO/IEC TS 27560 (consent record information
/// structure): who is controller and recipient, for which purposes, data and legal basis, the
/// consent's status now and the events that made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentReceiptBody {
    pub schema_version: &'static str,
    /// The consent record this receipt is about (the consent id).
    pub record_id: ConsentId,
    /// This receipt's own id.
    pub receipt_id: String,
    /// When the receipt was issued.
    pub timestamp: DateTime<Utc>,
    /// The log the record's events are in, and the position of its newest event.
    pub log_origin: String,
    pub log_position: Position,
    pub controller: ReceiptParty,
    pub recipients: Vec<ReceiptParty>,
    /// The data subjects are the recipients of the shipments in scope (the shipper's
    /// customers); they are named by scope, never by personal data.
    pub data_subject_scope: ConsentScope,
    pub purposes: Vec<ReceiptPurpose>,
    pub legal_basis: LegalBasis,
    pub data_categories: Vec<DataCategory>,
    pub dpa_ref: DpaRef,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub origin_request: Option<String>,
    pub status: ConsentStatus,
    pub events: Vec<ReceiptEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptParty {
    pub id: String,
    pub name: Option<String>,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpa_ref: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptPurpose {
    pub purpose: Purpose,
    pub legal_basis: LegalBasis,
    pub data_categories: Vec<DataCategory>,
}

/// One state change of the consent (27560's consent events: given, withdrawn).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptEvent {
    /// `given` or `withdrawn`.
    pub event_type: &'static str,
    pub timestamp: DateTime<Utc>,
    pub actor: String,
    pub position: Position,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A receipt with a detached Ed25519 signature by the log key over the receipt's RFC 8785
/// canonical JSON, and the key's C2SP vkey to check it with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentReceipt {
    pub receipt: ConsentReceiptBody,
    /// "RFC 8785": how `receipt` is serialised for signing.
    pub canonicalization: &'static str,
    /// Ed25519 (RFC 8032) over the canonical receipt, base64.
    pub signature: String,
    pub vkey: String,
}

/// The consent's receipt (ISO/IEC TS 27560 field shape), signed with the log key.
#[tracing::instrument(level = "debug", skip_all, fields(consent = %id))]
pub async fn receipt(
    state: &AppState,
    caller: &Caller,
    id: ConsentId,
) -> Result<ConsentReceipt, AppError> {
    let stored = state.store.read_stream("consent", &id.to_string()).await?;
    let now = state.clock.now();
    let body = {
        let model = state.projector.read();
        let consent = visible(&model, caller, id)?;
        let log_position = stored.last().map_or(consent.position, |e| e.position);
        receipt_body(state, &model, consent, log_position, now)
    };
    let value = serde_json::to_value(&body).map_err(AppError::internal)?;
    let canonical =
        consent_ledger_audit::leaf::canonical_text(&value).map_err(AppError::internal)?;
    let signature = state.log_key.sign_detached(canonical.as_bytes());
    Ok(ConsentReceipt {
        receipt: body,
        canonicalization: "RFC 8785",
        signature: base64::engine::general_purpose::STANDARD.encode(signature),
        vkey: state.log_key.vkey(),
    })
}

/// The unsigned receipt of `consent`, its newest event at `log_position`, issued `now`.
fn receipt_body(
    state: &AppState,
    model: &ReadModel,
    consent: &ConsentView,
    log_position: Position,
    now: DateTime<Utc>,
) -> ConsentReceiptBody {
    let principal = |p: PrincipalId| model.principals.get(&p);
    let shipper = principal(consent.shipper_id.into());
    let partner = principal(consent.partner_id.into());
    let profile = partner.and_then(|p| p.partner.as_ref());
    let categories: Vec<DataCategory> = consent.data_categories.iter().copied().collect();
    let mut events = vec![ReceiptEvent {
        event_type: "given",
        timestamp: consent.granted_at,
        actor: consent.granted_by.clone(),
        position: consent.position,
        reason: None,
    }];
    if let Some(r) = &consent.revocation {
        events.push(ReceiptEvent {
            event_type: "withdrawn",
            timestamp: r.revoked_at,
            actor: r.revoked_by.to_string(),
            position: r.position,
            reason: r.reason.known().map(ToString::to_string),
        });
    }
    ConsentReceiptBody {
        schema_version: "ISO/IEC TS 27560:2023",
        record_id: consent.id,
        receipt_id: state.ids.new_id().to_string(),
        timestamp: now,
        log_origin: state.log_key.name().to_owned(),
        log_position,
        controller: ReceiptParty {
            id: consent.shipper_id.to_string(),
            name: shipper.map(|p| p.name.to_string()),
            role: "controller",
            kind: None,
            country: None,
            dpa_ref: None,
        },
        recipients: vec![ReceiptParty {
            id: consent.partner_id.to_string(),
            name: partner.map(|p| p.name.to_string()),
            role: "recipient",
            kind: profile.map(|p| p.kind.to_string()),
            country: profile.map(|p| p.country.to_string()),
            dpa_ref: profile.map(|p| p.dpa_ref.to_string()),
        }],
        data_subject_scope: consent.scope.clone(),
        purposes: consent
            .purposes
            .iter()
            .map(|p| ReceiptPurpose {
                purpose: *p,
                legal_basis: consent.legal_basis,
                data_categories: categories.clone(),
            })
            .collect(),
        legal_basis: consent.legal_basis,
        data_categories: categories,
        dpa_ref: consent.dpa_ref.clone(),
        valid_from: consent.valid_from,
        valid_until: consent.valid_until,
        origin_request: consent.request_id.map(|r| r.to_string()),
        status: consent.status_at(now),
        events,
    }
}
