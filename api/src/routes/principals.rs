//! `POST /v1/principals` and partner status (admin), `GET /v1/me`, `GET /v1/partners`.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_domain::principal::PrincipalCommand;
use consent_ledger_domain::values::{PartnerStatus, PrincipalId, Role};
use consent_ledger_projections::model::PrincipalView;
use consent_ledger_store::StoredEvent;
use serde_json::json;

use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{render_position, NoBody, ReasonBody};
use crate::write::write;
use consent_ledger_app::principals::{register, CreatePrincipal, CreatedPrincipal};
use consent_ledger_app::query::path_id;
use consent_ledger_app::state::AppState;
use consent_ledger_app::write::Answer;
use consent_ledger_app::AppError;

/// Register a principal (admin). A partner's and a shipper's id is its principal id.
///
/// With an `Idempotency-Key`, a retry does not create a second principal; since the token is
/// never stored, the retry answers 409 `token-shown-once` naming the principal made first.
#[utoipa::path(post, path = "/v1/principals", tag = "principals", request_body = CreatePrincipal,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses(
        (status = 201, body = CreatedPrincipal),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
#[post("/v1/principals")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let body = read_body(payload).await?;
    let input: CreatePrincipal = parse_json(&body)?;
    let made = std::sync::Mutex::new(None);
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::CREATED,
        |meta| async {
            let (created, events) = register(&state, input, meta).await?;
            *made.lock().unwrap_or_else(|p| p.into_inner()) = Some(created);
            Ok(events)
        },
        |events: &[StoredEvent], answer| match (answer, made.lock().unwrap_or_else(|p| p.into_inner()).as_ref()) {
            (Answer::First, Some(created)) => Ok(json!(created)),
            _ => Err(ApiError::conflict(
                "token-shown-once",
                format!(
                    "principal {} was created by the first request with this Idempotency-Key; its token was shown only then",
                    events.first().map(|e| e.stream_id.as_str()).unwrap_or("?")
                ),
            )),
        },
    )
    .await
}

async fn set_partner_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: String,
    payload: web::Payload,
    to: PartnerStatus,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let id: PrincipalId = path_id(&id, "id")?;
    let body = read_body(payload).await?;
    let command = match to {
        PartnerStatus::Suspended => PrincipalCommand::SuspendPartner {
            reason: parse_json::<ReasonBody>(&body)?.reason,
        },
        PartnerStatus::Active => {
            let _: NoBody = parse_json(&body)?;
            PrincipalCommand::ReactivatePartner
        }
    };
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::OK,
        |mut meta| async {
            // Revocation is effective at commit: decisions decided before it are fenced off.
            meta.restricts = to == PartnerStatus::Suspended;
            Ok(state
                .principals
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| render_position(events),
    )
    .await
}

/// Suspend a partner (admin): it is denied every decision and can receive no grant.
#[utoipa::path(post, path = "/v1/principals/{id}/suspend", tag = "principals", request_body = ReasonBody,
    security(("bearer" = [])), responses((status = 200, body = crate::shapes::Positioned), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[post("/v1/principals/{id}/suspend")]
pub async fn suspend(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    set_partner_status(
        state,
        req,
        caller,
        id.into_inner(),
        payload,
        PartnerStatus::Suspended,
    )
    .await
}

/// Reactivate a suspended partner (admin).
#[utoipa::path(post, path = "/v1/principals/{id}/reactivate", tag = "principals",
    security(("bearer" = [])), responses((status = 200, body = crate::shapes::Positioned), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[post("/v1/principals/{id}/reactivate")]
pub async fn reactivate(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    set_partner_status(
        state,
        req,
        caller,
        id.into_inner(),
        payload,
        PartnerStatus::Active,
    )
    .await
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/v1/me", tag = "principals", security(("bearer" = [])),
    responses((status = 200, body = PrincipalView), (status = 401, body = Problem)))]
#[get("/v1/me")]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let model = state.projector.read();
    let view = model
        .principals
        .get(&caller.id)
        .ok_or(ApiError(AppError::Unauthorized))?;
    Ok(HttpResponse::Ok().json(view))
}

/// The partner directory: every partner's id, name, kind, country, DPA reference and status,
/// so that a shipper can find whom to grant. Partners do not see each other.
#[utoipa::path(get, path = "/v1/partners", tag = "principals", security(("bearer" = [])),
    responses((status = 200, body = Vec<PrincipalView>), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/v1/partners")]
pub async fn partners(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[
        Role::Admin,
        Role::Shipper,
        Role::Gateway,
        Role::PrivacyOfficer,
        Role::Regulator,
    ])?;
    let model = state.projector.read();
    let mut partners: Vec<&PrincipalView> = model
        .principals
        .values()
        .filter(|p| p.role == Role::Partner)
        .collect();
    partners.sort_by_key(|p| p.id);
    Ok(HttpResponse::Ok().json(partners))
}
