//! `POST /v1/shipments` (the carrier's gateway or an admin, naming the shipper; SPEC §7: the
//! carrier is the authority on who shipped what, so a shipper cannot claim a tracking number)
//! and `GET /v1/shipments/{id}`.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ledger_domain::shipment::ShipmentCommand;
use consent_ledger_domain::values::{
    CarrierCode, ConsentId, CountryCode, DataCategory, DisplayName, NonEmptySet, PartnerId,
    PartnerKind, PrincipalId, Purpose, RecipientRef, Role, ShipmentId, ShipperId, TrackingNumber,
};
use consent_ledger_projections::model::ShipmentView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::body::{parse_json, read_body};
use crate::problem::{ApiError, Problem};
use crate::shapes::{render_created, Created};
use crate::write::write;
use consent_ledger_app::query::{path_id, QueryParams};
use consent_ledger_app::state::AppState;

/// `{"carrier","tracking_number","destination_country","recipient_ref"?,"shipper_id"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterShipment {
    /// Carrier code; stored upper-cased.
    pub carrier: CarrierCode,
    /// Unique per carrier.
    pub tracking_number: TrackingNumber,
    pub destination_country: CountryCode,
    /// An opaque key for data-subject requests; never an e-mail address or a name.
    #[serde(default)]
    pub recipient_ref: Option<RecipientRef>,
    /// The shipper the shipment belongs to (required; optional in the schema only so that its
    /// absence is answered naming the field after the other fields were read).
    #[serde(default)]
    pub shipper_id: Option<ShipperId>,
}

/// The claim that keeps a carrier's tracking number unique across the log.
pub fn tracking_claim(carrier: &CarrierCode, tracking: &TrackingNumber) -> String {
    format!("tracking:{carrier}/{tracking}")
}

/// Register a shipment for a shipper: the carrier's gateway or an admin, never the shipper
/// itself (a shipper claiming a tracking number could take over another's parcel).
#[utoipa::path(post, path = "/v1/shipments", tag = "shipments", request_body = RegisterShipment,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = Created), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "not the gateway or an admin (a shipper cannot register shipments)"),
        (status = 409, body = Problem, description = "tracking number already registered"),
        (status = 422, body = Problem, description = "a bad field, or `shipper_id` missing or not a shipper")))]
#[post("/v1/shipments")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Gateway, Role::Admin])?;
    let body = read_body(payload).await?;
    let input: RegisterShipment = parse_json(&body)?;
    let shipper = input
        .shipper_id
        .ok_or_else(|| ApiError::invalid("shipper_id", "name the shipper the shipment is for"))?;
    let id = ShipmentId::from_uuid(Uuid::now_v7());
    let claim = tracking_claim(&input.carrier, &input.tracking_number);
    let command = ShipmentCommand::RegisterShipment {
        id,
        shipper,
        carrier: input.carrier,
        tracking_number: input.tracking_number,
        destination_country: input.destination_country,
        recipient_ref: input.recipient_ref,
    };
    write(
        &state,
        &req,
        &caller,
        &body,
        StatusCode::CREATED,
        |mut meta| async {
            meta.unique_claims.push(claim);
            Ok(state
                .shipments
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| render_created(events),
    )
    .await
}

/// One shipment: its shipper, the gateway and auditors see it; anyone else gets 404.
#[utoipa::path(get, path = "/v1/shipments/{id}", tag = "shipments", security(("bearer" = [])),
    responses((status = 200, body = ShipmentView), (status = 404, body = Problem)))]
#[get("/v1/shipments/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ShipmentId = path_id(&id, "id")?;
    let stored = state.store.read_stream("shipment", &id.to_string()).await?;
    let shipment = stored
        .first()
        .and_then(ShipmentView::from_registration)
        .ok_or_else(ApiError::not_found)?;
    let visible = caller.is_auditor()
        || caller.role == Role::Gateway
        || (caller.role == Role::Shipper && shipment.shipper_id == caller.id.as_shipper());
    if !visible {
        return Err(ApiError::not_found());
    }
    Ok(HttpResponse::Ok().json(shipment))
}

/// One party that may see the shipment, through one consent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizedParty {
    pub partner_id: PartnerId,
    pub name: Option<DisplayName>,
    pub kind: Option<PartnerKind>,
    pub consent_id: ConsentId,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// "Who may see this shipment", now or as of a past time.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizedParties {
    pub shipment_id: ShipmentId,
    pub as_of: DateTime<Utc>,
    pub parties: Vec<AuthorizedParty>,
}

/// Every partner whose consent covered the shipment at `as_of` (default now): granted by
/// then, not revoked by then, valid then. Answered from the consents' recorded intervals, not
/// by replaying the log. The shipment's shipper, the gateway and auditors may ask.
#[utoipa::path(get, path = "/v1/shipments/{id}/authorized-parties", tag = "shipments", security(("bearer" = [])),
    params(("as_of" = Option<String>, Query, description = "RFC 3339 time; default now")),
    responses((status = 200, body = AuthorizedParties), (status = 404, body = Problem), (status = 422, body = Problem)))]
#[get("/v1/shipments/{id}/authorized-parties")]
pub async fn authorized_parties(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ShipmentId = path_id(&id, "id")?;
    let q = QueryParams::parse(req.query_string(), &["as_of"])?;
    let as_of: DateTime<Utc> = q
        .get::<DateTime<chrono::FixedOffset>>("as_of")?
        .map_or_else(|| state.clock.now(), |t| t.with_timezone(&Utc));
    let model = state.projector.read();
    let owner = model
        .access
        .shipment_owner(id)
        .ok_or_else(ApiError::not_found)?;
    let visible = caller.is_auditor()
        || caller.role == Role::Gateway
        || (caller.role == Role::Shipper && owner == caller.id.as_shipper());
    if !visible {
        return Err(ApiError::not_found());
    }
    let parties = model
        .access
        .parties_at(id, as_of)
        .into_iter()
        .filter_map(|party| {
            let consent = model.consents.get(&party.consent)?;
            let partner = model.principals.get(&PrincipalId::from(party.partner));
            Some(AuthorizedParty {
                partner_id: party.partner,
                name: partner.map(|p| p.name.clone()),
                kind: partner.and_then(|p| p.partner.as_ref()).map(|p| p.kind),
                consent_id: party.consent,
                purposes: consent.purposes.clone(),
                data_categories: consent.data_categories.clone(),
                valid_until: consent.valid_until,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuthorizedParties {
        shipment_id: id,
        as_of,
        parties,
    }))
}
