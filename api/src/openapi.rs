//! The OpenAPI description served at `/openapi.json`, generated from the handlers.

use actix_web::{get, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "consent-ledger",
        description = "Consent grants, requests and revocations for third-party parcel tracking, recorded as \
                       immutable events in one append-only log. Errors are RFC 9457 problem+json with a stable \
                       `type` under https://consent-ledger.dev/problems/ and a `field` naming the bad input. \
                       Every write answers its log `position`. POSTs accept an `Idempotency-Key` header."
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::log::inclusion,
        routes::log::consistency,
        routes::log::entries,
        routes::log::vkey,
        routes::log::checkpoint,
        routes::log::sign_now,
        routes::log::export,
        routes::gdpr::access,
        routes::gdpr::dsar,
        routes::gdpr::ropa,
        routes::principals::create,
        routes::principals::rotate_token,
        routes::principals::suspend,
        routes::principals::reactivate,
        routes::principals::me,
        routes::principals::partners,
        routes::shipments::create,
        routes::shipments::get,
        routes::shipments::authorized_parties,
        routes::decisions::decide_one,
        routes::decisions::decide_batch,
        routes::consents::grant,
        routes::consents::list,
        routes::consents::get,
        routes::consents::receipt,
        routes::consents::revoke,
        routes::requests::submit,
        routes::requests::list,
        routes::requests::get,
        routes::requests::approve,
        routes::requests::deny,
        routes::requests::withdraw,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "principals", description = "Who may call, in which role (SPEC §2)"),
        (name = "shipments", description = "Parcels whose tracking is shared"),
        (name = "consents", description = "A shipper's grants to partners"),
        (name = "decisions", description = "May this partner read this shipment now? Every answer is recorded first"),
        (name = "consent requests", description = "A partner's requests for consent (UMA 2.0 style)"),
        (name = "audit", description = "GDPR audit views: access history, Art. 15 DSAR, Art. 30 record of processing"),
        (name = "log", description = "The verifiable log: entries and RFC 9162 proofs"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3.1 description of this API, generated from the code.
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
