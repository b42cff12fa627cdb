//! Registering principals (SPEC §2): shared by `POST /v1/principals` and the offline
//! `consent-ledger principal create`. The token is made here, shown once, and kept only as its
//! SHA-256.

use consent_ledger_domain::principal::{PartnerProfile, PrincipalCommand};
use consent_ledger_domain::values::{DisplayName, PrincipalId, Role};
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::StoredEvent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Token;
use crate::error::AppError;
use crate::state::AppState;

/// `{"role":"partner","name":…,"partner":{"kind":…,"country":…,"dpa_ref":…}}` or
/// `{"role":"shipper"|"gateway"|"privacy_officer"|"regulator"|"admin","name":…}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    pub role: Role,
    pub name: DisplayName,
    #[serde(default)]
    pub partner: Option<PartnerProfile>,
}

/// The new principal's id and bearer token. The token is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedPrincipal {
    pub id: PrincipalId,
    pub token: String,
}

/// Registers a principal; shared by the HTTP route and the offline `principal create`.
#[tracing::instrument(level = "debug", skip_all, fields(role = %input.role))]
pub async fn register(
    state: &AppState,
    input: CreatePrincipal,
    meta: CommandMeta,
) -> Result<(CreatedPrincipal, Vec<StoredEvent>), AppError> {
    let id = PrincipalId::from_uuid(state.ids.new_id());
    let token = Token::generate().map_err(AppError::internal)?;
    let command = PrincipalCommand::RegisterPrincipal {
        id,
        role: input.role,
        name: input.name,
        partner: input.partner,
        token_sha256: token.digest(),
    };
    let events = state
        .principals
        .execute(&id.to_string(), command, meta)
        .await?;
    Ok((
        CreatedPrincipal {
            id,
            token: token.expose().to_owned(),
        },
        events,
    ))
}
