//! What the API lists and shows of each kind of record: principals, shipments, consents and
//! their requests, webhook endpoints, subscriptions and the carrier's DPAs, as the read model
//! keeps them, each with what it can tell of itself.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use consent_ledger_domain::dpa::SubProcessor;
use consent_ledger_domain::personal::Personal;
use consent_ledger_domain::principal::PartnerProfile;
use consent_ledger_domain::request::RequestStatus;
use consent_ledger_domain::shipment::ShipmentEvent;
use consent_ledger_domain::subscription::SubscriptionScope;
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    CarrierCode, ConsentId, ConsentRequestId, CountryCode, DataCategory, DisplayName, DpaId,
    DpaRef, DpaRole, EndpointUrl, LegalBasis, NonEmptySet, PartnerId, PartnerStatus, PrincipalId,
    Purpose, Reason, RecipientRef, Role, ShipmentId, ShipperId, SubscriptionId, TrackingNumber,
    TransferMechanism, WebhookEndpointId,
};
use consent_ledger_domain::webhook::{DisabledBy, WebhookEndpointEvent, WebhookEventType};
use consent_ledger_store::{Position, StoredEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::decider::DpaWindow;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PrincipalView {
    pub id: PrincipalId,
    pub role: Role,
    pub name: DisplayName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner: Option<PartnerProfile>,
    /// A suspended principal's token is refused; a suspended partner is also denied every
    /// decision.
    pub status: PartnerStatus,
    pub registered_at: DateTime<Utc>,
    /// A partner's DPA in the register (SPEC §16), the entry its `dpa_ref` names: filled in
    /// when it is read ([`ReadModel::with_dpa_link`]), never kept.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub dpa: Option<DpaLink>,
    /// The position of the event that issued the principal's current token (its registration
    /// or latest rotation): a credential issued elsewhere is admitted only if it matches.
    #[serde(skip, default)]
    pub credential_at: u64,
    /// The digest of the current token, once admitted (see [`ReadModel::admit_credential`]),
    /// or as a registration recorded it in logs older than the credentials table.
    #[serde(skip, default)]
    pub token_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShipmentView {
    pub id: ShipmentId,
    pub shipper_id: ShipperId,
    pub carrier: CarrierCode,
    /// `{"erased":true}` once erased (SPEC §12).
    #[schema(schema_with = personal_tracking_number)]
    pub tracking_number: Personal<TrackingNumber>,
    pub destination_country: CountryCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = personal_recipient_ref)]
    pub recipient_ref: Option<Personal<RecipientRef>>,
    pub registered_at: DateTime<Utc>,
    pub position: Position,
}

impl ShipmentView {
    /// The view of a shipment from its registration event. Shipments are not kept in memory
    /// beyond what decisions need (SPEC §11: ≤ 200 bytes a shipment), so a read of one comes
    /// from its stream.
    pub fn from_registration(stored: &StoredEvent) -> Option<Self> {
        let ShipmentEvent::ShipmentRegistered {
            id,
            shipper,
            carrier,
            tracking_number,
            destination_country,
            recipient_ref,
            registered_at,
        } = stored.decode().ok()?;
        Some(Self {
            id,
            shipper_id: shipper,
            carrier,
            tracking_number,
            destination_country,
            recipient_ref,
            registered_at,
            position: stored.position,
        })
    }
}

/// Whether an endpoint receives messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    Enabled,
    Disabled,
}

/// Whether a subscription still delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Deleted,
    /// Every shipment it named has ended (SPEC §14: 14 days after its journey ended).
    Ended,
}

/// A partner's subscription to tracking updates (SPEC §14).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    pub id: SubscriptionId,
    pub partner_id: PartnerId,
    pub purpose: Purpose,
    pub data_categories: NonEmptySet<DataCategory>,
    pub scope: SubscriptionScope,
    pub status: SubscriptionStatus,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Shipments of it whose subscription has ended, nothing more of them is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub ended_shipment_ids: Vec<ShipmentId>,
    pub position: Position,
}

impl SubscriptionView {
    /// The shipments it still delivers (none once deleted); `None` for `consented`, which
    /// covers whatever the partner's consents cover.
    pub fn live_shipments(&self) -> Option<Vec<ShipmentId>> {
        match &self.scope {
            SubscriptionScope::Consented => None,
            SubscriptionScope::Shipments { shipment_ids } => Some(
                shipment_ids
                    .iter()
                    .filter(|s| {
                        self.status == SubscriptionStatus::Active
                            && !self.ended_shipment_ids.contains(s)
                    })
                    .copied()
                    .collect(),
            ),
        }
    }
}

/// Which live subscriptions cover a shipment's updates (SPEC §14): those naming it, and the
/// `consented` ones of the partners holding a consent whose scope covers it (decided per update
/// against the partner's consents, never expanded per shipment).
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    by_shipment: HashMap<ShipmentId, Vec<SubscriptionId>>,
    /// The live `consented` ones, by partner.
    consented: HashMap<PartnerId, BTreeSet<SubscriptionId>>,
}

impl SubscriptionIndex {
    /// The live subscriptions naming `shipment`, then the live `consented` ones of the
    /// partners in `consenting` (those with a consent covering it): O(those), however many
    /// partners subscribed to everything their consents cover.
    pub fn covering(
        &self,
        shipment: ShipmentId,
        mut consenting: Vec<PartnerId>,
    ) -> Vec<SubscriptionId> {
        consenting.sort_unstable();
        consenting.dedup();
        self.by_shipment
            .get(&shipment)
            .into_iter()
            .flatten()
            .copied()
            .chain(
                consenting
                    .iter()
                    .filter_map(|p| self.consented.get(p))
                    .flatten()
                    .copied(),
            )
            .collect()
    }

    /// Shipments with a live subscription naming them.
    pub fn shipments(&self) -> impl Iterator<Item = (&ShipmentId, &[SubscriptionId])> + '_ {
        self.by_shipment
            .iter()
            .map(|(s, subs)| (s, subs.as_slice()))
    }

    /// Indexes `view` as it now stands (after any of its events).
    pub(super) fn update(&mut self, view: &SubscriptionView) {
        match view.live_shipments() {
            None if view.status == SubscriptionStatus::Active => {
                self.consented
                    .entry(view.partner_id)
                    .or_default()
                    .insert(view.id);
            }
            None => {
                if let Some(subs) = self.consented.get_mut(&view.partner_id) {
                    subs.remove(&view.id);
                    if subs.is_empty() {
                        self.consented.remove(&view.partner_id);
                    }
                }
            }
            Some(live) => {
                let SubscriptionScope::Shipments { shipment_ids } = &view.scope else {
                    return;
                };
                for shipment in shipment_ids {
                    let subs = self.by_shipment.entry(*shipment).or_default();
                    subs.retain(|s| *s != view.id);
                    if live.contains(shipment) {
                        subs.push(view.id);
                    }
                    if subs.is_empty() {
                        self.by_shipment.remove(shipment);
                    }
                }
            }
        }
    }
}

/// Where a partner's `dpa_ref` leads in the register.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DpaLink {
    #[schema(value_type = String, format = Uuid)]
    pub id: DpaId,
    /// `/v1/dpas/{id}`.
    pub href: String,
    /// Whether it is in force now.
    pub in_force: bool,
}

/// Whether a DPA is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DpaStatus {
    Active,
    Terminated,
}

/// A data processing agreement of the carrier's register (SPEC §16).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DpaView {
    #[schema(value_type = String, format = Uuid)]
    pub id: DpaId,
    #[schema(value_type = String, format = Uuid)]
    pub partner_id: PartnerId,
    #[schema(value_type = String)]
    pub reference: DpaRef,
    pub role: DpaRole,
    pub signed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    pub sub_processors: Vec<SubProcessor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_mechanism: Option<TransferMechanism>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_sha256: Option<String>,
    /// `terminated` once an admin ended it; an agreement past its `valid_until` stays
    /// `active` here and is not in force ([`DpaView::in_force`]).
    pub status: DpaStatus,
    pub registered_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub termination_reason: Option<Reason>,
    pub position: Position,
}

impl DpaView {
    /// Its life, as the decider needs it.
    pub fn window(&self) -> DpaWindow {
        DpaWindow {
            signed_at: self.signed_at,
            valid_until: self.valid_until,
            terminated_at: self.terminated_at,
        }
    }

    /// Signed by `at`, not terminated and not past its end then.
    pub fn in_force(&self, at: DateTime<Utc>) -> bool {
        self.status == DpaStatus::Active
            && self.signed_at <= at
            && self.valid_until.is_none_or(|u| at < u)
    }
}

/// A partner's webhook endpoint as the API shows it (SPEC §13). The secret key is never here.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointView {
    pub id: WebhookEndpointId,
    pub partner_id: PartnerId,
    pub url: EndpointUrl,
    pub event_types: Vec<WebhookEventType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Reason>,
    pub status: WebhookStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_by: Option<DisabledBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<Reason>,
    /// `whpk_…`: verify `v1a` signatures with it.
    pub public_key: String,
    /// The key before the last rotation: it signs too until 24 h after `rotated_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<DateTime<Utc>>,
    pub registered_at: DateTime<Utc>,
    pub position: Position,
}

impl WebhookEndpointView {
    /// The view an endpoint's registration makes; `None` for its other events.
    pub fn registered(event: &WebhookEndpointEvent, position: Position) -> Option<Self> {
        let WebhookEndpointEvent::WebhookEndpointRegistered {
            id,
            partner,
            url,
            event_types,
            description,
            public_key,
            registered_at,
        } = event
        else {
            return None;
        };
        Some(Self {
            id: *id,
            partner_id: *partner,
            url: url.clone(),
            event_types: event_types.clone(),
            description: description.clone(),
            status: WebhookStatus::Enabled,
            disabled_by: None,
            disabled_reason: None,
            public_key: public_key.clone(),
            previous_public_key: None,
            rotated_at: None,
            registered_at: *registered_at,
            position,
        })
    }

    /// Applies a later event of the endpoint's stream, recorded at `position`.
    pub fn apply(&mut self, event: WebhookEndpointEvent, position: Position) {
        self.position = position;
        match event {
            WebhookEndpointEvent::WebhookEndpointRegistered { .. } => {}
            WebhookEndpointEvent::WebhookEndpointDisabled { by, reason, .. } => {
                self.status = WebhookStatus::Disabled;
                self.disabled_by = Some(by);
                self.disabled_reason = reason;
            }
            WebhookEndpointEvent::WebhookEndpointEnabled { .. } => {
                self.status = WebhookStatus::Enabled;
                self.disabled_by = None;
                self.disabled_reason = None;
            }
            WebhookEndpointEvent::WebhookKeyRotated {
                public_key,
                previous_public_key,
                rotated_at,
            } => {
                self.public_key = public_key;
                self.previous_public_key = Some(previous_public_key);
                self.rotated_at = Some(rotated_at);
            }
            WebhookEndpointEvent::WebhookTestSent { .. } => {}
        }
    }

    /// The endpoint as its stream stood after the event at `upto`: the answer a write gave,
    /// for its replay by `Idempotency-Key`.
    pub fn as_of(stream: &[StoredEvent], upto: Position) -> Option<Self> {
        let mut view: Option<Self> = None;
        for stored in stream.iter().take_while(|e| e.position <= upto) {
            let event: WebhookEndpointEvent = stored.decode().ok()?;
            match &mut view {
                None => view = Self::registered(&event, stored.position),
                Some(v) => v.apply(event, stored.position),
            }
        }
        view
    }
}

/// How a revocation happened.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Revocation {
    pub revoked_at: DateTime<Utc>,
    pub revoked_by: PrincipalId,
    #[schema(schema_with = personal_reason)]
    pub reason: Personal<Reason>,
    pub position: Position,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    pub id: ConsentId,
    pub shipper_id: ShipperId,
    pub partner_id: PartnerId,
    pub scope: ConsentScope,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub legal_basis: LegalBasis,
    pub dpa_ref: DpaRef,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    /// The consent request this grant answered, if any.
    pub request_id: Option<ConsentRequestId>,
    pub granted_at: DateTime<Utc>,
    pub granted_by: String,
    pub position: Position,
    pub revocation: Option<Revocation>,
}

/// Where a consent stands at a given time: revocation is an event, expiry and start are time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Active,
    Revoked,
    Expired,
    NotYetValid,
}

impl ConsentView {
    /// Where the consent stood for an event committed at `position` at time `at`: revoked only
    /// if the revocation committed before it (revocation is effective at commit, SPEC §5.2).
    pub fn status_as_of(&self, position: Position, at: DateTime<Utc>) -> ConsentStatus {
        if self
            .revocation
            .as_ref()
            .is_some_and(|r| r.position < position)
        {
            ConsentStatus::Revoked
        } else if self.valid_until.is_some_and(|until| at >= until) {
            ConsentStatus::Expired
        } else if at < self.valid_from {
            ConsentStatus::NotYetValid
        } else {
            ConsentStatus::Active
        }
    }

    pub fn status_at(&self, now: DateTime<Utc>) -> ConsentStatus {
        if self.revocation.is_some() {
            ConsentStatus::Revoked
        } else if self.valid_until.is_some_and(|until| now >= until) {
            ConsentStatus::Expired
        } else if now < self.valid_from {
            ConsentStatus::NotYetValid
        } else {
            ConsentStatus::Active
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub id: ConsentRequestId,
    pub partner_id: PartnerId,
    pub shipper_id: ShipperId,
    pub scope: ConsentScope,
    pub purposes: NonEmptySet<Purpose>,
    pub data_categories: NonEmptySet<DataCategory>,
    pub legal_basis: LegalBasis,
    pub dpa_ref: Option<DpaRef>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    #[schema(schema_with = personal_reason)]
    pub justification: Personal<Reason>,
    pub submitted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// As recorded; a pending request past `expires_at` reads as expired (see `status_at`).
    pub status: RequestStatus,
    pub consent_id: Option<ConsentId>,
    pub decided_at: Option<DateTime<Utc>>,
    #[schema(schema_with = personal_reason)]
    pub reason: Option<Personal<Reason>>,
    pub position: Position,
}

// The OpenAPI schemas of personal fields: the value, or `{"erased":true}`.
fn personal_tracking_number() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    <Personal<TrackingNumber> as utoipa::PartialSchema>::schema()
}
fn personal_recipient_ref() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    <Personal<RecipientRef> as utoipa::PartialSchema>::schema()
}
fn personal_reason() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    <Personal<Reason> as utoipa::PartialSchema>::schema()
}

impl RequestView {
    pub fn status_at(&self, now: DateTime<Utc>) -> RequestStatus {
        match self.status {
            RequestStatus::Pending if now >= self.expires_at => RequestStatus::Expired,
            other => other,
        }
    }
}
