//! The OpenAPI description served at `/openapi.json`, generated from the handlers.
//!
//! Every operation lists the error answers it can give, each an RFC 9457 problem
//! (`application/problem+json`, the [`Problem`] schema) through the shared responses of
//! [`crate::annotations::responses`]: a handler's annotation names the statuses its code can
//! answer, and `tests/api/openapi.rs` holds the document to that (every authenticated operation
//! answers 401 and 429, every body-reading one 400, 408, 413 and 422, every error is problem+json).
//! `.ci/schemathesis.sh` checks the running binary against it.

use actix_web::{get, HttpResponse};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use crate::annotations::{responses, AccessFormat, Outcome, ViewFormat};
use crate::problem::Problem;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "consent-ledger",
        description = "Consent grants, requests and revocations for third-party parcel tracking, recorded as \
                       immutable events in one append-only log. Every write answers its log `position`. POSTs \
                       accept an `Idempotency-Key` header.\n\n\
                       Errors are RFC 9457 `application/problem+json` (schema `Problem`) with a stable `type` \
                       under https://consent-ledger.dev/problems/ and a `field` naming the bad input. Besides \
                       the answers each operation lists, every path answers a method it does not take with \
                       405 `method-not-allowed` and an `Allow` header, and an unknown path with 404. \
                       Authenticated calls may be rate-limited per principal (`serve --rate-limit`; off by \
                       default): over the limit, 429 `too-many-requests` with `Retry-After` (seconds)."
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
        routes::erasure::erase_shipment,
        routes::erasure::erase_subject,
        routes::tracking::ingest,
        routes::authorizations::grant,
        routes::authorizations::list,
        routes::authorizations::get,
        routes::authorizations::revoke,
        routes::authorizations::object,
        routes::authorizations::withdraw_objection,
        routes::dpas::register,
        routes::dpas::list,
        routes::dpas::get,
        routes::dpas::terminate,
        routes::subscriptions::create,
        routes::subscriptions::list,
        routes::subscriptions::get,
        routes::subscriptions::remove,
        routes::tracking::pull_by_id,
        routes::tracking::pull_by_number,
        routes::webhooks::register,
        routes::webhooks::list,
        routes::webhooks::get,
        routes::webhooks::disable,
        routes::webhooks::enable,
        routes::webhooks::rotate_key,
        routes::webhooks::test,
        routes::webhooks::deliveries,
        routes::webhooks::redeliver,
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
    components(
        // Query and path parameters' types: utoipa collects only the schemas bodies name.
        schemas(
            Problem,
            AccessFormat,
            ViewFormat,
            Outcome,
            consent_ledger_domain::values::PrincipalId,
            consent_ledger_domain::values::PartnerId,
            consent_ledger_domain::values::ShipperId,
            consent_ledger_domain::values::ShipmentId,
            consent_ledger_domain::values::ConsentId,
            consent_ledger_domain::values::ConsentRequestId,
            consent_ledger_domain::values::WebhookEndpointId,
            consent_ledger_domain::values::DpaId,
            consent_ledger_domain::values::CarrierCode,
            consent_ledger_domain::values::TrackingNumber,
            consent_ledger_domain::values::RecipientRef,
            consent_ledger_domain::request::RequestStatus,
            consent_ledger_projections::model::ConsentStatus,
            consent_ledger_app::fanout::TrackingUpdatedMessage,
        ),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::Forbidden,
            responses::NotFound,
            responses::MethodNotAllowed,
            responses::RequestTimeout,
            responses::PayloadTooLarge,
            responses::UnprocessableEntity,
            responses::TooManyRequests,
            responses::ServiceUnavailable,
        )
    ),
    modifiers(&BearerAuth, &NonEmptySets, &NoNulls),
    tags(
        (name = "principals", description = "Who may call, in which role (SPEC §2)"),
        (name = "shipments", description = "Parcels whose tracking is shared"),
        (name = "consents", description = "A shipper's grants to partners"),
        (name = "tracking", description = "The carrier's tracking updates, kept beside the log as personal data (SPEC §14)"),
        (name = "webhooks", description = "Partners' webhook endpoints: Standard Webhooks v1a, Ed25519 (SPEC §13)"),
        (name = "authorizations", description = "Carrier authorizations of tracking intermediaries and shippers' objections (SPEC §16)"),
        (name = "dpas", description = "The carrier's register of data processing agreements (SPEC §16)"),
        (name = "erasure", description = "Erasing personal data (Art. 17) with every proof intact (SPEC §12)"),
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

/// `NonEmptySet<T>` refuses an empty list; utoipa's derive cannot put `minItems` on a generic
/// newtype, so the generated `NonEmptySet_*` schemas get it here. (Repeats are accepted and
/// dropped, so there is no `uniqueItems`.)
struct NonEmptySets;

impl Modify for NonEmptySets {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            if let (true, RefOr::T(Schema::Array(array))) =
                (name.starts_with("NonEmptySet_"), schema)
            {
                array.min_items = Some(1);
            }
        }
    }
}

/// A query parameter, a header or an optional body is either sent or absent: none of them can
/// be JSON `null` (a body of `null` is refused: the API takes objects only). utoipa documents
/// an `Option<T>` there as "T or null"; this keeps the T.
struct NoNulls;

impl NoNulls {
    fn without_null(schema: &mut RefOr<Schema>) {
        let RefOr::T(inner) = schema else {
            return;
        };
        match inner {
            Schema::Object(object) => {
                if let SchemaType::Array(types) = &object.schema_type {
                    let kept: Vec<Type> = types
                        .iter()
                        .filter(|t| **t != Type::Null)
                        .cloned()
                        .collect();
                    if let [only] = kept.as_slice() {
                        object.schema_type = SchemaType::Type(only.clone());
                    }
                }
            }
            Schema::OneOf(one_of) => {
                let is_null = |s: &RefOr<Schema>| {
                    matches!(s, RefOr::T(Schema::Object(o))
                        if o.schema_type == SchemaType::Type(Type::Null))
                };
                one_of.items.retain(|s| !is_null(s));
                if one_of.items.len() == 1 {
                    *schema = one_of.items.remove(0);
                }
            }
            _ => {}
        }
    }
}

impl Modify for NoNulls {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(schema) = parameter.schema.as_mut() {
                        Self::without_null(schema);
                    }
                }
                if let Some(body) = operation.request_body.as_mut() {
                    for content in body.content.values_mut() {
                        if let Some(schema) = content.schema.as_mut() {
                            Self::without_null(schema);
                        }
                    }
                }
            }
        }
    }
}

/// The OpenAPI 3.1 description of this API, generated from the code, with the `webhooks` it
/// sends (OpenAPI 3.1's top-level `webhooks`, which utoipa does not model): `tracking.updated`.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    doc["webhooks"] = serde_json::json!({
        "tracking.updated": {
            "post": {
                "summary": "A tracking update, or a subscription's end, sent to a subscribed partner's endpoint (SPEC §14)",
                "description": "Signed with Standard Webhooks v1a (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The body's SHA-256 is the `body_sha256` of the recorded decision that allowed it (`data.decision_id`), in the partner's own export bundle.",
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TrackingUpdatedMessage"}}}
                },
                "responses": {"2XX": {"description": "received; any other answer is retried"}}
            }
        }
    });
    doc
}

/// The OpenAPI 3.1 description of this API.
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
