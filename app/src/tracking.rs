//! The carrier's tracking updates (SPEC §14): `POST /v1/tracking-events` from its gateway, up
//! to 1,000 a call, each checked on its own (a refused item names its field and never echoes a
//! value: the values are personal data), the accepted ones kept beside the log — with their
//! fan-out to subscribed partners ([`crate::fanout`]) — in one durable transaction, deleted
//! after `serve --tracking-retention-days` and by an erasure.

use chrono::{DateTime, SecondsFormat, Utc};
use consent_ledger_domain::access::Channel;
use consent_ledger_domain::values::{
    CarrierCode, CountryCode, DataCategory, NonEmptySet, PartnerId, Purpose, Role, ShipmentId,
    TrackingNumber,
};
use consent_ledger_projections::decider::ShipmentRef;
use consent_ledger_store::tracking::TrackingUpdateRow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::decide::{self, DecisionAnswer, DecisionRequest};
use crate::error::AppError;
use crate::state::AppState;
pub use crate::update::{minimised, Details, Location, ProofOfDelivery, RecipientContact};

/// Who sends tracking updates: the carrier's gateway, or an admin.
pub const INGESTERS: &[Role] = &[Role::Gateway, Role::Admin];

/// The most updates one call carries.
pub const MAX_EVENTS: usize = 1000;

/// A parcel's status, SPEC §14's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatus {
    InfoReceived,
    InTransit,
    OutForDelivery,
    AvailableForPickup,
    Delivered,
    DeliveryFailed,
    Exception,
    ReturnedToSender,
}

impl TrackingStatus {
    pub const ALL: [TrackingStatus; 8] = [
        Self::InfoReceived,
        Self::InTransit,
        Self::OutForDelivery,
        Self::AvailableForPickup,
        Self::Delivered,
        Self::DeliveryFailed,
        Self::Exception,
        Self::ReturnedToSender,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InfoReceived => "info_received",
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::AvailableForPickup => "available_for_pickup",
            Self::Delivered => "delivered",
            Self::DeliveryFailed => "delivery_failed",
            Self::Exception => "exception",
            Self::ReturnedToSender => "returned_to_sender",
        }
    }

    /// Delivered or back with the sender: the parcel's journey is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Delivered | Self::ReturnedToSender)
    }
}

/// One update as the gateway sends it: the shipment by id or by carrier and tracking number.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[allow(dead_code)] // the schema of what `ingest` reads field by field
pub struct TrackingEventIn {
    #[schema(value_type = Option<String>, format = Uuid)]
    shipment_id: Option<String>,
    #[schema(value_type = Option<String>)]
    carrier: Option<String>,
    #[schema(value_type = Option<String>)]
    tracking_number: Option<String>,
    status: TrackingStatus,
    occurred_at: DateTime<Utc>,
    #[schema(max_length = 500)]
    description: Option<String>,
    location: Option<Location>,
    proof_of_delivery: Option<ProofOfDelivery>,
    recipient_contact: Option<RecipientContact>,
}

/// `{"events":[…]}`, 1 to 1,000.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // the schema of what `ingest` reads
pub struct TrackingEventsIn {
    #[schema(min_items = 1, max_items = 1000)]
    events: Vec<TrackingEventIn>,
}

/// An item refused: its index in `events`, the field, why (never the value).
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub field: String,
    pub detail: String,
}

/// `{"accepted":N,"rejected":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ingested {
    /// Updates kept (one sent again is counted, and kept once).
    pub accepted: usize,
    pub rejected: Vec<Rejected>,
}

/// A checked update, ready to keep.
struct Checked {
    shipment: ShipmentId,
    status: TrackingStatus,
    occurred_at: DateTime<Utc>,
    details: Details,
}

/// `POST /v1/tracking-events`: checks each item, keeps the accepted ones durably (one
/// transaction) before answering.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn ingest(
    state: &AppState,
    caller: &Caller,
    body: Value,
    request_id: String,
) -> Result<Ingested, AppError> {
    let provenance = consent_ledger_store::Provenance {
        actor: caller.id.to_string(),
        request_id,
    };
    caller.require(INGESTERS)?;
    let Value::Object(mut envelope) = body else {
        return Err(AppError::invalid("events", "send {\"events\":[…]}"));
    };
    if let Some(unknown) = envelope.keys().find(|k| *k != "events") {
        return Err(AppError::invalid(unknown, "unknown field"));
    }
    let Some(Value::Array(events)) = envelope.remove("events") else {
        return Err(AppError::invalid(
            "events",
            "an array of 1 to 1,000 updates",
        ));
    };
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(AppError::invalid(
            "events",
            "an array of 1 to 1,000 updates",
        ));
    }
    let mut rows = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    let received_at = Utc::now().timestamp_millis();
    for (index, item) in events.into_iter().enumerate() {
        match check(state, item) {
            Ok(c) => rows.push(TrackingUpdateRow {
                update_id: state.ids.new_id().to_string(),
                shipment_id: c.shipment.to_string(),
                status: c.status.as_str().to_owned(),
                occurred_at: c.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                received_at,
                details: serde_json::to_string(&c.details).map_err(AppError::internal)?,
            }),
            Err((field, detail)) => rejected.push(Rejected {
                index,
                field,
                detail,
            }),
        }
    }
    let accepted = rows.len();
    // An update sent again (or twice in one call) is kept, and fanned out, once: the store
    // refuses one another request kept first, and the rest are kept again without it.
    for _ in 0..4 {
        let fresh = unseen(state, std::mem::take(&mut rows)).await?;
        if fresh.is_empty() || crate::fanout::keep_and_fan_out(state, &provenance, &fresh).await? {
            return Ok(Ingested { accepted, rejected });
        }
        rows = fresh;
    }
    Err(AppError::Unavailable(anyhow::anyhow!(
        "the same updates kept arriving concurrently; retry"
    )))
}

/// `rows` without those the store holds and without repeats among them.
async fn unseen(
    state: &AppState,
    rows: Vec<TrackingUpdateRow>,
) -> Result<Vec<TrackingUpdateRow>, AppError> {
    let key = |r: &TrackingUpdateRow| {
        (
            r.shipment_id.clone(),
            r.occurred_at.clone(),
            r.status.clone(),
        )
    };
    let shipments: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.shipment_id.as_str()).collect();
    let shipments: Vec<&str> = shipments.into_iter().collect();
    let mut seen: std::collections::HashSet<(String, String, String)> = state
        .store
        .tracking_keys(&shipments)
        .await?
        .into_iter()
        .collect();
    Ok(rows.into_iter().filter(|r| seen.insert(key(r))).collect())
}

type Refusal = (String, String);

fn refuse(field: &str, detail: &str) -> Refusal {
    (field.to_owned(), detail.to_owned())
}

/// The text at `field` of `object`, if present: a string of 1 to `max` characters.
fn text(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
    max: usize,
) -> Result<Option<String>, Refusal> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(refuse(path, &format!("a text of 1 to {max} characters"))),
    }
}

/// Refuses any field of `object` not in `known`, naming it under `prefix`.
fn only(object: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), Refusal> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(refuse(&format!("{prefix}{unknown}"), "unknown field")),
        None => Ok(()),
    }
}

fn object<'v>(
    value: Option<&'v Value>,
    field: &str,
) -> Result<Option<&'v Map<String, Value>>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(refuse(field, "an object")),
    }
}

fn check(state: &AppState, item: Value) -> Result<Checked, Refusal> {
    let Value::Object(item) = item else {
        return Err(refuse("events", "each update is an object"));
    };
    only(
        &item,
        &[
            "shipment_id",
            "carrier",
            "tracking_number",
            "status",
            "occurred_at",
            "description",
            "location",
            "proof_of_delivery",
            "recipient_contact",
        ],
        "",
    )?;
    let shipment = shipment(state, &item)?;
    let status = match item.get("status") {
        Some(Value::String(s)) => TrackingStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| refuse("status", "one of info_received, in_transit, out_for_delivery, available_for_pickup, delivered, delivery_failed, exception, returned_to_sender"))?,
        _ => return Err(refuse("status", "required")),
    };
    let occurred_at = match item.get("occurred_at") {
        Some(Value::String(s)) => {
            crate::query::rfc3339_time(s).map_err(|e| refuse("occurred_at", &e))?
        }
        _ => return Err(refuse("occurred_at", "required: an RFC 3339 time")),
    };
    let description = text(&item, "description", "description", 500)?;
    let location = match object(item.get("location"), "location")? {
        None => None,
        Some(o) => {
            only(o, &["city", "postal_code", "country"], "location.")?;
            let country = match o.get("country") {
                Some(Value::String(c)) => CountryCode::parse(c)
                    .map_err(|_| refuse("location.country", "an ISO 3166-1 alpha-2 code"))?,
                _ => {
                    return Err(refuse(
                        "location.country",
                        "required: an ISO 3166-1 alpha-2 code",
                    ))
                }
            };
            Some(Location {
                city: text(o, "city", "location.city", 100)?,
                postal_code: text(o, "postal_code", "location.postal_code", 16)?,
                country,
            })
        }
    };
    let proof_of_delivery = match object(item.get("proof_of_delivery"), "proof_of_delivery")? {
        None => None,
        Some(o) => {
            only(o, &["signed_by", "photo_url"], "proof_of_delivery.")?;
            let photo_url = text(o, "photo_url", "proof_of_delivery.photo_url", 2000)?;
            if photo_url
                .as_deref()
                .is_some_and(|u| url::Url::parse(u).map_or(true, |u| u.scheme() != "https"))
            {
                return Err(refuse("proof_of_delivery.photo_url", "an https URL"));
            }
            Some(ProofOfDelivery {
                signed_by: text(o, "signed_by", "proof_of_delivery.signed_by", 200)?,
                photo_url,
            })
        }
    };
    let recipient_contact = match object(item.get("recipient_contact"), "recipient_contact")? {
        None => None,
        Some(o) => {
            only(o, &["email", "phone"], "recipient_contact.")?;
            let email = text(o, "email", "recipient_contact.email", 254)?;
            if email.as_deref().is_some_and(|e| {
                let mut parts = e.split('@');
                !(parts.next().is_some_and(|l| !l.is_empty())
                    && parts.next().is_some_and(|d| d.contains('.'))
                    && parts.next().is_none())
            }) {
                return Err(refuse("recipient_contact.email", "an e-mail address"));
            }
            let phone = text(o, "phone", "recipient_contact.phone", 32)?;
            if phone.as_deref().is_some_and(|p| {
                !p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
                    || p.chars().filter(char::is_ascii_digit).count() < 5
            }) {
                return Err(refuse("recipient_contact.phone", "a phone number"));
            }
            Some(RecipientContact { email, phone })
        }
    };
    Ok(Checked {
        shipment,
        status,
        occurred_at,
        details: Details {
            description,
            location,
            proof_of_delivery,
            recipient_contact,
        },
    })
}

/// The shipment an item names, by id or by carrier and tracking number; one the ledger does not
/// know (or whose number was erased) is refused without repeating the number.
fn shipment(state: &AppState, item: &Map<String, Value>) -> Result<ShipmentId, Refusal> {
    let string = |field: &str| match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(refuse(field, "a string")),
    };
    let asked = match (
        string("shipment_id")?,
        string("carrier")?,
        string("tracking_number")?,
    ) {
        (Some(id), None, None) => ShipmentRef::Id(
            ShipmentId::parse(id).map_err(|_| refuse("shipment_id", "a shipment id (UUID)"))?,
        ),
        (None, Some(carrier), Some(number)) => ShipmentRef::Tracking(
            CarrierCode::parse(carrier).map_err(|_| refuse("carrier", "a carrier code"))?,
            TrackingNumber::parse(number)
                .map_err(|_| refuse("tracking_number", "a tracking number"))?,
        ),
        (None, Some(_), None) => return Err(refuse("tracking_number", "required with carrier")),
        (None, None, Some(_)) => return Err(refuse("carrier", "required with tracking_number")),
        _ => {
            return Err(refuse(
                "shipment_id",
                "name the shipment either by shipment_id or by carrier and tracking_number",
            ))
        }
    };
    let field = match asked {
        ShipmentRef::Id(_) => "shipment_id",
        ShipmentRef::Tracking(..) => "tracking_number",
    };
    state
        .projector
        .read()
        .access
        .resolve(&asked)
        .ok_or_else(|| refuse(field, "no such shipment"))
}

/// Deletes tracking updates received more than `days` ago, in batches; answers how many.
pub async fn sweep_retention(state: &AppState, days: u32) -> Result<u64, AppError> {
    let before = (Utc::now() - chrono::Duration::days(i64::from(days))).timestamp_millis();
    let mut deleted = 0;
    loop {
        let n = state.store.delete_tracking_before(before, 5_000).await?;
        deleted += n;
        if n < 5_000 {
            return Ok(deleted);
        }
    }
}

/// `?purpose=&data_categories=` of a pull, and `partner_id` from the gateway.
#[derive(Debug, Clone)]
pub struct PullQuery {
    pub partner_id: Option<PartnerId>,
    pub purpose: Purpose,
    pub data_categories: NonEmptySet<DataCategory>,
}

/// A pull's answer: the decision, recorded with `"channel":"pull"`, and when it allowed, the
/// shipment's updates, oldest first, minimised to the categories it allowed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pulled {
    #[serde(flatten)]
    pub decision: DecisionAnswer,
    /// Present when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub updates: Option<Vec<Value>>,
}

/// `GET /v1/shipments/{id}/tracking` and `GET /v1/tracking?carrier=&tracking_number=`: decided
/// and recorded like every read (a partner for itself; the gateway names the partner), then
/// answered with what the decision allowed.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn pull(
    state: &AppState,
    caller: &Caller,
    shipment: ShipmentRef,
    query: PullQuery,
    context: crate::write::WriteContext,
) -> Result<Pulled, AppError> {
    caller.require(&[Role::Partner, Role::Gateway])?;
    let (shipment_id, carrier, tracking_number) = match shipment {
        ShipmentRef::Id(id) => (Some(id), None, None),
        ShipmentRef::Tracking(c, t) => (None, Some(c), Some(t)),
    };
    let request = DecisionRequest {
        partner_id: query.partner_id,
        shipment_id,
        carrier,
        tracking_number,
        purpose: query.purpose,
        data_categories: query.data_categories,
        on_behalf_of: None,
        at_least_as_fresh: None,
    };
    let (mut question, resolved) = {
        let model = state.projector.read();
        let question = decide::question(&model, caller, &request, "")?;
        let resolved = model.access.resolve(&question.shipment);
        (question, resolved)
    };
    question.channel = Some(Channel::Pull);
    let (mut answers, _) =
        decide::decide(state, caller, context, std::slice::from_ref(&question)).await?;
    let decision = answers
        .pop()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("no decision recorded")))?;
    let updates = match (decision.allowed, resolved) {
        (true, Some(shipment)) => {
            let rows = state.store.tracking_of(&shipment.to_string()).await?;
            Some(
                rows.iter()
                    .map(|row| minimised(row, &decision.data_categories))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
        _ => None,
    };
    Ok(Pulled { decision, updates })
}

impl PullQuery {
    /// From `?purpose=&data_categories=a,b[&partner_id=]` (both required).
    pub fn from_params(q: &crate::query::QueryParams) -> Result<Self, AppError> {
        let purpose = q
            .get::<Purpose>("purpose")?
            .ok_or_else(|| AppError::invalid("purpose", "required"))?;
        let categories = q
            .raw("data_categories")
            .ok_or_else(|| AppError::invalid("data_categories", "required, comma-separated"))?
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<DataCategory>()
                    .map_err(|e| AppError::invalid("data_categories", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let data_categories = NonEmptySet::try_from(categories)
            .map_err(|e| AppError::invalid("data_categories", e.to_string()))?;
        Ok(Self {
            partner_id: q.get("partner_id")?,
            purpose,
            data_categories,
        })
    }
}
