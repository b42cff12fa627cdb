//! Carrier authorizations as the API shows them (SPEC §16), and how their events reach the
//! read model and the decider's index.

use chrono::{DateTime, Utc};
use consent_ledger_domain::access::DenyReason;
use consent_ledger_domain::authorization::{
    AuthorizationEvent, AuthorizationScope, AuthorizationTerms,
};
use consent_ledger_domain::personal::Personal;
use consent_ledger_domain::values::{
    AuthorizationId, DataCategory, DpaId, LegalBasis, NonEmptySet, PartnerId, Purpose, Reason,
    ShipmentId, ShipperId,
};
use consent_ledger_store::Position;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::collections::BTreeMap;

use crate::decider::{AuthorizationGrant, Decider};

/// Where an authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationStatus {
    Active,
    Revoked,
    Expired,
    NotYetValid,
}

impl std::str::FromStr for AuthorizationStatus {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| "one of active, revoked, expired, not_yet_valid")
    }
}

/// A shipper's objection to an authorization (GDPR Art. 21).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ObjectionView {
    #[schema(value_type = String, format = Uuid)]
    pub shipper_id: ShipperId,
    /// The shipper's own words (personal, SPEC §12).
    #[schema(value_type = String)]
    pub reason: Personal<Reason>,
    pub objected_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<DateTime<Utc>>,
}

/// A carrier authorization of a tracking intermediary (SPEC §16).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorizationView {
    #[schema(value_type = String, format = Uuid)]
    pub id: AuthorizationId,
    #[schema(value_type = String, format = Uuid)]
    pub partner_id: PartnerId,
    #[schema(value_type = String, format = Uuid)]
    pub dpa_id: DpaId,
    pub scope: AuthorizationScope,
    #[schema(value_type = Vec<Purpose>)]
    pub purposes: NonEmptySet<Purpose>,
    #[schema(value_type = Vec<DataCategory>)]
    pub data_categories: NonEmptySet<DataCategory>,
    pub legal_basis: LegalBasis,
    pub valid_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Filled in when read, as of then; never kept.
    #[serde(default = "active")]
    pub status: AuthorizationStatus,
    pub granted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub revocation_reason: Option<Reason>,
    /// Every objection, or for a shipper only its own.
    #[serde(default)]
    pub objections: Vec<ObjectionView>,
    pub position: Position,
}

fn active() -> AuthorizationStatus {
    AuthorizationStatus::Active
}

impl AuthorizationView {
    pub fn status_at(&self, now: DateTime<Utc>) -> AuthorizationStatus {
        if self.revoked_at.is_some() {
            AuthorizationStatus::Revoked
        } else if self.valid_until.is_some_and(|u| now >= u) {
            AuthorizationStatus::Expired
        } else if now < self.valid_from {
            AuthorizationStatus::NotYetValid
        } else {
            AuthorizationStatus::Active
        }
    }

    /// Whether its class of shipments can hold a shipment of `shipper` (it names none, or it).
    pub fn concerns(&self, shipper: ShipperId) -> bool {
        self.scope
            .shipper_ids
            .as_ref()
            .is_none_or(|s| s.as_slice().contains(&shipper))
    }

    /// Whether `shipper` objects now.
    pub fn objected_by(&self, shipper: ShipperId) -> bool {
        self.objections
            .iter()
            .any(|o| o.shipper_id == shipper && o.withdrawn_at.is_none())
    }

    /// What was authorized.
    pub fn terms(&self) -> AuthorizationTerms {
        AuthorizationTerms {
            partner: self.partner_id,
            dpa: self.dpa_id,
            scope: self.scope.clone(),
            purposes: self.purposes.clone(),
            data_categories: self.data_categories.clone(),
            legal_basis: self.legal_basis,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        }
    }

    fn grant(&self) -> AuthorizationGrant<'_> {
        AuthorizationGrant {
            id: self.id,
            partner: self.partner_id,
            dpa: self.dpa_id,
            scope: &self.scope,
            purposes: &self.purposes,
            categories: &self.data_categories,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            granted_at: self.granted_at,
        }
    }
}

/// Applies an authorization's event to the views and the decider's index.
pub(crate) fn apply(
    views: &mut BTreeMap<AuthorizationId, AuthorizationView>,
    access: &mut Decider,
    position: Position,
    stream_id: &str,
    event: AuthorizationEvent,
) {
    if let AuthorizationEvent::AuthorizationGranted {
        id,
        terms,
        granted_at,
    } = event
    {
        let view = AuthorizationView {
            id,
            partner_id: terms.partner,
            dpa_id: terms.dpa,
            scope: terms.scope,
            purposes: terms.purposes,
            data_categories: terms.data_categories,
            legal_basis: terms.legal_basis,
            valid_from: terms.valid_from,
            valid_until: terms.valid_until,
            status: AuthorizationStatus::Active,
            granted_at,
            revoked_at: None,
            revocation_reason: None,
            objections: Vec::new(),
            position,
        };
        access.add_authorization(view.grant());
        views.insert(id, view);
        return;
    }
    let Some(view) = AuthorizationId::parse(stream_id)
        .ok()
        .and_then(|id| views.get_mut(&id))
    else {
        return;
    };
    match event {
        AuthorizationEvent::AuthorizationGranted { .. } => {}
        AuthorizationEvent::AuthorizationRevoked { reason, revoked_at } => {
            access.revoke_authorization(view.id, revoked_at);
            view.revoked_at = Some(revoked_at);
            view.revocation_reason = reason;
        }
        AuthorizationEvent::ShipperObjected {
            shipper,
            reason,
            objected_at,
        } => {
            access.object(view.id, shipper, objected_at);
            view.objections.push(ObjectionView {
                shipper_id: shipper,
                reason,
                objected_at,
                withdrawn_at: None,
            });
        }
        AuthorizationEvent::ObjectionWithdrawn {
            shipper,
            withdrawn_at,
        } => {
            access.withdraw_objection(view.id, shipper, withdrawn_at);
            if let Some(o) = view
                .objections
                .iter_mut()
                .find(|o| o.shipper_id == shipper && o.withdrawn_at.is_none())
            {
                o.withdrawn_at = Some(withdrawn_at);
            }
        }
    }
}

/// Indexes authorizations read from a snapshot's views, with their objections.
pub(crate) fn restore(
    views: &mut BTreeMap<AuthorizationId, AuthorizationView>,
    access: &mut Decider,
    mut kept: Vec<AuthorizationView>,
) {
    kept.sort_by_key(|v| v.position);
    for view in kept {
        access.add_authorization(view.grant());
        if let Some(at) = view.revoked_at {
            access.revoke_authorization(view.id, at);
        }
        for o in &view.objections {
            access.object(view.id, o.shipper_id, o.objected_at);
            if let Some(at) = o.withdrawn_at {
                access.withdraw_objection(view.id, o.shipper_id, at);
            }
        }
        views.insert(view.id, view);
    }
}

impl AuthorizationView {
    /// Why this authorization no longer allows reading `shipment` at `now`, in SPEC order:
    /// its DPA ended, the parcel's shipper objected, it was revoked, or else it expired.
    pub fn why_not(
        &self,
        access: &Decider,
        shipment: ShipmentId,
        now: DateTime<Utc>,
    ) -> DenyReason {
        if !access.dpa_in_force(self.dpa_id, now) {
            DenyReason::DpaMissing
        } else if access
            .shipment_owner(shipment)
            .is_some_and(|s| self.objected_by(s))
        {
            DenyReason::ShipperObjected
        } else if self.revoked_at.is_some() {
            DenyReason::AuthorizationRevoked
        } else {
            DenyReason::AuthorizationExpired
        }
    }
}
