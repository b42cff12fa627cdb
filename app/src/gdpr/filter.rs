//! The access filters of SPEC §7 (`/v1/audit/access`, `/v1/audit/export`, and the `export`
//! command's options): which recorded access decisions a caller asks about. Parsed once from
//! raw text, by name, so the HTTP query and the command line refuse the same values with the
//! same field named.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use consent_ledger_domain::access::{AccessEvent, ACCESS_STREAM};
use consent_ledger_domain::personal::Personal;
use consent_ledger_domain::values::{
    CarrierCode, PartnerId, ShipmentId, ShipperId, TrackingNumber,
};
use consent_ledger_projections::decider::{Decider, ShipmentRef};
use consent_ledger_store::gdpr::AccessFilter as RowsFilter;
use consent_ledger_store::StoredEvent;

/// The names of the filters, as query parameters (the command line spells `_` as `-`).
pub const FILTER_NAMES: [&str; 8] = [
    "shipment_id",
    "carrier",
    "tracking_number",
    "partner_id",
    "shipper_id",
    "from",
    "to",
    "outcome",
];

/// A filter value that cannot be used, naming the filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct FilterError {
    pub field: &'static str,
    pub detail: String,
}

impl From<FilterError> for crate::error::AppError {
    fn from(err: FilterError) -> Self {
        Self::invalid(err.field, err.detail)
    }
}

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allowed" => Ok(Self::Allowed),
            "denied" => Ok(Self::Denied),
            other => Err(format!(
                "unknown value `{other}`; expected allowed or denied"
            )),
        }
    }
}

/// Which access decisions are asked about. Every filter given must hold (they combine with
/// AND); none given selects every decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFilter {
    /// Decisions about this shipment.
    pub shipment: Option<ShipmentId>,
    /// Decisions about the shipment with this carrier and tracking number, including denials
    /// recorded before it was registered (which keep the carrier and tracking number asked for).
    pub tracking: Option<(CarrierCode, TrackingNumber)>,
    /// Decisions asked by (or for) this partner: the decision's `partner`.
    pub partner: Option<PartnerId>,
    /// Decisions about the shipments of this shipper.
    pub shipper: Option<ShipperId>,
    /// Decided at or after this time …
    pub from: Option<DateTime<Utc>>,
    /// … and before this one (`from` ≤ decided_at < `to`, so adjacent windows never overlap).
    pub to: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    /// Decisions about any of these shipments (a DSAR's; no query parameter names it).
    pub shipment_in: Option<Vec<ShipmentId>>,
}

fn parse<T>(
    raw: &impl Fn(&str) -> Option<String>,
    field: &'static str,
    read: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, FilterError> {
    raw(field)
        .map(|text| read(&text).map_err(|detail| FilterError { field, detail }))
        .transpose()
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    crate::query::rfc3339_time(text)
}

impl AccessFilter {
    /// Reads the filters from `raw`, which gives the text of a filter by its name in
    /// [`FILTER_NAMES`], or `None` when it was not given.
    pub fn parse(raw: impl Fn(&str) -> Option<String>) -> Result<Self, FilterError> {
        let shipment = parse(&raw, "shipment_id", |s| {
            s.parse::<ShipmentId>().map_err(|e| e.to_string())
        })?;
        let carrier = parse(&raw, "carrier", |s| {
            CarrierCode::parse(s).map_err(|e| e.to_string())
        })?;
        let tracking_number = parse(&raw, "tracking_number", |s| {
            TrackingNumber::parse(s).map_err(|e| e.to_string())
        })?;
        let tracking = match (carrier, tracking_number) {
            (Some(c), Some(t)) => Some((c, t)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(FilterError {
                    field: "tracking_number",
                    detail: "required with carrier: a tracking number is unique per carrier".into(),
                })
            }
            (None, Some(_)) => {
                return Err(FilterError {
                    field: "carrier",
                    detail: "required with tracking_number: a tracking number is unique per \
                             carrier"
                        .into(),
                })
            }
        };
        let partner = parse(&raw, "partner_id", |s| {
            s.parse::<PartnerId>().map_err(|e| e.to_string())
        })?;
        let shipper = parse(&raw, "shipper_id", |s| {
            s.parse::<ShipperId>().map_err(|e| e.to_string())
        })?;
        let from = parse(&raw, "from", time)?;
        let to = parse(&raw, "to", time)?;
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                return Err(FilterError {
                    field: "to",
                    detail: "must not be before from".into(),
                });
            }
        }
        let outcome = parse(&raw, "outcome", Outcome::from_str)?;
        Ok(Self {
            shipment,
            tracking,
            partner,
            shipper,
            from,
            to,
            outcome,
            shipment_in: None,
        })
    }

    /// The same filter as the GDPR tables are asked ([`consent_ledger_store::gdpr::AccessFilter`]).
    pub fn rows_filter(&self) -> RowsFilter {
        RowsFilter {
            shipment_id: self.shipment.map(|s| s.to_string()),
            carrier_tracking: self
                .tracking
                .as_ref()
                .map(|(c, t)| (c.to_string(), t.to_string())),
            partner_id: self.partner.map(|p| p.to_string()),
            shipper_id: self.shipper.map(|s| s.to_string()),
            from: self.from.map(|t| t.timestamp_micros()),
            to: self.to.map(|t| t.timestamp_micros()),
            allowed: self.outcome.map(|o| o == Outcome::Allowed),
            shipment_in: self
                .shipment_in
                .as_ref()
                .map(|ids| ids.iter().map(ToString::to_string).collect()),
            parcel_disclosed_only: false,
            within: None,
        }
    }

    /// Looks up what the filter names in the read model's index, once, for [`Self::selects`].
    pub fn resolve(&self, index: &Decider) -> Resolved {
        Resolved {
            tracked: self
                .tracking
                .as_ref()
                .and_then(|(c, t)| index.resolve(&ShipmentRef::Tracking(c.clone(), t.clone()))),
        }
    }

    /// The one shipment the filter names, if it names one (by id, or by a carrier and tracking
    /// number that are registered).
    pub fn one_shipment(&self, resolved: &Resolved) -> Option<ShipmentId> {
        match (self.shipment, resolved.tracked) {
            (Some(a), Some(b)) if a != b => None,
            (Some(a), _) => Some(a),
            (None, b) => b,
        }
    }

    /// [`AccessFilter::selects`] for a filter that names no key (no shipment, parcel, partner
    /// or shipper: `RowsFilter::keyed` of its [`AccessFilter::rows_filter`]): a decision of
    /// this time and outcome.
    pub fn selects_at(&self, decided_at: DateTime<Utc>, outcome: Outcome) -> bool {
        self.from.is_none_or(|from| decided_at >= from)
            && self.to.is_none_or(|to| decided_at < to)
            && self.outcome.is_none_or(|o| o == outcome)
    }

    /// Whether the filter selects this decision. `index` answers who owns a shipment.
    pub fn selects(&self, d: &Decision, resolved: &Resolved, index: &Decider) -> bool {
        if self.shipment.is_some_and(|s| d.shipment != Some(s)) {
            return false;
        }
        if let Some(ids) = &self.shipment_in {
            if !d.shipment.is_some_and(|s| ids.contains(&s)) {
                return false;
            }
        }
        if let Some((carrier, tracking)) = &self.tracking {
            let by_id = resolved.tracked.is_some() && d.shipment == resolved.tracked;
            let as_asked = d
                .tracking
                .is_some_and(|(c, t)| c == carrier && t == tracking);
            if !(by_id || as_asked) {
                return false;
            }
        }
        if self.partner.is_some_and(|p| d.partner != p) {
            return false;
        }
        if let Some(shipper) = self.shipper {
            let owner = d.shipment.and_then(|s| index.shipment_owner(s));
            if owner != Some(shipper) {
                return false;
            }
        }
        self.selects_at(d.decided_at, d.outcome)
    }
}

/// What [`AccessFilter::resolve`] found in the read model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The shipment registered under the filter's carrier and tracking number.
    pub tracked: Option<ShipmentId>,
}

/// What the filters look at in a recorded access decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub partner: PartnerId,
    pub shipment: Option<ShipmentId>,
    /// The carrier and tracking number asked for, kept on a denial of an unknown shipment.
    pub tracking: Option<(&'a CarrierCode, &'a TrackingNumber)>,
    pub decided_at: DateTime<Utc>,
    pub outcome: Outcome,
}

/// The access decision a stored event records, if it records one. The one place that reads an
/// access event's payload.
pub fn access_event(e: &StoredEvent) -> Option<AccessEvent> {
    if e.stream_type != ACCESS_STREAM {
        return None;
    }
    e.decode().ok()
}

/// The time and outcome of the access decision a stored event records (a cancelled delivery's
/// are its cancellation's: see [`decision`]), read without the rest of its payload, which a
/// filter on time and outcome alone does not look at: an export of a time window decides on
/// every event of its span this way.
pub fn access_time(e: &StoredEvent) -> Option<(DateTime<Utc>, Outcome)> {
    /// The one field each access event's variant is filtered by; serde skips the others.
    #[derive(serde::Deserialize)]
    enum Timed {
        #[serde(rename = "TrackingAccessAllowed")]
        Allowed { decided_at: DateTime<Utc> },
        #[serde(rename = "TrackingAccessDenied")]
        Denied { decided_at: DateTime<Utc> },
        #[serde(rename = "TrackingDeliveryCancelled")]
        Cancelled { cancelled_at: DateTime<Utc> },
    }
    if e.stream_type != ACCESS_STREAM {
        return None;
    }
    // Times are never sealed (SPEC §12): the stored text holds them as they are.
    Some(match e.payload.decode::<Timed>().ok()? {
        Timed::Allowed { decided_at } => (decided_at, Outcome::Allowed),
        Timed::Denied { decided_at } => (decided_at, Outcome::Denied),
        Timed::Cancelled { cancelled_at } => (cancelled_at, Outcome::Denied),
    })
}

/// The facts of a decision the filters look at.
pub fn decision(event: &AccessEvent) -> Decision<'_> {
    match event {
        AccessEvent::TrackingAccessAllowed {
            partner,
            shipment,
            decided_at,
            ..
        } => Decision {
            partner: *partner,
            shipment: Some(*shipment),
            tracking: None,
            decided_at: *decided_at,
            outcome: Outcome::Allowed,
        },
        AccessEvent::TrackingAccessDenied {
            partner,
            shipment,
            carrier,
            tracking_number,
            decided_at,
            ..
        } => Decision {
            partner: *partner,
            shipment: *shipment,
            tracking: carrier
                .as_ref()
                .zip(tracking_number.as_ref().and_then(Personal::known)),
            decided_at: *decided_at,
            outcome: Outcome::Denied,
        },
        // A delivery stopped at send time (SPEC §14) is filtered as a denial of its partner
        // on its shipment, so that the partner's bundle and the access log show it.
        AccessEvent::TrackingDeliveryCancelled {
            partner,
            shipment,
            cancelled_at,
            ..
        } => Decision {
            partner: *partner,
            shipment: Some(*shipment),
            tracking: None,
            decided_at: *cancelled_at,
            outcome: Outcome::Denied,
        },
    }
}
