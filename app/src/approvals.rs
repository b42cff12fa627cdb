//! Consent requests' two-step approval and their expiry (SPEC §3, ADR 0002): the approval is
//! committed first, then the grant it names; a stop in between is completed on the next start.

use consent_ledger_domain::consent::{ConsentCommand, ConsentError};
use consent_ledger_domain::request::{
    ConsentRequestCommand, ConsentRequestEvent, Narrowing, RequestStatus,
};
use consent_ledger_domain::values::{ConsentId, ConsentRequestId, PartnerStatus};
use consent_ledger_store::cqrs::{CommandError, CommandMeta};
use consent_ledger_store::StoredEvent;

use crate::error::AppError;
use crate::state::AppState;
use crate::webhooks::outbox::messages;
use consent_ledger_domain::webhook::WebhookEventType;

/// Records the approval, then grants the consent it names.
///
/// Two aggregates, two commits, in this order: the approval first, naming the consent id
/// and carrying the granted terms, so that of two concurrent approvals only one commits (the
/// other loses the optimistic race on the request's stream and sees "not pending") and nothing
/// is granted for the loser. The grant then follows from the approval alone; if the process
/// dies in between, [`complete_approvals`] grants it on the next start (ADR 0002).
#[tracing::instrument(level = "debug", skip_all, fields(request = %id))]
pub async fn approve_then_grant(
    state: &AppState,
    id: ConsentRequestId,
    narrowing: Narrowing,
    meta: CommandMeta,
) -> Result<Vec<StoredEvent>, AppError> {
    let request = state.requests.load(&id.to_string()).await?;
    let terms = request.approval(&narrowing, state.clock.now())?;
    if state
        .projector
        .read()
        .partner_facts(terms.partner)
        .is_some_and(|p| p.status == PartnerStatus::Suspended)
    {
        return Err(AppError::Conflict {
            slug: "partner-suspended",
            detail: format!(
                "partner {} is suspended and can receive no grant",
                terms.partner
            ),
            field: None,
        });
    }
    let consent_id = ConsentId::from_uuid(state.ids.new_id());
    let grant_meta = CommandMeta {
        idempotency: None,
        ..meta.clone()
    };
    let now = state.clock.now();
    let mut meta = meta;
    // SPEC §13: the partner learns of the approval in the approval's commit, and of the
    // consent in the grant's.
    meta.outbox = messages(
        state,
        terms.partner,
        WebhookEventType::ConsentRequestApproved,
        now,
        &serde_json::json!({
            "request_id": id,
            "consent_id": consent_id,
            "shipper_id": terms.shipper,
            "partner_id": terms.partner,
            "scope": terms.scope,
            "purposes": terms.purposes,
            "data_categories": terms.data_categories,
            "legal_basis": terms.legal_basis,
            "valid_until": terms.valid_until,
            "approved_at": now,
        }),
    )?;
    let command = ConsentRequestCommand::ApproveConsentRequest {
        consent_id,
        narrowing,
    };
    let approved = state
        .requests
        .execute(&id.to_string(), command, meta)
        .await?;
    grant_approved(state, id, consent_id, grant_meta).await?;
    Ok(approved)
}

/// Grants the consent of an approved request, from the request's recorded terms. Idempotent:
/// a consent already granted is left as it is.
#[tracing::instrument(level = "debug", skip_all, fields(request = %id, consent = %consent_id))]
async fn grant_approved(
    state: &AppState,
    id: ConsentRequestId,
    consent_id: ConsentId,
    meta: CommandMeta,
) -> Result<(), AppError> {
    let stored = state
        .store
        .read_stream("consent_request", &id.to_string())
        .await?;
    let mut submitted = None;
    let mut approved = None;
    for event in &stored {
        match event.decode::<ConsentRequestEvent>() {
            Ok(e @ ConsentRequestEvent::ConsentRequestSubmitted { .. }) => submitted = Some(e),
            Ok(e @ ConsentRequestEvent::ConsentRequestApproved { .. }) => approved = Some(e),
            Ok(_) => {}
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    let (
        Some(ConsentRequestEvent::ConsentRequestSubmitted {
            partner,
            shipper,
            scope,
            legal_basis,
            dpa_ref,
            valid_from,
            ..
        }),
        Some(ConsentRequestEvent::ConsentRequestApproved {
            purposes,
            data_categories,
            valid_until,
            approved_at,
            ..
        }),
    ) = (submitted, approved)
    else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "request {id} has no approval to grant"
        )));
    };
    // A consent asked to start "now" starts when it was approved, not when it is granted.
    let valid_from = valid_from.unwrap_or(approved_at).max(approved_at);
    let mut meta = meta;
    meta.outbox = messages(
        state,
        partner,
        WebhookEventType::ConsentGranted,
        state.clock.now(),
        &serde_json::json!({
            "consent_id": consent_id,
            "request_id": id,
            "shipper_id": shipper,
            "partner_id": partner,
            "scope": scope,
            "purposes": purposes,
            "data_categories": data_categories,
            "legal_basis": legal_basis,
            "valid_from": valid_from,
            "valid_until": valid_until,
        }),
    )?;
    let grant = ConsentCommand::GrantConsent {
        id: consent_id,
        shipper,
        partner,
        scope,
        purposes,
        data_categories,
        legal_basis,
        dpa_ref,
        valid_from: Some(valid_from),
        valid_until,
        origin_request: Some(id),
    };
    match state
        .consents
        .execute(&consent_id.to_string(), grant, meta)
        .await
    {
        Ok(_) | Err(CommandError::Rejected(ConsentError::AlreadyGranted)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Grants the consents of approved requests that have none yet (a process that stopped
/// between the two commits of an approval). Run on start.
#[tracing::instrument(skip_all)]
pub async fn complete_approvals(state: &AppState) -> Result<usize, AppError> {
    let pending: Vec<(ConsentRequestId, ConsentId)> = {
        let model = state.projector.read();
        model
            .requests
            .values()
            .filter_map(|r| Some((r.id, r.consent_id?)))
            .filter(|(_, consent)| !model.consents.contains_key(consent))
            .collect()
    };
    for (request, consent) in &pending {
        let meta = CommandMeta::new("system", state.ids.new_id().to_string());
        grant_approved(state, *request, *consent, meta).await?;
        tracing::info!(%request, %consent, "granted the consent of an approval interrupted by a stop");
    }
    state.projector.catch_up().await?;
    Ok(pending.len())
}

/// Records `ConsentRequestExpired` for every pending request past its expiry.
#[tracing::instrument(skip_all)]
pub async fn expire_requests(state: &AppState) {
    let now = state.clock.now();
    let due: Vec<_> = state
        .projector
        .read()
        .requests
        .values()
        .filter(|r| r.status == RequestStatus::Pending && now >= r.expires_at)
        .map(|r| (r.id, r.shipper_id, r.partner_id))
        .collect();
    for (id, shipper, partner) in due {
        let mut meta = CommandMeta::new("system", state.ids.new_id().to_string());
        let data = serde_json::json!({
            "request_id": id,
            "shipper_id": shipper,
            "partner_id": partner,
            "expired_at": now,
        });
        match messages(
            state,
            partner,
            WebhookEventType::ConsentRequestExpired,
            now,
            &data,
        ) {
            Ok(outbox) => meta.outbox = outbox,
            Err(e) => {
                tracing::warn!(request = %id, error = %e, "could not expire consent request");
                continue;
            }
        }
        match state
            .requests
            .execute(
                &id.to_string(),
                ConsentRequestCommand::ExpireConsentRequest,
                meta,
            )
            .await
        {
            Ok(_) => tracing::info!(request = %id, "consent request expired"),
            Err(e) => tracing::warn!(request = %id, error = %e, "could not expire consent request"),
        }
    }
    if let Err(e) = state.projector.catch_up().await {
        tracing::warn!(error = %e, "catching up after expiry failed");
    }
}
