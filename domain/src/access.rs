//! Access decisions (SPEC §3): every third-party tracking read is decided and recorded as one
//! of these events before it is answered. They are not an aggregate: a read is recorded in
//! O(1), whatever the shipment's history (no aggregate replay per read). The decision itself is
//! made by the read side's decider; this module names what is recorded.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::personal::Personal;

use crate::values::{
    AuthorizationId, CarrierCode, ConsentId, DataCategory, DpaId, PartnerId, Purpose, ShipmentId,
    TrackingNumber,
};

/// The stream type of access decisions; each decision is its own stream of one event.
pub const ACCESS_STREAM: &str = "access";

/// Why a decision denied, in the order SPEC §3 and §16 try the rules (their order here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    UnknownShipment,
    PartnerSuspended,
    /// A carrier authorization would cover the request, but no DPA it rests on is in force
    /// (SPEC §16); also a relayed read to a recipient neither on the intermediary's DPA nor
    /// holding a grant of its own.
    DpaMissing,
    /// The shipper objected to the authorization that would cover the request (Art. 21).
    ShipperObjected,
    AuthorizationRevoked,
    AuthorizationExpired,
    NoConsent,
    PurposeNotCovered,
    CategoryNotCovered,
    ConsentRevoked,
    ConsentExpired,
    ConsentNotYetValid,
}

impl DenyReason {
    /// The reason as the asking partner is told it (SPEC §2: existence does not leak). A
    /// partner with no consent covering a parcel cannot tell another tenant's parcel from no
    /// parcel at all: both are `no_consent` to it — true of each. The record keeps the true
    /// reason for the carrier's privacy officer, auditors and the gateway.
    pub fn as_seen_by_partner(self) -> DenyReason {
        match self {
            DenyReason::UnknownShipment => DenyReason::NoConsent,
            other => other,
        }
    }

    /// Whether a partner is told less than the record holds: the decision says nothing to it
    /// about the parcel, not even that it exists.
    pub fn hides_the_parcel(self) -> bool {
        matches!(self, DenyReason::UnknownShipment | DenyReason::NoConsent)
    }
}

/// How the ledger itself delivers what a decision allowed (SPEC §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Answered to the partner's `GET` (`/v1/shipments/{id}/tracking`, `/v1/tracking`).
    Pull,
    /// Sent to the partner's webhook endpoint.
    Webhook,
}

/// A recorded access decision.
///
/// The fields are declared in sorted order, so that serde_json's output of an access event is
/// its RFC 8785 canonical form as it is (the hot path stores it without re-sorting; debug
/// builds check it on every event, see `Payload::encode_presorted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccessEvent {
    TrackingAccessAllowed {
        /// The carrier authorizations in force that cover the request (SPEC §16); absent when
        /// none did, as in every decision recorded before them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        authorizations: Vec<AuthorizationId>,
        /// For a webhook delivery (SPEC §14): the SHA-256 (hex) of the exact message body sent
        /// on it, so that a partner proves what it received and no more.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_sha256: Option<String>,
        /// How the data reaches the partner when it is served by the ledger itself (SPEC
        /// §14): `pull` or `webhook`; absent for a decision the caller serves on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
        consents: Vec<ConsentId>,
        decided_at: DateTime<Utc>,
        decision_id: Uuid,
        /// The DPA the read relied on (SPEC §16): the authorization's, or for a consent the
        /// partner's agreement in the register when one is in force.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpa: Option<DpaId>,
        /// requested ∩ the union of the categories of `consents` and `authorizations` (data
        /// minimisation).
        granted: Vec<DataCategory>,
        on_behalf_of: Option<PartnerId>,
        partner: PartnerId,
        purpose: Purpose,
        requested: Vec<DataCategory>,
        shipment: ShipmentId,
    },
    TrackingAccessDenied {
        /// When the reason is an authorization's state or its DPA (dpa_missing,
        /// shipper_objected, authorization_revoked, authorization_expired): that authorization.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<AuthorizationId>,
        carrier: Option<CarrierCode>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
        /// When the reason is a consent's state (consent_revoked, consent_expired,
        /// consent_not_yet_valid): that consent, the most recently granted of those covering
        /// the request, so that the record links to it. Absent otherwise, and in events
        /// recorded before it was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consent: Option<ConsentId>,
        decided_at: DateTime<Utc>,
        decision_id: Uuid,
        on_behalf_of: Option<PartnerId>,
        partner: PartnerId,
        purpose: Purpose,
        reason: DenyReason,
        requested: Vec<DataCategory>,
        /// The shipment, or the id asked for when it is unknown; `None` when an unknown
        /// shipment was asked for by carrier and tracking number, which are kept instead.
        shipment: Option<ShipmentId>,
        tracking_number: Option<Personal<TrackingNumber>>,
    },
    /// The webhook delivery an allowed decision queued was not sent: checked again right
    /// before sending, a revocation, suspension or expiry it rested on had committed (SPEC
    /// §14). Recorded on the decision's stream, once.
    TrackingDeliveryCancelled {
        cancelled_at: DateTime<Utc>,
        decision_id: Uuid,
        partner: PartnerId,
        reason: DenyReason,
        shipment: ShipmentId,
    },
}

impl AccessEvent {
    /// The stream version of a delivery's cancellation: the decision is version 1.
    pub const CANCELLATION_VERSION: u64 = 2;
}

impl DomainEvent for AccessEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TrackingAccessAllowed { .. } => "TrackingAccessAllowed",
            Self::TrackingAccessDenied { .. } => "TrackingAccessDenied",
            Self::TrackingDeliveryCancelled { .. } => "TrackingDeliveryCancelled",
        }
        .into()
    }
    /// A denial may hold a tracking number, as a commitment (SPEC §12): version 2.
    fn event_version(&self) -> String {
        match self {
            Self::TrackingAccessAllowed { .. } | Self::TrackingDeliveryCancelled { .. } => "1",
            Self::TrackingAccessDenied { .. } => "2",
        }
        .into()
    }
}
