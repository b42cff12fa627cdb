//! Pages of carrier authorizations and of who may see a parcel (SPEC §15, §16): a shipper sees
//! every authorization that can cover its parcels and objects (Art. 21) or withdraws its
//! objection; partners see their own, auditors all; a shipper asks who may see one of its
//! parcels, now or as of a past time. Through the use cases of the API routes.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::authorizations::{self, ListFilter};
use consent_ledger_app::consents::{self, GrantConsent};
use consent_ledger_app::query::path_id;
use consent_ledger_app::shipments;
use consent_ledger_app::state::AppState;
use consent_ledger_app::AppError;
use consent_ledger_domain::values::{AuthorizationId, Role, ShipmentId};
use maud::html;

use super::pages::{
    csrf_field, list, ok, or_error_page, partner_names, post_form, reason_form, signed_in, Posted,
};
use super::partner::{terms_body, terms_fieldsets};
use super::{caller, error_page, visitor, Visitor};
use crate::body::parse_json;
use crate::problem::ApiError;

/// Where a shipper's objection forms lead back to.
const BACK: &str = "/console/authorizations";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(authorizations_page)
        .service(object)
        .service(withdraw)
        .service(parties_page)
        .service(grant_page)
        .service(grant);
}

/// Where a shipper's grant form leads.
const CONSENTS: &str = "/console/consents";

/// The shipper's form to grant a consent of its own accord: the fields of `POST /v1/consents`.
#[get("/console/grant")]
async fn grant_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    or_error_page!(session, caller(&session).require(consents::GRANTORS));
    let partners = or_error_page!(
        session,
        consent_ledger_app::principals::partners(&state, caller(&session))
    );
    ok(
        "Grant a consent",
        &session,
        html! {
            form method="post" action="/console/grant" class="card" {
                (csrf_field(&session))
                label for="partner_id" { "Partner" }
                select id="partner_id" name="partner_id" required {
                    @for p in &partners {
                        option value=(p.id.to_string()) { (p.name.to_string()) }
                    }
                }
                (terms_fieldsets(true))
                button type="submit" { "Grant" }
            }
        },
    )
}

/// Grants it: `consents::grant` with the session's caller, as the API route does.
#[post("/console/grant")]
async fn grant(posted: Posted) -> Result<HttpResponse, ApiError> {
    posted
        .redirect(CONSENTS, |form| async move {
            caller(&form.session).require(consents::GRANTORS)?;
            let json = serde_json::to_vec(&terms_body(&form.fields, &["partner_id"]))
                .map_err(AppError::internal)?;
            let input: GrantConsent = parse_json(&json).map_err(|e| e.0)?;
            consents::grant(&form.state, caller(&form.session), input, form.context).await?;
            Ok(())
        })
        .await
}

/// The authorizations the visitor may see; a shipper's with its objection forms.
#[get("/console/authorizations")]
async fn authorizations_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let found = or_error_page!(
        session,
        authorizations::list(&state, caller(&session), ListFilter::default())
    );
    let partners = partner_names(&state);
    let shipper = (session.caller.role == Role::Shipper).then(|| session.caller.id.as_shipper());
    ok(
        "Carrier authorizations",
        &session,
        html! {
            p { "The carrier authorizes tracking intermediaries under a data processing agreement, on a basis other than your consent. "
                @if shipper.is_some() { "You may object: your parcels are then excluded at once." } }
            @if found.items.is_empty() { p { "No authorization can cover these parcels." } }
            @for a in &found.items {
                @let id = a.id.to_string();
                section class="card" aria-labelledby=(format!("auth-{id}")) {
                    h2 id=(format!("auth-{id}")) {
                        (partners.get(&a.partner_id.to_string()).cloned().unwrap_or_else(|| a.partner_id.to_string()))
                        " — " (list(a.purposes.as_slice()))
                    }
                    p { "Categories: " (list(a.data_categories.as_slice()))
                        " · legal basis " (a.legal_basis.as_str())
                        " · status " (serde_json::to_value(a.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                        @if let Some(c) = &a.scope.carriers { " · carriers " (list(c.as_slice())) }
                        @if let Some(c) = &a.scope.destination_countries { " · to " (list(c.as_slice())) } }
                    @if let Some(me) = shipper {
                        @if a.objected_by(me) {
                            p class="problem" { "You object to this authorization." }
                            (post_form(&format!("/console/authorizations/{id}/withdraw"), &session, html! {}, "Withdraw my objection", false))
                        } @else if a.revoked_at.is_none() {
                            (reason_form(&format!("/console/authorizations/{id}/objection"), &session, &id, "Why you object", "Object"))
                        }
                    }
                }
            }
        },
    )
}

/// A shipper objects to an authorization (Art. 21): `authorizations::object`, with the form's
/// reason.
#[post("/console/authorizations/{id}/objection")]
async fn object(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id: AuthorizationId = path_id(&id, "id")?;
    posted
        .redirect(BACK, |form| async move {
            let reason = form.reason()?;
            authorizations::object(&form.state, caller(&form.session), id, reason, form.context)
                .await?;
            Ok(())
        })
        .await
}

/// A shipper withdraws its objection: `authorizations::withdraw_objection`.
#[post("/console/authorizations/{id}/withdraw")]
async fn withdraw(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id: AuthorizationId = path_id(&id, "id")?;
    posted
        .redirect(BACK, |form| async move {
            authorizations::withdraw_objection(
                &form.state,
                caller(&form.session),
                id,
                form.context,
            )
            .await?;
            Ok(())
        })
        .await
}

/// Who may see a parcel, now or as of a time: the consented parties and the authorized
/// intermediaries.
#[get("/console/parties")]
async fn parties_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let asked: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let value = |name: &str| {
        asked
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let answer = match value("shipment_id") {
        None => None,
        Some(text) => {
            let found = path_id::<ShipmentId>(&text, "shipment_id").and_then(|id| {
                let as_of = value("as_of")
                    .map(|t| {
                        consent_ledger_app::query::rfc3339_time(&t)
                            .map_err(|e| AppError::invalid("as_of", e))
                    })
                    .transpose()?;
                shipments::authorized_parties(&state, caller(&session), id, as_of)
            });
            Some(or_error_page!(session, found))
        }
    };
    let partners = partner_names(&state);
    let name = |id: String| partners.get(&id).cloned().unwrap_or(id);
    ok(
        "Who may see a parcel",
        &session,
        html! {
            form method="get" action="/console/parties" class="filters" {
                div { label for="shipment_id" { "Shipment id" } input id="shipment_id" name="shipment_id" value=(value("shipment_id").unwrap_or_default()) required; }
                div { label for="as_of" { "As of (empty: now)" } input id="as_of" name="as_of" value=(value("as_of").unwrap_or_default()) placeholder="2026-12-01T00:00:00Z"; }
                button type="submit" { "Show" }
            }
            @if let Some(a) = answer {
                h2 { "As of " (a.as_of.to_rfc3339()) }
                @if a.parties.is_empty() && a.intermediaries.is_empty() { p { "No one but the carrier." } }
                ul {
                    @for p in &a.parties {
                        li { (name(p.partner_id.to_string())) " — consent " (p.consent_id.to_string()) ": " (list(p.purposes.as_slice())) "; " (list(p.data_categories.as_slice())) }
                    }
                    @for i in &a.intermediaries {
                        li { (name(i.partner_id.to_string())) " — carrier authorization " (i.authorization_id.to_string()) " (" (i.legal_basis.as_str()) ", DPA " (i.dpa_id.to_string()) "): " (list(i.purposes.as_slice())) "; " (list(i.data_categories.as_slice())) }
                    }
                }
            }
        },
    )
}
