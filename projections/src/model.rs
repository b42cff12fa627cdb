//! The read model: what the API lists and looks up, derived from the log alone.

use std::collections::{BTreeMap, HashMap};

use crate::authorization::AuthorizationView;
use chrono::{DateTime, Utc};
use consent_ledger_domain::consent::ConsentEvent;
use consent_ledger_domain::dpa::DpaEvent;
use consent_ledger_domain::erasure::{ErasureEvent, ERASURE_STREAM};
use consent_ledger_domain::personal::Personal;
use consent_ledger_domain::principal::PrincipalEvent;
use consent_ledger_domain::request::{ConsentRequestEvent, RequestStatus};
use consent_ledger_domain::shipment::ShipmentEvent;
use consent_ledger_domain::subscription::SubscriptionEvent;
use consent_ledger_domain::values::{AuthorizationId, DpaId, SubscriptionId, WebhookEndpointId};
use consent_ledger_domain::values::{
    ConsentId, ConsentRequestId, PartnerId, PartnerStatus, PrincipalId, Role, ShipmentId, ShipperId,
};
use consent_ledger_domain::webhook::WebhookEndpointEvent;
use consent_ledger_domain::{Directory, PartnerFacts};
use consent_ledger_store::{decode_opened, OpenedField, Position, RawEvent, StoredEvent};

use crate::decider::{Decider, DenyReason, Grant};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod views;

pub use views::{
    ConsentStatus, ConsentView, DpaLink, DpaStatus, DpaView, PrincipalView, RequestView,
    Revocation, ShipmentView, SubscriptionIndex, SubscriptionStatus, SubscriptionView,
    WebhookEndpointView, WebhookStatus,
};

/// Everything the API reads, keyed for its look-ups. Consents and requests are kept in
/// id order, which for UUIDv7 is creation order, so lists page stably by id.
#[derive(Debug, Default)]
pub struct ReadModel {
    next: u64,
    pub principals: HashMap<PrincipalId, PrincipalView>,
    by_token: HashMap<String, PrincipalId>,
    /// Shipments, partners' status and consents, compact, for decisions (SPEC §3).
    pub access: Decider,
    pub consents: BTreeMap<ConsentId, ConsentView>,
    consent_by_request: HashMap<ConsentRequestId, ConsentId>,
    pub requests: BTreeMap<ConsentRequestId, RequestView>,
    /// Partners' webhook endpoints (SPEC §13), in id order.
    pub webhooks: BTreeMap<WebhookEndpointId, WebhookEndpointView>,
    /// Partners' tracking subscriptions (SPEC §14), in id order.
    pub subscriptions: BTreeMap<SubscriptionId, SubscriptionView>,
    /// The live ones, by the shipments they cover.
    pub subscribed: SubscriptionIndex,
    /// The carrier's register of data processing agreements (SPEC §16), in id order.
    pub dpas: BTreeMap<DpaId, DpaView>,
    /// Carrier authorizations of tracking intermediaries (SPEC §16), in id order.
    pub authorizations: BTreeMap<AuthorizationId, AuthorizationView>,
    /// Consents whose partner was told they are about to expire (`false`) or have expired
    /// (`true`): `ConsentExpiryNoticed` (SPEC §13).
    pub expiry_notices: BTreeMap<ConsentId, bool>,
    /// Erasures applied since this model was built or loaded: a node that sees it grow writes
    /// its snapshot again, so no file of its keeps what was erased (SPEC §12), whichever node
    /// recorded the erasure.
    pub erasures: u64,
}

/// What `apply` needs of an event, however it was read.
pub struct EventRef<'a> {
    pub position: Position,
    pub stream_type: &'a str,
    pub stream_id: &'a str,
    pub event_type: &'a str,
    pub actor: &'a str,
    /// The payload's JSON text, parsed straight into the typed event, and not at all for
    /// streams this model skips.
    pub payload: &'a str,
    /// The openings of its personal fields (SPEC §12).
    pub openings: &'a [OpenedField],
}

impl EventRef<'_> {
    fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        decode_opened(self.payload, self.openings)
    }
}

/// The JSON part of a snapshot: the views, and the credentials the views never show (each
/// principal's admitted token digest, if any, and where its current token was issued).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotViews {
    pub next: u64,
    pub principals: Vec<PrincipalView>,
    pub credentials: Vec<(PrincipalId, Option<String>, u64)>,
    pub consents: Vec<ConsentView>,
    pub requests: Vec<RequestView>,
    /// Absent in snapshots written before webhooks.
    #[serde(default)]
    pub webhooks: Vec<WebhookEndpointView>,
    /// Absent in snapshots written before subscriptions.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionView>,
    /// Absent in snapshots written before the DPA register.
    #[serde(default)]
    pub dpas: Vec<DpaView>,
    /// Absent in snapshots written before carrier authorizations.
    #[serde(default)]
    pub authorizations: Vec<AuthorizationView>,
    /// Absent in snapshots written before expiry notices.
    #[serde(default)]
    pub expiry_notices: Vec<(ConsentId, bool)>,
}

impl ReadModel {
    pub(crate) fn views(&self) -> SnapshotViews {
        SnapshotViews {
            next: self.next,
            principals: self.principals.values().cloned().collect(),
            credentials: self
                .principals
                .values()
                .map(|p| (p.id, p.token_sha256.clone(), p.credential_at))
                .collect(),
            consents: self.consents.values().cloned().collect(),
            requests: self.requests.values().cloned().collect(),
            webhooks: self.webhooks.values().cloned().collect(),
            expiry_notices: self.expiry_notices.iter().map(|(c, e)| (*c, *e)).collect(),
            subscriptions: self.subscriptions.values().cloned().collect(),
            dpas: self.dpas.values().cloned().collect(),
            authorizations: self.authorizations.values().cloned().collect(),
        }
    }

    /// A model from a snapshot's views and the shipment index read beside them.
    pub(crate) fn from_views(views: SnapshotViews, mut access: Decider) -> Self {
        let mut model = ReadModel {
            next: views.next,
            ..ReadModel::default()
        };
        let credentials: HashMap<PrincipalId, (Option<String>, u64)> = views
            .credentials
            .into_iter()
            .map(|(id, token, at)| (id, (token, at)))
            .collect();
        for mut p in views.principals {
            if let Some((token, at)) = credentials.get(&p.id) {
                p.token_sha256 = token.clone();
                p.credential_at = *at;
            }
            if let Some(token) = &p.token_sha256 {
                model.by_token.insert(token.clone(), p.id);
            }
            if p.partner.is_some() {
                access.set_partner_status(p.id.as_partner(), p.status);
            }
            model.principals.insert(p.id, p);
        }
        let mut consents = views.consents;
        // Re-index in grant order, as the log did.
        consents.sort_by_key(|c| c.position);
        for c in consents {
            access.add_grant(Grant {
                id: c.id,
                partner: c.partner_id,
                shipper: c.shipper_id,
                scope: &c.scope,
                purposes: &c.purposes,
                categories: &c.data_categories,
                valid_from: c.valid_from,
                valid_until: c.valid_until,
                granted_at: c.granted_at,
                position: c.position.get(),
            });
            if let Some(r) = &c.revocation {
                access.revoke(c.id, r.revoked_at);
            }
            if let Some(request) = c.request_id {
                model.consent_by_request.insert(request, c.id);
            }
            model.consents.insert(c.id, c);
        }
        for r in views.requests {
            model.requests.insert(r.id, r);
        }
        for w in views.webhooks {
            model.webhooks.insert(w.id, w);
        }
        model.expiry_notices = views.expiry_notices.into_iter().collect();
        model.dpas = views.dpas.into_iter().map(|d| (d.id, d)).collect();
        for view in views.subscriptions {
            model.subscribed.update(&view);
            model.subscriptions.insert(view.id, view);
        }
        model.access = access;
        model.index_dpas();
        crate::authorization::restore(
            &mut model.authorizations,
            &mut model.access,
            views.authorizations,
        );
        model
    }
}

/// What a model holds, in counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelSummary {
    pub log_size: u64,
    pub principals: usize,
    pub shipments: usize,
    pub consents: usize,
    pub revoked_consents: usize,
    pub requests: usize,
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("event at position {position} ({event_type}) cannot be applied: {detail}")]
pub struct ApplyError {
    pub position: Position,
    pub event_type: String,
    pub detail: String,
}

impl ReadModel {
    /// The position of the next event to apply: all before it are applied.
    pub fn next_position(&self) -> Position {
        Position::new(self.next)
    }

    /// Counts of what the model holds, to compare two models (a restarted service and a
    /// full replay).
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            log_size: self.next,
            principals: self.principals.len(),
            shipments: self.access.shipment_count(),
            consents: self.consents.len(),
            revoked_consents: self
                .consents
                .values()
                .filter(|c| c.revocation.is_some())
                .count(),
            requests: self.requests.len(),
        }
    }

    /// The principal whose current token has this digest, as far as this model knows: an
    /// admitted credential, or one a legacy registration recorded. Says nothing of its status.
    pub fn principal_by_token(&self, token_sha256: &str) -> Option<&PrincipalView> {
        self.by_token
            .get(token_sha256)
            .and_then(|id| self.principals.get(id))
    }

    /// Admits a credential read from the credentials table: `token_sha256` is `id`'s token
    /// issued at position `issued_at`. Admitted only if that is the issue this model last
    /// applied for `id` (an older one was rotated away; a newer one needs a catch-up first).
    pub fn admit_credential(
        &mut self,
        id: PrincipalId,
        token_sha256: &str,
        issued_at: u64,
    ) -> bool {
        let Some(p) = self.principals.get_mut(&id) else {
            return false;
        };
        if p.credential_at != issued_at {
            return false;
        }
        if let Some(old) = p.token_sha256.replace(token_sha256.to_owned()) {
            self.by_token.remove(&old);
        }
        self.by_token.insert(token_sha256.to_owned(), id);
        true
    }

    pub fn consent_for_request(&self, request: ConsentRequestId) -> Option<&ConsentView> {
        self.consent_by_request
            .get(&request)
            .and_then(|id| self.consents.get(id))
    }

    /// Applies the next event of the log. Events must come in position order.
    pub fn apply(&mut self, event: &StoredEvent) -> Result<(), ApplyError> {
        self.apply_ref(&EventRef {
            position: event.position,
            stream_type: &event.stream_type,
            stream_id: &event.stream_id,
            event_type: &event.event_type,
            actor: &event.actor,
            payload: event.payload.as_str(),
            openings: &event.openings,
        })
    }

    /// The stream whose events this model only counts (access decisions, the log's bulk):
    /// readers may leave their payloads out.
    pub const SKIPPED_STREAM: &'static str = consent_ledger_domain::access::ACCESS_STREAM;

    /// Counts every position before `position` as applied: the caller read them as events of
    /// [`ReadModel::SKIPPED_STREAM`], which change nothing here but the position.
    pub fn skip_to(&mut self, position: Position) {
        self.next = self.next.max(position.get());
    }

    /// Applies the next event of the log, read as text (replay and catch-up): the payload is
    /// parsed straight into the typed event, and not at all for streams this model skips.
    pub fn apply_raw(&mut self, event: &RawEvent) -> Result<(), ApplyError> {
        self.apply_ref(&EventRef {
            position: event.position,
            stream_type: &event.stream_type,
            stream_id: &event.stream_id,
            event_type: &event.event_type,
            actor: &event.actor,
            payload: &event.payload,
            openings: &event.openings,
        })
    }

    fn apply_ref(&mut self, event: &EventRef<'_>) -> Result<(), ApplyError> {
        debug_assert_eq!(
            event.position.get(),
            self.next,
            "events must be applied in log order"
        );
        let decode_err = |e: serde_json::Error| ApplyError {
            position: event.position,
            event_type: event.event_type.to_owned(),
            detail: e.to_string(),
        };
        match event.stream_type {
            "principal" => self.apply_principal(event, event.decode().map_err(decode_err)?),
            "shipment" => self.apply_shipment(event.decode().map_err(decode_err)?),
            "consent" => self.apply_consent(event, event.decode().map_err(decode_err)?),
            "consent_request" => self.apply_request(event, event.decode().map_err(decode_err)?),
            ERASURE_STREAM => self.apply_erasure(event.decode().map_err(decode_err)?),
            "webhook_endpoint" => self.apply_webhook(event, event.decode().map_err(decode_err)?),
            "subscription" => self.apply_subscription(event, event.decode().map_err(decode_err)?),
            "dpa" => self.apply_dpa(event, event.decode().map_err(decode_err)?),
            "authorization" => crate::authorization::apply(
                &mut self.authorizations,
                &mut self.access,
                event.position,
                event.stream_id,
                event.decode().map_err(decode_err)?,
            ),
            // Streams this model does not show (e.g. access decisions) only advance it.
            _ => {}
        }
        self.next = event.position.get() + 1;
        Ok(())
    }

    fn apply_principal(&mut self, stored: &EventRef<'_>, event: PrincipalEvent) {
        match event {
            PrincipalEvent::PrincipalRegistered {
                id,
                role,
                name,
                partner,
                token_sha256,
                registered_at,
            } => {
                // Logs older than the credentials table recorded the first token's digest here.
                if let Some(token) = &token_sha256 {
                    self.by_token.insert(token.clone(), id);
                }
                if partner.is_some() {
                    self.access.add_partner(id.as_partner());
                }
                self.principals.insert(
                    id,
                    PrincipalView {
                        id,
                        role,
                        name,
                        partner,
                        status: PartnerStatus::Active,
                        registered_at,
                        dpa: None,
                        credential_at: stored.position.get(),
                        token_sha256,
                    },
                );
            }
            PrincipalEvent::PrincipalSuspended { .. } | PrincipalEvent::PartnerSuspended { .. } => {
                self.set_status(stored, PartnerStatus::Suspended)
            }
            PrincipalEvent::PrincipalReactivated { .. }
            | PrincipalEvent::PartnerReactivated { .. } => {
                self.set_status(stored, PartnerStatus::Active)
            }
            PrincipalEvent::PrincipalTokenRotated { .. } => {
                // The old token is refused from here on; the new one is admitted from the
                // credentials table when first presented.
                if let Some(p) = self.principal_of_stream(stored) {
                    p.credential_at = stored.position.get();
                    if let Some(old) = p.token_sha256.take() {
                        self.by_token.remove(&old);
                    }
                }
            }
        }
    }

    fn principal_of_stream(&mut self, stored: &EventRef<'_>) -> Option<&mut PrincipalView> {
        PrincipalId::parse(stored.stream_id)
            .ok()
            .and_then(|id| self.principals.get_mut(&id))
    }

    fn set_status(&mut self, stored: &EventRef<'_>, status: PartnerStatus) {
        if let Some(p) = self.principal_of_stream(stored) {
            p.status = status;
            if p.partner.is_some() {
                let partner = p.id.as_partner();
                self.access.set_partner_status(partner, status);
            }
        }
    }

    fn apply_shipment(&mut self, event: ShipmentEvent) {
        let ShipmentEvent::ShipmentRegistered {
            id,
            shipper,
            carrier,
            tracking_number,
            destination_country,
            ..
        } = event;
        self.access.add_shipment(
            id,
            shipper,
            &carrier,
            tracking_number.known(),
            destination_country,
        );
    }

    fn apply_subscription(&mut self, stored: &EventRef<'_>, event: SubscriptionEvent) {
        match event {
            SubscriptionEvent::SubscriptionCreated {
                id,
                partner,
                purpose,
                data_categories,
                scope,
                created_at,
            } => {
                self.subscriptions.insert(
                    id,
                    SubscriptionView {
                        id,
                        partner_id: partner,
                        purpose,
                        data_categories,
                        scope,
                        status: SubscriptionStatus::Active,
                        created_at,
                        deleted_at: None,
                        ended_shipment_ids: Vec::new(),
                        position: stored.position,
                    },
                );
            }
            SubscriptionEvent::SubscriptionDeleted { deleted_at } => {
                if let Some(view) = self.subscription_mut(stored) {
                    view.status = SubscriptionStatus::Deleted;
                    view.deleted_at = Some(deleted_at);
                }
            }
            SubscriptionEvent::SubscriptionShipmentEnded { shipment_id, .. } => {
                if let Some(view) = self.subscription_mut(stored) {
                    view.ended_shipment_ids.push(shipment_id);
                    if view.live_shipments().is_some_and(|l| l.is_empty())
                        && view.status == SubscriptionStatus::Active
                    {
                        view.status = SubscriptionStatus::Ended;
                    }
                }
            }
        }
        if let Some(view) = SubscriptionId::parse(stored.stream_id)
            .ok()
            .and_then(|id| self.subscriptions.get(&id))
        {
            self.subscribed.update(view);
        }
    }

    fn apply_dpa(&mut self, stored: &EventRef<'_>, event: DpaEvent) {
        match event {
            DpaEvent::DpaRegistered {
                id,
                terms,
                registered_at,
            } => {
                self.dpas.insert(
                    id,
                    DpaView {
                        id,
                        partner_id: terms.partner,
                        reference: terms.reference,
                        role: terms.role,
                        signed_at: terms.signed_at,
                        valid_until: terms.valid_until,
                        sub_processors: terms.sub_processors,
                        transfer_mechanism: terms.transfer_mechanism,
                        document_sha256: terms.document_sha256,
                        status: DpaStatus::Active,
                        registered_at,
                        terminated_at: None,
                        termination_reason: None,
                        position: stored.position,
                    },
                );
                if let Some(view) = self.dpas.get(&id) {
                    self.access.set_dpa(id, view.window());
                }
                self.link_partner_dpa(terms.partner);
            }
            DpaEvent::DpaTerminated {
                reason,
                terminated_at,
            } => {
                if let Some(view) = DpaId::parse(stored.stream_id)
                    .ok()
                    .and_then(|id| self.dpas.get_mut(&id))
                {
                    view.status = DpaStatus::Terminated;
                    view.terminated_at = Some(terminated_at);
                    view.termination_reason = reason;
                    self.access.set_dpa(view.id, view.window());
                }
            }
        }
    }

    /// The partner's DPA its `dpa_ref` names: the register's entry of that partner with that
    /// reference, the latest registered if several.
    pub fn dpa_of(&self, partner: PartnerId) -> Option<&DpaView> {
        let reference = self
            .principals
            .get(&PrincipalId::from(partner))?
            .partner
            .as_ref()?
            .dpa_ref
            .clone();
        self.dpas
            .values()
            .rev()
            .find(|d| d.partner_id == partner && d.reference == reference)
    }

    /// Tells the decider every DPA's life and which one each partner's `dpa_ref` names.
    fn index_dpas(&mut self) {
        let windows: Vec<_> = self.dpas.values().map(|d| (d.id, d.window())).collect();
        for (id, window) in windows {
            self.access.set_dpa(id, window);
        }
        let partners: Vec<PartnerId> = self.dpas.values().map(|d| d.partner_id).collect();
        for partner in partners {
            self.link_partner_dpa(partner);
        }
    }

    fn link_partner_dpa(&mut self, partner: PartnerId) {
        let dpa = self.dpa_of(partner).map(|d| d.id);
        self.access.set_partner_dpa(partner, dpa);
    }

    /// Why authorization `id` no longer allows reading `shipment` at `now`
    /// ([`AuthorizationView::why_not`]; one no longer known reads as revoked).
    pub fn why_not_authorized(
        &self,
        id: AuthorizationId,
        shipment: ShipmentId,
        now: DateTime<Utc>,
    ) -> DenyReason {
        self.authorizations
            .get(&id)
            .map_or(DenyReason::AuthorizationRevoked, |view| {
                view.why_not(&self.access, shipment, now)
            })
    }

    /// `view` with the link of its `dpa_ref` to the register, as of `now`.
    pub fn with_dpa_link(&self, mut view: PrincipalView, now: DateTime<Utc>) -> PrincipalView {
        if view.role == Role::Partner {
            view.dpa = self.dpa_of(view.id.as_partner()).map(|d| DpaLink {
                id: d.id,
                href: format!("/v1/dpas/{}", d.id),
                in_force: d.in_force(now),
            });
        }
        view
    }

    fn subscription_mut(&mut self, stored: &EventRef<'_>) -> Option<&mut SubscriptionView> {
        SubscriptionId::parse(stored.stream_id)
            .ok()
            .and_then(|id| self.subscriptions.get_mut(&id))
    }

    fn apply_webhook(&mut self, stored: &EventRef<'_>, event: WebhookEndpointEvent) {
        if let Some(view) = WebhookEndpointView::registered(&event, stored.position) {
            self.webhooks.insert(view.id, view);
            return;
        }
        if let Some(view) = WebhookEndpointId::parse(stored.stream_id)
            .ok()
            .and_then(|id| self.webhooks.get_mut(&id))
        {
            view.apply(event, stored.position);
        }
    }

    /// An erasure (SPEC §12): decisions by the erased tracking numbers answer
    /// `unknown_shipment` from now on, and the free texts of the consents and requests it
    /// names read as erased (so no snapshot written after it holds them).
    fn apply_erasure(&mut self, event: ErasureEvent) {
        let ErasureEvent::PersonalDataErased {
            shipments,
            consents,
            requests,
            ..
        } = event;
        self.erasures += 1;
        for id in shipments {
            self.access.forget_tracking(id);
        }
        for id in consents {
            if let Some(revocation) = self
                .consents
                .get_mut(&id)
                .and_then(|c| c.revocation.as_mut())
            {
                revocation.reason = Personal::Erased;
            }
        }
        for id in requests {
            if let Some(view) = self.requests.get_mut(&id) {
                view.justification = Personal::Erased;
                if view.reason.is_some() {
                    view.reason = Some(Personal::Erased);
                }
            }
        }
    }

    fn apply_consent(&mut self, stored: &EventRef<'_>, event: ConsentEvent) {
        match event {
            ConsentEvent::ConsentGranted {
                id,
                shipper,
                partner,
                scope,
                purposes,
                data_categories,
                legal_basis,
                dpa_ref,
                valid_from,
                valid_until,
                origin_request,
                granted_at,
            } => {
                if let Some(request) = origin_request {
                    self.consent_by_request.insert(request, id);
                }
                self.access.add_grant(Grant {
                    id,
                    partner,
                    shipper,
                    scope: &scope,
                    purposes: &purposes,
                    categories: &data_categories,
                    valid_from,
                    valid_until,
                    granted_at,
                    position: stored.position.get(),
                });
                self.consents.insert(
                    id,
                    ConsentView {
                        id,
                        shipper_id: shipper,
                        partner_id: partner,
                        scope,
                        purposes,
                        data_categories,
                        legal_basis,
                        dpa_ref,
                        valid_from,
                        valid_until,
                        request_id: origin_request,
                        granted_at,
                        granted_by: stored.actor.to_owned(),
                        position: stored.position,
                        revocation: None,
                    },
                );
            }
            ConsentEvent::ConsentRevoked {
                revoked_by,
                reason,
                revoked_at,
            } => {
                if let Some(c) = ConsentId::parse(stored.stream_id)
                    .ok()
                    .and_then(|id| self.consents.get_mut(&id))
                {
                    self.access.revoke(c.id, revoked_at);
                    c.revocation = Some(Revocation {
                        revoked_at,
                        revoked_by,
                        reason,
                        position: stored.position,
                    });
                }
            }
            ConsentEvent::ConsentExpiryNoticed { expired, .. } => {
                if let Ok(id) = ConsentId::parse(stored.stream_id) {
                    let told = self.expiry_notices.entry(id).or_default();
                    *told |= expired;
                }
            }
        }
    }

    fn apply_request(&mut self, stored: &EventRef<'_>, event: ConsentRequestEvent) {
        if let ConsentRequestEvent::ConsentRequestSubmitted {
            id,
            partner,
            shipper,
            scope,
            purposes,
            data_categories,
            legal_basis,
            dpa_ref,
            valid_from,
            valid_until,
            justification,
            submitted_at,
            expires_at,
        } = event
        {
            self.requests.insert(
                id,
                RequestView {
                    id,
                    partner_id: partner,
                    shipper_id: shipper,
                    scope,
                    purposes,
                    data_categories,
                    legal_basis,
                    dpa_ref,
                    valid_from,
                    valid_until,
                    justification,
                    submitted_at,
                    expires_at,
                    status: RequestStatus::Pending,
                    consent_id: None,
                    decided_at: None,
                    reason: None,
                    position: stored.position,
                },
            );
            return;
        }
        let Some(view) = ConsentRequestId::parse(stored.stream_id)
            .ok()
            .and_then(|id| self.requests.get_mut(&id))
        else {
            return;
        };
        view.position = stored.position;
        match event {
            ConsentRequestEvent::ConsentRequestSubmitted { .. } => {}
            ConsentRequestEvent::ConsentRequestApproved {
                consent_id,
                approved_at,
                ..
            } => {
                view.status = RequestStatus::Approved;
                view.consent_id = Some(consent_id);
                view.decided_at = Some(approved_at);
            }
            ConsentRequestEvent::ConsentRequestDenied { reason, denied_at } => {
                view.status = RequestStatus::Denied;
                view.reason = Some(reason);
                view.decided_at = Some(denied_at);
            }
            ConsentRequestEvent::ConsentRequestWithdrawn { withdrawn_at } => {
                view.status = RequestStatus::Withdrawn;
                view.decided_at = Some(withdrawn_at);
            }
            ConsentRequestEvent::ConsentRequestExpired { expired_at } => {
                view.status = RequestStatus::Expired;
                view.decided_at = Some(expired_at);
            }
        }
    }
}

impl ReadModel {
    pub fn partner_facts(&self, id: PartnerId) -> Option<PartnerFacts> {
        let p = self.principals.get(&PrincipalId::from(id))?;
        let profile = p.partner.as_ref()?;
        Some(PartnerFacts {
            status: p.status,
            dpa_ref: profile.dpa_ref.clone(),
        })
    }
}

/// The read model answers the domain's questions about other aggregates.
impl Directory for ReadModel {
    fn partner(&self, id: PartnerId) -> Option<PartnerFacts> {
        self.partner_facts(id)
    }
    fn shipment_owner(&self, id: ShipmentId) -> Option<ShipperId> {
        self.access.shipment_owner(id)
    }
    fn is_shipper(&self, id: ShipperId) -> bool {
        self.principals
            .get(&PrincipalId::from(id))
            .is_some_and(|p| p.role == Role::Shipper)
    }
}
