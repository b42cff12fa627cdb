//! The admin's pages (SPEC §2, §15): the principals, registering one, suspending and
//! reactivating any, rotating a token. Each form calls the use case of its API route
//! (`POST /v1/principals[/{id}/suspend|reactivate|rotate-token]`) with the session's caller; a
//! token issued here is shown once, on the answer page, and never kept nor logged.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::principals::{self, CreatePrincipal, CreatedPrincipal, ADMINS};
use consent_ledger_app::query::path_id;
use consent_ledger_app::sessions::Session;
use consent_ledger_app::state::AppState;
use consent_ledger_app::AppError;
use consent_ledger_domain::values::{PartnerKind, PartnerStatus, PrincipalId, Role};
use consent_ledger_projections::model::PrincipalView;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::pages::{
    column_heads, csrf_field, ok, or_error_page, post_form, reason_form, signed_in, Posted,
};
use super::{caller, error_page, field, visitor, Visitor};
use crate::body::parse_json;
use crate::problem::ApiError;

const BACK: &str = "/console/principals";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(principals_page)
        .service(create)
        .service(suspend)
        .service(reactivate)
        .service(rotate_token);
}

/// Every principal, oldest first, with its actions, and the form to register one.
#[get("/console/principals")]
async fn principals_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    or_error_page!(session, caller(&session).require(ADMINS));
    let mut all: Vec<PrincipalView> = state
        .projector
        .read()
        .principals
        .values()
        .cloned()
        .collect();
    all.sort_by_key(|p| p.id);
    let me = caller(&session).id;
    ok(
        "Principals",
        &session,
        html! {
            (create_form(&session))
            table {
                caption { "Every principal, oldest first" }
                (column_heads(&["Name", "Role", "Status", "Partner", "Id", "Actions"]))
                tbody {
                    @for p in &all {
                        tr {
                            td { (p.name.as_str()) @if p.id == me { " (you)" } }
                            td { (p.role.as_str()) }
                            td class="status" { (p.status.as_str()) }
                            td { @if let Some(profile) = &p.partner {
                                (profile.kind.as_str()) ", " (profile.country.as_str()) ", DPA " (profile.dpa_ref.as_str())
                            } }
                            td { code { (p.id.to_string()) } }
                            td { (actions(&session, p, me)) }
                        }
                    }
                }
            }
        },
    )
}

/// The forms of one principal's row: suspend (not oneself) or reactivate, rotate its token.
fn actions(session: &Session, p: &PrincipalView, me: PrincipalId) -> Markup {
    let (id, name) = (p.id, p.name.as_str());
    let to = |action: &str| format!("{BACK}/{id}/{action}");
    html! {
        @if p.status == PartnerStatus::Suspended {
            (post_form(&to("reactivate"), session, html! {}, &format!("Reactivate {name}"), false))
        } @else if id != me {
            (reason_form(&to("suspend"), session, &id.to_string(), &format!("Reason to suspend {name}"), "Suspend"))
        }
        (post_form(&to("rotate-token"), session, html! {}, &format!("Rotate the token of {name}"), false))
    }
}

fn create_form(session: &Session) -> Markup {
    html! {
        form method="post" action="/console/principals" class="card" aria-labelledby="create-title" {
            h2 id="create-title" { "Register a principal" }
            (csrf_field(session))
            label for="role" { "Role" }
            select id="role" name="role" required {
                @for r in Role::ALL {
                    option value=(r.as_str()) { (r.as_str().replace('_', " ")) }
                }
            }
            label for="name" { "Name" }
            input id="name" name="name" required maxlength="200" autocomplete="off";
            fieldset {
                legend { "Partner profile (a partner only)" }
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="" { "—" }
                    @for k in PartnerKind::ALL {
                        option value=(k.as_str()) { (k.as_str().replace('_', " ")) }
                    }
                }
                label for="country" { "Country (ISO 3166-1 alpha-2)" }
                input id="country" name="country" maxlength="2" pattern="[A-Z]{2}" placeholder="DE"
                    autocomplete="off";
                label for="dpa_ref" { "DPA reference" }
                input id="dpa_ref" name="dpa_ref" maxlength="100" autocomplete="off";
            }
            p class="hint" { "The new principal's token is shown once, on the next page: hand it over securely." }
            button type="submit" { "Register" }
        }
    }
}

/// The JSON body of `POST /v1/principals` this form stands for: a partner profile when the
/// role is partner or any of its fields is filled (the use case refuses one for another role,
/// as the API does).
fn create_body(fields: &[(String, String)]) -> Value {
    let text = |name: &str| field(fields, name).map(str::trim).unwrap_or_default();
    let mut body = json!({ "role": text("role"), "name": text("name") });
    let profile = ["kind", "country", "dpa_ref"];
    if text("role") == Role::Partner.as_str() || profile.iter().any(|f| !text(f).is_empty()) {
        body["partner"] = json!({
            "kind": text("kind"),
            "country": text("country"),
            "dpa_ref": text("dpa_ref"),
        });
    }
    body
}

/// The page that shows a token, this once.
fn token_shown(whose: &str, issued: &CreatedPrincipal) -> Markup {
    html! {
        section class="card" aria-labelledby="token-title" {
            h2 id="token-title" { "Token of " (whose) }
            p { "Principal id: " code id="principal-id" { (issued.id.to_string()) } }
            p { strong { "Copy this token now: it is shown this once and is not kept." }
                " Hand it over securely; whoever holds it acts as this principal." }
            pre { code id="new-token" { (issued.token) } }
        }
        p { a href=(BACK) { "Back to the principals" } }
    }
}

/// Registers a principal: `principals::create`, its token shown once.
#[post("/console/principals")]
async fn create(posted: Posted) -> Result<HttpResponse, ApiError> {
    posted
        .answer(|form| async move {
            // The role before the fields, as on the API.
            caller(&form.session).require(ADMINS)?;
            let json =
                serde_json::to_vec(&create_body(&form.fields)).map_err(AppError::internal)?;
            let input: CreatePrincipal = parse_json(&json).map_err(|e| e.0)?;
            let whose = format!("{} ({})", input.name.as_str(), input.role.as_str());
            let (created, _) =
                principals::create(&form.state, caller(&form.session), input, form.context).await?;
            Ok((
                "Principal registered".to_owned(),
                token_shown(&whose, &created),
            ))
        })
        .await
}

/// Issues a principal a new token: `principals::rotate_token`, shown once. The old token is
/// refused from now on, with the sessions it opened.
#[post("/console/principals/{id}/rotate-token")]
async fn rotate_token(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    posted
        .answer(|form| async move {
            let id: PrincipalId = path_id(&id, "id")?;
            let whose = form
                .state
                .projector
                .read()
                .principals
                .get(&id)
                .map(|p| format!("{} ({})", p.name.as_str(), p.role.as_str()))
                .unwrap_or_else(|| id.to_string());
            let (rotated, _) =
                principals::rotate_token(&form.state, caller(&form.session), id, form.context)
                    .await?;
            Ok(("Token rotated".to_owned(), token_shown(&whose, &rotated)))
        })
        .await
}

/// Suspends a principal: `principals::suspend`, with the form's reason.
#[post("/console/principals/{id}/suspend")]
async fn suspend(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    posted
        .redirect(BACK, |form| async move {
            caller(&form.session).require(ADMINS)?;
            let id: PrincipalId = path_id(&id, "id")?;
            let reason = form.reason()?;
            principals::suspend(&form.state, caller(&form.session), id, reason, form.context)
                .await?;
            Ok(())
        })
        .await
}

/// Reactivates a suspended principal: `principals::reactivate`.
#[post("/console/principals/{id}/reactivate")]
async fn reactivate(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    posted
        .redirect(BACK, |form| async move {
            caller(&form.session).require(ADMINS)?;
            let id: PrincipalId = path_id(&id, "id")?;
            principals::reactivate(&form.state, caller(&form.session), id, form.context).await?;
            Ok(())
        })
        .await
}
