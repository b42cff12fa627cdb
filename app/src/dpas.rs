//! The carrier's DPA register (SPEC §16): an admin registers and terminates data processing
//! agreements; a partner reads its own, privacy officers, regulators and admins all of them.
//! A partner's `dpa_ref` links to the entry of that partner with that reference.

use chrono::{DateTime, Utc};
use consent_ledger_domain::dpa::{DpaCommand, DpaTerms, SubProcessor};
use consent_ledger_domain::values::{
    DpaId, DpaRef, DpaRole, PartnerId, PrincipalId, Reason, Role, TransferMechanism,
};
use consent_ledger_projections::model::DpaView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::state::AppState;
use crate::write::{self, Answer, Created, Positioned, WriteContext};

/// Who reads the register: a partner its own entries; these roles every entry.
pub const READERS: &[Role] = &[
    Role::Admin,
    Role::Partner,
    Role::PrivacyOfficer,
    Role::Regulator,
];

/// `POST /v1/dpas`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDpa {
    #[schema(value_type = String, format = Uuid)]
    pub partner_id: PartnerId,
    /// The agreement's reference, as the partner's `dpa_ref` names it.
    #[schema(value_type = String)]
    pub reference: DpaRef,
    pub role: DpaRole,
    pub signed_at: DateTime<Utc>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sub_processors: Vec<SubProcessor>,
    #[serde(default)]
    pub transfer_mechanism: Option<TransferMechanism>,
    /// Hex SHA-256 of the signed document.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub document_sha256: Option<String>,
}

/// `POST /v1/dpas/{id}/terminate`: `{"reason"?}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateDpa {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Reason>,
}

/// `GET /v1/dpas`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DpaList {
    pub items: Vec<DpaView>,
}

fn is_partner(state: &AppState, id: PartnerId) -> bool {
    state
        .projector
        .read()
        .principals
        .get(&PrincipalId::from(id))
        .is_some_and(|p| p.role == Role::Partner)
}

/// Registers a DPA (admin); its partner and every sub-processor that names a partner must be
/// partners of this ledger.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn register(
    state: &AppState,
    caller: &Caller,
    input: RegisterDpa,
    context: WriteContext,
) -> Result<(Created, Answer), AppError> {
    caller.require(&[Role::Admin])?;
    if !is_partner(state, input.partner_id) {
        return Err(AppError::invalid("partner_id", "not a partner"));
    }
    for (i, sub) in input.sub_processors.iter().enumerate() {
        if sub.partner_id.is_some_and(|p| !is_partner(state, p)) {
            return Err(AppError::invalid(
                format!("sub_processors[{i}].partner_id"),
                "not a partner",
            ));
        }
    }
    let id = DpaId::from_uuid(state.ids.new_id());
    let terms = DpaTerms {
        partner: input.partner_id,
        reference: input.reference,
        role: input.role,
        signed_at: input.signed_at,
        valid_until: input.valid_until,
        sub_processors: input.sub_processors,
        transfer_mechanism: input.transfer_mechanism,
        document_sha256: input.document_sha256,
    };
    write::record(
        state,
        context,
        |meta| async {
            Ok(state
                .dpas
                .execute(&id.to_string(), DpaCommand::Register { id, terms }, meta)
                .await?)
        },
        |events, _| Created::of(events),
    )
    .await
}

/// One entry, if the caller may read it (a partner's own; another's is missing).
pub fn get(state: &AppState, caller: &Caller, id: DpaId) -> Result<DpaView, AppError> {
    caller.require(READERS)?;
    let view = state
        .projector
        .read()
        .dpas
        .get(&id)
        .cloned()
        .ok_or_else(AppError::not_found)?;
    if caller.role == Role::Partner && view.partner_id != caller.id.as_partner() {
        return Err(AppError::not_found());
    }
    Ok(view)
}

/// The register as the caller may read it, `partner_id` narrowing it.
pub fn list(
    state: &AppState,
    caller: &Caller,
    partner: Option<PartnerId>,
) -> Result<DpaList, AppError> {
    caller.require(READERS)?;
    let only = match caller.role {
        Role::Partner => Some(caller.id.as_partner()),
        _ => partner,
    };
    if caller.role == Role::Partner && partner.is_some_and(|p| Some(p) != only) {
        return Ok(DpaList { items: Vec::new() });
    }
    let items = state
        .projector
        .read()
        .dpas
        .values()
        .filter(|d| only.is_none_or(|p| d.partner_id == p))
        .cloned()
        .collect();
    Ok(DpaList { items })
}

/// Ends an agreement (admin): from this commit on it is in force nowhere.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn terminate(
    state: &AppState,
    caller: &Caller,
    id: DpaId,
    input: TerminateDpa,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    caller.require(&[Role::Admin])?;
    get(state, caller, id)?;
    write::record(
        state,
        context,
        |mut meta| async {
            // Reads an authorization allowed under it end here, on every node (SPEC §5.2).
            meta.restricts = true;
            Ok(state
                .dpas
                .execute(
                    &id.to_string(),
                    DpaCommand::Terminate {
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
