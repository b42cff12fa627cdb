//! Shipments (SPEC §7): registering a parcel, reading it, and "who may see this shipment" now
//! or as of any past time.

use chrono::{DateTime, Utc};
use consent_ledger_domain::shipment::ShipmentCommand;
use consent_ledger_domain::values::{
    AuthorizationId, CarrierCode, ConsentId, CountryCode, DataCategory, DisplayName, DpaId,
    LegalBasis, NonEmptySet, PartnerId, PartnerKind, PrincipalId, Purpose, RecipientRef, Role,
    ShipmentId, ShipperId, TrackingNumber,
};
use consent_ledger_projections::model::ShipmentView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::state::AppState;
use crate::write::{self, Answer, Created, WriteContext};

/// Who may register shipments: the carrier's gateway or an admin, naming the shipper. The
/// carrier is the authority on who shipped what; a shipper registering its own could claim
/// another shipper's tracking number first and decide who reads that parcel.
pub const REGISTRARS: &[Role] = &[Role::Gateway, Role::Admin];

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
    /// The shipper the shipment belongs to. Required: `Option` here only so that its absence
    /// is answered naming the field after the other fields were read.
    #[serde(default)]
    #[schema(required = true, value_type = ShipperId)]
    pub shipper_id: Option<ShipperId>,
}

/// The claim that keeps a carrier's tracking number unique across the log.
pub fn tracking_claim(carrier: &CarrierCode, tracking: &TrackingNumber) -> String {
    format!("tracking:{carrier}/{tracking}")
}

/// Registers a shipment; answers its id and position. A tracking number is registered once
/// per carrier (a unique claim in the same commit).
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn register(
    state: &AppState,
    caller: &Caller,
    input: RegisterShipment,
    context: WriteContext,
) -> Result<(Created, Answer), AppError> {
    caller.require(REGISTRARS)?;
    let shipper = input
        .shipper_id
        .ok_or_else(|| AppError::invalid("shipper_id", "name the shipper the shipment is for"))?;
    let id = ShipmentId::from_uuid(state.ids.new_id());
    let claim = tracking_claim(&input.carrier, &input.tracking_number);
    let command = ShipmentCommand::RegisterShipment {
        id,
        shipper,
        carrier: input.carrier,
        tracking_number: input.tracking_number,
        destination_country: input.destination_country,
        recipient_ref: input.recipient_ref,
    };
    write::record(
        state,
        context,
        |mut meta| async {
            meta.unique_claims.push(claim);
            Ok(state
                .shipments
                .create(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| Created::of(events),
    )
    .await
}

/// Whether the caller sees a shipment of `owner`: its shipper, the gateway and auditors;
/// anyone else is answered as if it did not exist.
fn sees(caller: &Caller, owner: ShipperId) -> bool {
    caller.is_auditor()
        || caller.role == Role::Gateway
        || (caller.role == Role::Shipper && owner == caller.id.as_shipper())
}

/// One shipment as registered; another tenant's is [`AppError::not_found`].
#[tracing::instrument(level = "debug", skip(state, caller))]
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: ShipmentId,
) -> Result<ShipmentView, AppError> {
    let stored = state.store.read_stream("shipment", &id.to_string()).await?;
    let shipment = stored
        .first()
        .and_then(ShipmentView::from_registration)
        .ok_or_else(AppError::not_found)?;
    if !sees(caller, shipment.shipper_id) {
        return Err(AppError::not_found());
    }
    Ok(shipment)
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

/// One tracking intermediary that may see the shipment, through one carrier authorization
/// under a DPA (SPEC §16).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizedIntermediary {
    pub partner_id: PartnerId,
    pub name: Option<DisplayName>,
    pub kind: Option<PartnerKind>,
    #[schema(value_type = String, format = Uuid)]
    pub authorization_id: AuthorizationId,
    #[schema(value_type = String, format = Uuid)]
    pub dpa_id: DpaId,
    pub legal_basis: LegalBasis,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// "Who may see this shipment", now or as of a past time.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizedParties {
    pub shipment_id: ShipmentId,
    pub as_of: DateTime<Utc>,
    /// Through the shipper's consents.
    pub parties: Vec<AuthorizedParty>,
    /// Through the carrier's authorizations (SPEC §16): neither revoked nor objected to by
    /// the shipper then, under a DPA in force then.
    pub intermediaries: Vec<AuthorizedIntermediary>,
}

/// Every partner whose consent covered the shipment at `as_of` (default now): granted by then,
/// not revoked by then, valid then — from the consents' recorded intervals, not by replaying
/// the log.
#[tracing::instrument(level = "debug", skip(state, caller))]
pub fn authorized_parties(
    state: &AppState,
    caller: &Caller,
    id: ShipmentId,
    as_of: Option<DateTime<Utc>>,
) -> Result<AuthorizedParties, AppError> {
    let as_of = as_of.unwrap_or_else(|| state.clock.now());
    let model = state.projector.read();
    let owner = model
        .access
        .shipment_owner(id)
        .ok_or_else(AppError::not_found)?;
    if !sees(caller, owner) {
        return Err(AppError::not_found());
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
    let intermediaries = model
        .access
        .authorized_at(id, as_of)
        .into_iter()
        .filter_map(|found| {
            let authorization = model.authorizations.get(&found.authorization)?;
            let partner = model.principals.get(&PrincipalId::from(found.partner));
            Some(AuthorizedIntermediary {
                partner_id: found.partner,
                name: partner.map(|p| p.name.clone()),
                kind: partner.and_then(|p| p.partner.as_ref()).map(|p| p.kind),
                authorization_id: found.authorization,
                dpa_id: found.dpa,
                legal_basis: authorization.legal_basis,
                purposes: authorization.purposes.clone(),
                data_categories: authorization.data_categories.clone(),
                valid_until: authorization.valid_until,
            })
        })
        .collect();
    Ok(AuthorizedParties {
        shipment_id: id,
        as_of,
        parties,
        intermediaries,
    })
}
