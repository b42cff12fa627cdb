//! Principals (SPEC §2): registering one (shared by `POST /v1/principals` and the offline
//! `consent-ledger principal create`), rotating a token, suspending and reactivating any
//! principal, who a caller is, and the partner directory. A token is made here, shown once,
//! and kept only as its SHA-256, in the credentials table beside the log, never in an event.

use consent_ledger_domain::principal::{PartnerProfile, PrincipalCommand};
use consent_ledger_domain::values::{DisplayName, PrincipalId, Reason, Role};
use consent_ledger_projections::model::PrincipalView;
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::StoredEvent;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::auth::{Caller, Token};
use crate::error::AppError;
use crate::state::AppState;
use crate::write::{self, Answer, Positioned, WriteContext};

/// Who registers principals, suspends and reactivates them, and rotates anyone's token.
pub const ADMINS: &[Role] = &[Role::Admin];

/// Who reads the partner directory; partners do not see each other.
pub const DIRECTORY_READERS: &[Role] = &[
    Role::Admin,
    Role::Shipper,
    Role::Gateway,
    Role::PrivacyOfficer,
    Role::Regulator,
];

/// `{"role":"partner","name":…,"partner":{"kind":…,"country":…,"dpa_ref":…}}` or
/// `{"role":"shipper"|"gateway"|"privacy_officer"|"regulator"|"admin","name":…}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    pub role: Role,
    pub name: DisplayName,
    #[serde(default)]
    pub partner: Option<PartnerProfile>,
}

// By hand: the body is one of two shapes (a partner with its profile, any other role without
// one), which the register use case enforces and a derived schema cannot say.
impl utoipa::PartialSchema for CreatePrincipal {
    fn schema() -> RefOr<Schema> {
        let role = |roles: Vec<&str>| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(roles))
        };
        let others: Vec<&str> = Role::ALL
            .iter()
            .filter(|r| **r != Role::Partner)
            .map(Role::as_str)
            .collect();
        OneOfBuilder::new()
            .description(Some(
                "A partner with its profile, or any other role without one (SPEC §7).",
            ))
            .item(
                ObjectBuilder::new()
                    .property("role", role(vec![Role::Partner.as_str()]))
                    .property("name", Ref::from_schema_name(DisplayName::name()))
                    .property("partner", Ref::from_schema_name(PartnerProfile::name()))
                    .required("role")
                    .required("name")
                    .required("partner")
                    .additional_properties(Some(AdditionalProperties::FreeForm(false))),
            )
            .item(
                ObjectBuilder::new()
                    .property("role", role(others))
                    .property("name", Ref::from_schema_name(DisplayName::name()))
                    .required("role")
                    .required("name")
                    .additional_properties(Some(AdditionalProperties::FreeForm(false))),
            )
            .into()
    }
}

impl ToSchema for CreatePrincipal {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((DisplayName::name().into(), DisplayName::schema()));
        schemas.push((PartnerProfile::name().into(), PartnerProfile::schema()));
        PartnerProfile::schemas(schemas);
    }
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
    };
    let meta = CommandMeta {
        credential: Some(token.digest()),
        ..meta
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

/// Registers a principal (an admin), retry-safe under the context's idempotency key. The token
/// is never stored, so a retry cannot show it again: it answers 409 `token-shown-once` naming
/// the principal made first.
#[tracing::instrument(level = "debug", skip_all, fields(role = %input.role))]
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: CreatePrincipal,
    context: WriteContext,
) -> Result<(CreatedPrincipal, Answer), AppError> {
    caller.require(ADMINS)?;
    issue_token(state, context, |meta| async {
        let (created, events) = register(state, input, meta).await?;
        Ok((created.token, events))
    })
    .await
}

/// A new token for `id`: an admin's for anyone, or a principal's for itself (any other id is
/// 404, as if it did not exist). The old token is refused from the commit on, on every node:
/// the rotation moves the §5.2 fence, so a decision in flight on the old token is made again
/// and refused. Retry-safe like [`create`]: a retry answers 409 `token-shown-once`.
#[tracing::instrument(level = "debug", skip_all, fields(principal = %id))]
pub async fn rotate_token(
    state: &AppState,
    caller: &Caller,
    id: PrincipalId,
    context: WriteContext,
) -> Result<(CreatedPrincipal, Answer), AppError> {
    if caller.id != id && caller.require(ADMINS).is_err() {
        return Err(AppError::not_found());
    }
    issue_token(state, context, |meta| async {
        let (rotated, events) = rotate(state, id, meta).await?;
        Ok((rotated.token, events))
    })
    .await
}

/// Issues principal `id` a new token; shared by the HTTP route and the offline
/// `consent-ledger principal rotate-token` (how an operator who lost the only admin token gets
/// back in). The rotation restricts: it moves the §5.2 fence.
#[tracing::instrument(level = "debug", skip_all, fields(principal = %id))]
pub async fn rotate(
    state: &AppState,
    id: PrincipalId,
    meta: CommandMeta,
) -> Result<(CreatedPrincipal, Vec<StoredEvent>), AppError> {
    let token = Token::generate().map_err(AppError::internal)?;
    let meta = CommandMeta {
        credential: Some(token.digest()),
        restricts: true,
        ..meta
    };
    let events = state
        .principals
        .execute(&id.to_string(), PrincipalCommand::RotateToken, meta)
        .await?;
    Ok((
        CreatedPrincipal {
            id,
            token: token.expose().to_owned(),
        },
        events,
    ))
}

/// Records a write that issues a token and answers `{id, token}` — the first time only: the
/// token is never stored, so a replay answers 409 `token-shown-once`.
async fn issue_token<F, Fut>(
    state: &AppState,
    context: WriteContext,
    issue: F,
) -> Result<(CreatedPrincipal, Answer), AppError>
where
    F: FnOnce(CommandMeta) -> Fut,
    Fut: std::future::Future<Output = Result<(String, Vec<StoredEvent>), AppError>>,
{
    let shown = std::sync::Mutex::new(None);
    write::record(
        state,
        context,
        |meta| async {
            let (token, events) = issue(meta).await?;
            *shown.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
            Ok(events)
        },
        |events: &[StoredEvent], answer| {
            let principal = events.first().map_or("?", |e| e.stream_id.as_str());
            let token = match answer {
                Answer::First => shown.lock().unwrap_or_else(|p| p.into_inner()).take(),
                Answer::Replay => None,
            };
            match (token, PrincipalId::parse(principal)) {
                (Some(token), Ok(id)) => Ok(CreatedPrincipal { id, token }),
                _ => Err(AppError::conflict(
                    "token-shown-once",
                    format!(
                        "the first request with this Idempotency-Key issued principal \
                         {principal}'s token; a token is shown only once"
                    ),
                )),
            }
        },
    )
    .await
}

/// Suspends a principal of any role (an admin): its token is refused from the commit on, and a
/// suspended partner is also denied every decision and can receive no grant. Effective at
/// commit, like a revocation (SPEC §5.2). An admin cannot suspend itself.
#[tracing::instrument(level = "debug", skip_all, fields(principal = %id))]
pub async fn suspend(
    state: &AppState,
    caller: &Caller,
    id: PrincipalId,
    reason: Reason,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    caller.require(ADMINS)?;
    if caller.id == id {
        return Err(AppError::invalid(
            "id",
            "an admin cannot suspend itself; another admin can",
        ));
    }
    set_status(
        state,
        id,
        PrincipalCommand::Suspend { reason },
        true,
        context,
    )
    .await
}

/// Reactivates a suspended principal (an admin).
#[tracing::instrument(level = "debug", skip_all, fields(principal = %id))]
pub async fn reactivate(
    state: &AppState,
    caller: &Caller,
    id: PrincipalId,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    caller.require(ADMINS)?;
    set_status(state, id, PrincipalCommand::Reactivate, false, context).await
}

async fn set_status(
    state: &AppState,
    id: PrincipalId,
    command: PrincipalCommand,
    restricts: bool,
    context: WriteContext,
) -> Result<(Positioned, Answer), AppError> {
    write::record(
        state,
        context,
        |meta| async {
            // A suspension is effective at commit: decisions decided before it are fenced off.
            let meta = CommandMeta { restricts, ..meta };
            Ok(state
                .principals
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| Positioned::of(events),
    )
    .await
}

/// The principal the caller is.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub fn me(state: &AppState, caller: &Caller) -> Result<PrincipalView, AppError> {
    let model = state.projector.read();
    let me = model
        .principals
        .get(&caller.id)
        .cloned()
        .ok_or(AppError::Unauthorized)?;
    Ok(model.with_dpa_link(me, state.clock.now()))
}

/// The partner directory, by id: every partner's id, name, kind, country, DPA reference and
/// status, so that a shipper can find whom to grant.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub fn partners(state: &AppState, caller: &Caller) -> Result<Vec<PrincipalView>, AppError> {
    caller.require(DIRECTORY_READERS)?;
    let model = state.projector.read();
    let now = state.clock.now();
    let mut partners: Vec<PrincipalView> = model
        .principals
        .values()
        .filter(|p| p.role == Role::Partner)
        .map(|p| model.with_dpa_link(p.clone(), now))
        .collect();
    partners.sort_by_key(|p| p.id);
    Ok(partners)
}
