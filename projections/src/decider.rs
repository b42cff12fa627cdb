//! The access decider (SPEC §3 "Access decision"): an in-memory index answering "may partner P
//! read shipment S for purpose U, categories C, now?" in microseconds, and "who may see S at
//! time T" without replaying anything.
//!
//! Compact on purpose (SPEC §11: ≤ 200 bytes per shipment at 10M shipments): a shipment is
//! 8 bytes of facts under its 16-byte id, plus a 16-byte fingerprint of (carrier, tracking
//! number) for look-ups by tracking number. Carriers and shippers are interned. Consents of
//! scope `shipments` are indexed per listed shipment; consents of scope `shipper` once per
//! shipper, never fanned out per shipment.

use std::collections::HashMap;
use std::hash::Hash;
use std::io::{self, Read, Write};

use chrono::{DateTime, Utc};
pub use consent_ledger_domain::access::DenyReason;
use consent_ledger_domain::authorization::AuthorizationScope;
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    AuthorizationId, CarrierCode, ConsentId, CountryCode, DataCategory, DpaId, NonEmptySet,
    PartnerId, PartnerStatus, Purpose, ShipmentId, ShipperId, TrackingNumber,
};

/// A set of data categories as a bit set (4 categories fit a byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Categories(u8);

impl Categories {
    pub fn of(categories: &[DataCategory]) -> Self {
        Self(categories.iter().fold(0, |bits, c| bits | category_bit(*c)))
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// The categories in the canonical order.
    pub fn to_vec(self) -> Vec<DataCategory> {
        DataCategory::ALL
            .iter()
            .copied()
            .filter(|c| self.0 & category_bit(*c) != 0)
            .collect()
    }
}

fn category_bit(c: DataCategory) -> u8 {
    1 << (c as u8)
}

fn purpose_bit(p: Purpose) -> u16 {
    1 << (p as u16)
}

/// What a decision is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipmentRef {
    Id(ShipmentId),
    Tracking(CarrierCode, TrackingNumber),
}

/// The outcome of one access check. An allow always names the shipment it allows: only a
/// parcel the decider knows can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every consent and carrier authorization in force that covers the request, requested ∩
    /// granted categories, and the DPA the read relies on.
    Allowed {
        shipment: ShipmentId,
        consents: Vec<ConsentId>,
        authorizations: Vec<AuthorizationId>,
        categories: Categories,
        /// The DPA of the first authorization in force, or else the partner's own agreement
        /// in the register, when it is in force.
        dpa: Option<DpaId>,
    },
    Denied {
        /// The shipment resolved, if it is known.
        shipment: Option<ShipmentId>,
        reason: DenyReason,
        /// For a denial on a consent's state (revoked, expired, not yet valid): that consent.
        consent: Option<ConsentId>,
        /// For a denial on an authorization's state or its DPA: that authorization.
        authorization: Option<AuthorizationId>,
    },
}

impl Verdict {
    /// The verdict without the shipment: allowed with what, or denied why.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Allowed {
                consents,
                categories,
                ..
            } => Outcome::Allowed {
                consents: consents.clone(),
                categories: *categories,
            },
            Self::Denied { reason, .. } => Outcome::Denied(*reason),
        }
    }

    /// The consent a denial on a consent's state names.
    pub fn consent(&self) -> Option<ConsentId> {
        match self {
            Self::Allowed { .. } => None,
            Self::Denied { consent, .. } => *consent,
        }
    }

    /// The authorization a denial on an authorization's state names.
    pub fn authorization(&self) -> Option<AuthorizationId> {
        match self {
            Self::Allowed { .. } => None,
            Self::Denied { authorization, .. } => *authorization,
        }
    }

    /// Denied for `reason`, on nothing a grant's state explains.
    pub fn denied(shipment: Option<ShipmentId>, reason: DenyReason) -> Self {
        Self::Denied {
            shipment,
            reason,
            consent: None,
            authorization: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every consent in force that covers the request, and requested ∩ granted categories.
    Allowed {
        consents: Vec<ConsentId>,
        categories: Categories,
    },
    Denied(DenyReason),
}

/// A consent as the decider needs it: scope, bit sets, and its life as time intervals.
#[derive(Debug, Clone)]
struct Rule {
    partner: PartnerId,
    shipper: u32,
    scope: RuleScope,
    purposes: u16,
    categories: Categories,
    valid_from: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
    granted_at: DateTime<Utc>,
    /// Log position of the grant: "most recently granted" compares these.
    granted_position: u64,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
enum RuleScope {
    Shipments,
    Shipper {
        carriers: Option<Box<[u32]>>,
        countries: Option<Box<[CountryCode]>>,
    },
}

/// A carrier authorization as the decider needs it (SPEC §16): its class of shipments (each
/// list `None` = any), bit sets, its DPA, and its life and its objections as time intervals.
#[derive(Debug, Clone)]
struct AuthRule {
    id: AuthorizationId,
    dpa: DpaId,
    carriers: Option<Box<[u32]>>,
    countries: Option<Box<[CountryCode]>>,
    shippers: Option<Box<[u32]>>,
    purposes: u16,
    categories: Categories,
    valid_from: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
    granted_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    objections: Vec<Objection>,
}

/// A shipper's objection to an authorization, from `from` until withdrawn.
#[derive(Debug, Clone, Copy)]
struct Objection {
    shipper: u32,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

impl AuthRule {
    fn covers(&self, facts: Facts) -> bool {
        self.carriers
            .as_ref()
            .is_none_or(|c| c.contains(&facts.carrier))
            && self
                .countries
                .as_ref()
                .is_none_or(|c| c.contains(&facts.country))
            && self
                .shippers
                .as_ref()
                .is_none_or(|s| s.contains(&facts.shipper))
    }

    /// `None` when in force for `shipper`'s shipment at `now` (its DPA aside), else why not. A
    /// revocation and an objection count whatever their timestamps say: effective at commit
    /// (SPEC §5.2). `Some(None)`: not yet valid, which no authorization reason names.
    fn state_now(&self, shipper: u32, now: DateTime<Utc>) -> Option<Option<DenyReason>> {
        if self
            .objections
            .iter()
            .any(|o| o.shipper == shipper && o.until.is_none())
        {
            Some(Some(DenyReason::ShipperObjected))
        } else if self.revoked_at.is_some() {
            Some(Some(DenyReason::AuthorizationRevoked))
        } else {
            self.state_at(shipper, now)
        }
    }

    /// As [`AuthRule::state_now`], by the recorded history at `t`.
    fn state_at(&self, shipper: u32, t: DateTime<Utc>) -> Option<Option<DenyReason>> {
        if self
            .objections
            .iter()
            .any(|o| o.shipper == shipper && o.from <= t && o.until.is_none_or(|u| t < u))
        {
            Some(Some(DenyReason::ShipperObjected))
        } else if self.revoked_at.is_some_and(|r| r <= t) {
            Some(Some(DenyReason::AuthorizationRevoked))
        } else if self.valid_until.is_some_and(|u| t >= u) {
            Some(Some(DenyReason::AuthorizationExpired))
        } else if t < self.valid_from {
            Some(None)
        } else {
            None
        }
    }
}

/// A DPA's life as the decider needs it (SPEC §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpaWindow {
    pub signed_at: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
}

impl DpaWindow {
    /// In force at `now`; a termination counts whatever its timestamp says (§5.2).
    fn in_force_now(&self, now: DateTime<Utc>) -> bool {
        self.terminated_at.is_none() && self.in_force_at(now)
    }

    fn in_force_at(&self, t: DateTime<Utc>) -> bool {
        self.signed_at <= t
            && self.valid_until.is_none_or(|u| t < u)
            && self.terminated_at.is_none_or(|e| t < e)
    }
}

/// What a new carrier authorization covers, as the decider stores it.
pub struct AuthorizationGrant<'a> {
    pub id: AuthorizationId,
    pub partner: PartnerId,
    pub dpa: DpaId,
    pub scope: &'a AuthorizationScope,
    pub purposes: &'a NonEmptySet<Purpose>,
    pub categories: &'a NonEmptySet<DataCategory>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub granted_at: DateTime<Utc>,
}

/// An authorized intermediary that could see a shipment at some time ("who may see").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorized {
    pub authorization: AuthorizationId,
    pub partner: PartnerId,
    pub dpa: DpaId,
}

/// The facts of a shipment a decision needs, and the key of its tracking number in the index
/// (all zeros once erased or never known): 28 bytes.
#[derive(Debug, Clone, Copy)]
struct Facts {
    shipper: u32,
    carrier: u32,
    country: CountryCode,
    tracking: [u8; 16],
}

/// A state of a consent at some time, for "who may see" answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Party {
    pub consent: ConsentId,
    pub partner: PartnerId,
}

#[derive(Default)]
pub struct Decider {
    shipments: HashMap<ShipmentId, Facts>,
    tracking: HashMap<u128, ShipmentId>,
    carriers: Interner<CarrierCode>,
    shippers: Interner<ShipperId>,
    partners: HashMap<PartnerId, PartnerStatus>,
    rules: HashMap<ConsentId, Rule>,
    by_shipment: HashMap<ShipmentId, Vec<ConsentId>>,
    /// Shipper-wide consents by shipper, then by partner: a decision walks only the asking
    /// partner's, so one shipper's many grants to others never slow it (cost isolation).
    by_shipper: HashMap<u32, HashMap<PartnerId, Vec<ConsentId>>>,
    /// Carrier authorizations by the partner they authorize: a decision walks only the asking
    /// partner's (SPEC §16: O(its grants)).
    authorizations: HashMap<PartnerId, Vec<AuthRule>>,
    authorized: HashMap<AuthorizationId, PartnerId>,
    dpas: HashMap<DpaId, DpaWindow>,
    /// The DPA a partner's `dpa_ref` names in the register, if any.
    partner_dpa: HashMap<PartnerId, DpaId>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("shipments", &self.shipments.len())
            .field("consents", &self.rules.len())
            .field("partners", &self.partners.len())
            .field("authorizations", &self.authorized.len())
            .finish()
    }
}

/// The first 128 bits of SHA-256(carrier ‖ 0x00 ‖ tracking number): stable across processes
/// and releases (so snapshots can keep it), and a false match between two of 10M tracking
/// numbers has odds of about 10^-25.
fn fingerprint(carrier: &CarrierCode, tracking: &str) -> u128 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(carrier.as_str().as_bytes());
    h.update([0u8]);
    h.update(tracking.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

/// Maps values to small dense numbers and back.
struct Interner<T> {
    ids: HashMap<T, u32>,
    values: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> Interner<T> {
    fn intern(&mut self, value: &T) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        // INVARIANT: fewer than 2^32 carriers and shippers, far beyond any carrier network.
        let id = self.values.len() as u32;
        self.values.push(value.clone());
        self.ids.insert(value.clone(), id);
        id
    }
    fn value(&self, id: u32) -> Option<&T> {
        self.values.get(id as usize)
    }
}

/// Which shipments a new grant covers, as the decider stores it.
pub struct Grant<'a> {
    pub id: ConsentId,
    pub partner: PartnerId,
    pub shipper: ShipperId,
    pub scope: &'a ConsentScope,
    pub purposes: &'a NonEmptySet<Purpose>,
    pub categories: &'a NonEmptySet<DataCategory>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub granted_at: DateTime<Utc>,
    pub position: u64,
}

impl Decider {
    /// Whether the partner is suspended (it may neither read nor be read for).
    pub fn is_suspended(&self, partner: PartnerId) -> bool {
        self.partners.get(&partner) == Some(&PartnerStatus::Suspended)
    }

    pub fn add_partner(&mut self, partner: PartnerId) {
        self.partners.insert(partner, PartnerStatus::Active);
    }

    pub fn set_partner_status(&mut self, partner: PartnerId, status: PartnerStatus) {
        self.partners.insert(partner, status);
    }

    pub fn partner_status(&self, partner: PartnerId) -> Option<PartnerStatus> {
        self.partners.get(&partner).copied()
    }

    /// Adds a shipment; `tracking` is `None` once its tracking number was erased (SPEC §12),
    /// and the shipment is then found by its id only.
    pub fn add_shipment(
        &mut self,
        id: ShipmentId,
        shipper: ShipperId,
        carrier: &CarrierCode,
        tracking: Option<&TrackingNumber>,
        country: CountryCode,
    ) {
        let key = tracking.map(|t| fingerprint(carrier, t.as_str()));
        let carrier = self.carriers.intern(carrier);
        let shipper = self.shippers.intern(&shipper);
        self.shipments.insert(
            id,
            Facts {
                shipper,
                carrier,
                country,
                tracking: key.unwrap_or(0).to_be_bytes(),
            },
        );
        if let Some(key) = key {
            self.tracking.insert(key, id);
        }
    }

    /// Drops a shipment's tracking number from the index: decisions by it answer
    /// `unknown_shipment` from now on (SPEC §12: erasure).
    pub fn forget_tracking(&mut self, id: ShipmentId) {
        if let Some(facts) = self.shipments.get_mut(&id) {
            let key = u128::from_be_bytes(facts.tracking);
            if self.tracking.get(&key) == Some(&id) {
                self.tracking.remove(&key);
            }
            facts.tracking = [0; 16];
        }
    }

    pub fn shipment_count(&self) -> usize {
        self.shipments.len()
    }

    /// The carrier of a shipment, if it is known.
    pub fn shipment_carrier(&self, id: ShipmentId) -> Option<&CarrierCode> {
        let facts = self.shipments.get(&id)?;
        self.carriers.value(facts.carrier)
    }

    /// The owner of a shipment, if it is known.
    pub fn shipment_owner(&self, id: ShipmentId) -> Option<ShipperId> {
        let facts = self.shipments.get(&id)?;
        self.shippers.value(facts.shipper).copied()
    }

    /// Resolves a shipment reference to a known shipment id.
    pub fn resolve(&self, shipment: &ShipmentRef) -> Option<ShipmentId> {
        match shipment {
            ShipmentRef::Id(id) => self.shipments.contains_key(id).then_some(*id),
            ShipmentRef::Tracking(carrier, tracking) => self
                .tracking
                .get(&fingerprint(carrier, tracking.as_str()))
                .copied(),
        }
    }

    /// Writes the shipment part of the index (the bulk: ids, facts, tracking fingerprints) in a
    /// compact binary form for a snapshot. Partners and consents are rebuilt from the read
    /// model's views, which the snapshot keeps as JSON.
    pub fn write_shipments(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&(self.carriers.values.len() as u32).to_le_bytes())?;
        for c in &self.carriers.values {
            let bytes = c.as_str().as_bytes();
            w.write_all(&[bytes.len() as u8])?;
            w.write_all(bytes)?;
        }
        w.write_all(&(self.shippers.values.len() as u32).to_le_bytes())?;
        for s in &self.shippers.values {
            w.write_all(s.as_uuid().as_bytes())?;
        }
        w.write_all(&(self.shipments.len() as u64).to_le_bytes())?;
        for (id, f) in &self.shipments {
            w.write_all(id.as_uuid().as_bytes())?;
            w.write_all(&f.shipper.to_le_bytes())?;
            w.write_all(&f.carrier.to_le_bytes())?;
            w.write_all(f.country.as_str().as_bytes())?;
        }
        w.write_all(&(self.tracking.len() as u64).to_le_bytes())?;
        for (key, id) in &self.tracking {
            w.write_all(&key.to_le_bytes())?;
            w.write_all(id.as_uuid().as_bytes())?;
        }
        Ok(())
    }

    /// Reads what [`Decider::write_shipments`] wrote, into an index with no consents yet.
    pub fn read_shipments(r: &mut impl Read) -> io::Result<Self> {
        fn bytes<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
            let mut b = [0u8; N];
            r.read_exact(&mut b)?;
            Ok(b)
        }
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let mut d = Decider::default();
        for _ in 0..u32::from_le_bytes(bytes(r)?) {
            let [len] = bytes::<1>(r)?;
            let mut code = vec![0u8; usize::from(len)];
            r.read_exact(&mut code)?;
            let code = String::from_utf8(code).map_err(|_| bad("carrier code"))?;
            d.carriers
                .intern(&CarrierCode::parse(code).map_err(|_| bad("carrier code"))?);
        }
        for _ in 0..u32::from_le_bytes(bytes(r)?) {
            d.shippers
                .intern(&ShipperId::from_uuid(uuid::Uuid::from_bytes(bytes(r)?)));
        }
        let n = u64::from_le_bytes(bytes(r)?);
        d.shipments
            .reserve(usize::try_from(n).map_err(|_| bad("count"))?);
        for _ in 0..n {
            let id = ShipmentId::from_uuid(uuid::Uuid::from_bytes(bytes(r)?));
            let shipper = u32::from_le_bytes(bytes(r)?);
            let carrier = u32::from_le_bytes(bytes(r)?);
            let country = bytes::<2>(r)?;
            let country = std::str::from_utf8(&country)
                .ok()
                .and_then(|c| CountryCode::parse(c).ok())
                .ok_or_else(|| bad("country"))?;
            d.shipments.insert(
                id,
                Facts {
                    shipper,
                    carrier,
                    country,
                    tracking: [0; 16],
                },
            );
        }
        let n = u64::from_le_bytes(bytes(r)?);
        d.tracking
            .reserve(usize::try_from(n).map_err(|_| bad("count"))?);
        for _ in 0..n {
            let key = u128::from_le_bytes(bytes(r)?);
            let id = ShipmentId::from_uuid(uuid::Uuid::from_bytes(bytes(r)?));
            if let Some(facts) = d.shipments.get_mut(&id) {
                facts.tracking = key.to_be_bytes();
            }
            d.tracking.insert(key, id);
        }
        Ok(d)
    }

    pub fn add_grant(&mut self, g: Grant<'_>) {
        let shipper = self.shippers.intern(&g.shipper);
        let scope = match g.scope {
            ConsentScope::Shipments { shipment_ids } => {
                for shipment in shipment_ids.iter() {
                    self.by_shipment.entry(*shipment).or_default().push(g.id);
                }
                RuleScope::Shipments
            }
            ConsentScope::Shipper {
                carriers,
                destination_countries,
            } => {
                self.by_shipper
                    .entry(shipper)
                    .or_default()
                    .entry(g.partner)
                    .or_default()
                    .push(g.id);
                RuleScope::Shipper {
                    carriers: carriers
                        .as_ref()
                        .map(|cs| cs.iter().map(|c| self.carriers.intern(c)).collect()),
                    countries: destination_countries
                        .as_ref()
                        .map(|cs| cs.iter().copied().collect()),
                }
            }
        };
        let rule = Rule {
            partner: g.partner,
            shipper,
            scope,
            purposes: g.purposes.iter().fold(0, |bits, p| bits | purpose_bit(*p)),
            categories: Categories::of(g.categories.as_slice()),
            valid_from: g.valid_from,
            valid_until: g.valid_until,
            granted_at: g.granted_at,
            granted_position: g.position,
            revoked_at: None,
        };
        self.rules.insert(g.id, rule);
    }

    pub fn revoke(&mut self, id: ConsentId, at: DateTime<Utc>) {
        if let Some(rule) = self.rules.get_mut(&id) {
            rule.revoked_at = Some(at);
        }
    }

    /// Indexes a carrier authorization under the partner it authorizes.
    pub fn add_authorization(&mut self, g: AuthorizationGrant<'_>) {
        let rule = AuthRule {
            id: g.id,
            dpa: g.dpa,
            carriers: g
                .scope
                .carriers
                .as_ref()
                .map(|cs| cs.iter().map(|c| self.carriers.intern(c)).collect()),
            countries: g
                .scope
                .destination_countries
                .as_ref()
                .map(|cs| cs.iter().copied().collect()),
            shippers: g
                .scope
                .shipper_ids
                .as_ref()
                .map(|ss| ss.iter().map(|s| self.shippers.intern(s)).collect()),
            purposes: g.purposes.iter().fold(0, |bits, p| bits | purpose_bit(*p)),
            categories: Categories::of(g.categories.as_slice()),
            valid_from: g.valid_from,
            valid_until: g.valid_until,
            granted_at: g.granted_at,
            revoked_at: None,
            objections: Vec::new(),
        };
        self.authorized.insert(g.id, g.partner);
        let rules = self.authorizations.entry(g.partner).or_default();
        rules.push(rule);
        rules.sort_by_key(|r| r.id);
    }

    fn authorization_mut(&mut self, id: AuthorizationId) -> Option<&mut AuthRule> {
        let partner = self.authorized.get(&id)?;
        self.authorizations
            .get_mut(partner)?
            .iter_mut()
            .find(|r| r.id == id)
    }

    pub fn revoke_authorization(&mut self, id: AuthorizationId, at: DateTime<Utc>) {
        if let Some(rule) = self.authorization_mut(id) {
            rule.revoked_at = Some(at);
        }
    }

    /// A shipper objects to an authorization: its shipments are excluded from `at` on.
    pub fn object(&mut self, id: AuthorizationId, shipper: ShipperId, at: DateTime<Utc>) {
        let shipper = self.shippers.intern(&shipper);
        if let Some(rule) = self.authorization_mut(id) {
            rule.objections.push(Objection {
                shipper,
                from: at,
                until: None,
            });
        }
    }

    pub fn withdraw_objection(
        &mut self,
        id: AuthorizationId,
        shipper: ShipperId,
        at: DateTime<Utc>,
    ) {
        let shipper = self.shippers.intern(&shipper);
        if let Some(o) = self.authorization_mut(id).and_then(|rule| {
            rule.objections
                .iter_mut()
                .find(|o| o.shipper == shipper && o.until.is_none())
        }) {
            o.until = Some(at);
        }
    }

    /// Sets a DPA's life (registered, terminated).
    pub fn set_dpa(&mut self, id: DpaId, window: DpaWindow) {
        self.dpas.insert(id, window);
    }

    /// Links a partner to the DPA its `dpa_ref` names in the register, or unlinks it.
    pub fn set_partner_dpa(&mut self, partner: PartnerId, dpa: Option<DpaId>) {
        match dpa {
            Some(dpa) => self.partner_dpa.insert(partner, dpa),
            None => self.partner_dpa.remove(&partner),
        };
    }

    /// Whether `dpa` is in force at `now`.
    pub fn dpa_in_force(&self, dpa: DpaId, now: DateTime<Utc>) -> bool {
        self.dpas.get(&dpa).is_some_and(|w| w.in_force_now(now))
    }

    /// The partner's own DPA in the register, when it is in force at `now`.
    pub fn partner_dpa(&self, partner: PartnerId, now: DateTime<Utc>) -> Option<DpaId> {
        if self.partner_dpa.is_empty() {
            return None;
        }
        self.partner_dpa
            .get(&partner)
            .copied()
            .filter(|d| self.dpa_in_force(*d, now))
    }

    /// The carrier authorizations of `partner` whose class of shipments holds the shipment.
    fn authorizations_covering(
        &self,
        partner: PartnerId,
        facts: Facts,
    ) -> impl Iterator<Item = &AuthRule> {
        // Most ledgers hold few or no authorizations: no hashing of the partner then.
        let rules = if self.authorizations.is_empty() {
            None
        } else {
            self.authorizations.get(&partner)
        };
        rules.into_iter().flatten().filter(move |r| r.covers(facts))
    }

    /// The shipper-wide consents of `shipper` to `partner`: O(their number), whatever the
    /// shipper granted to others.
    fn shipper_wide_to(
        &self,
        shipper: u32,
        partner: PartnerId,
    ) -> impl Iterator<Item = &ConsentId> {
        self.by_shipper
            .get(&shipper)
            .and_then(|by_partner| by_partner.get(&partner))
            .into_iter()
            .flatten()
    }

    /// The shipper-wide consents of `shipper` to every partner ("who may see").
    fn shipper_wide_to_all(&self, shipper: u32) -> impl Iterator<Item = &ConsentId> {
        self.by_shipper
            .get(&shipper)
            .into_iter()
            .flat_map(|by_partner| by_partner.values().flatten())
    }

    /// The partners holding a consent or a carrier authorization whose scope covers
    /// `shipment`, whatever its state (with repeats): O(those consents and the authorizations),
    /// whatever else was granted.
    pub fn partners_covering(&self, shipment: ShipmentId) -> Vec<PartnerId> {
        let Some(facts) = self.shipments.get(&shipment).copied() else {
            return Vec::new();
        };
        let consenting = self
            .covering(shipment, facts, self.shipper_wide_to_all(facts.shipper))
            .map(|(_, rule)| rule.partner);
        let authorized = self
            .authorizations
            .iter()
            .filter(|(_, rules)| rules.iter().any(|r| r.covers(facts)))
            .map(|(partner, _)| *partner);
        consenting.chain(authorized).collect()
    }

    /// Every consent whose scope covers the shipment, whatever its state, among the consents
    /// listing it and the `shipper_wide` ones given.
    fn covering<'a>(
        &'a self,
        shipment: ShipmentId,
        facts: Facts,
        shipper_wide: impl Iterator<Item = &'a ConsentId> + 'a,
    ) -> impl Iterator<Item = (ConsentId, &'a Rule)> + 'a {
        let listed = self.by_shipment.get(&shipment).into_iter().flatten();
        listed.chain(shipper_wide).filter_map(move |id| {
            let rule = self.rules.get(id)?;
            let in_scope = match &rule.scope {
                RuleScope::Shipments => true,
                RuleScope::Shipper {
                    carriers,
                    countries,
                } => {
                    rule.shipper == facts.shipper
                        && carriers.as_ref().is_none_or(|c| c.contains(&facts.carrier))
                        && countries
                            .as_ref()
                            .is_none_or(|c| c.contains(&facts.country))
                }
            };
            in_scope.then_some((*id, rule))
        })
    }

    /// SPEC §3: allowed when at least one consent of this partner is in force at `now`, covers
    /// the shipment and the purpose, and covers at least one requested category; otherwise the
    /// first reason that applies.
    pub fn decide(
        &self,
        partner: PartnerId,
        shipment: &ShipmentRef,
        purpose: Purpose,
        requested: Categories,
        now: DateTime<Utc>,
    ) -> Verdict {
        let Some(id) = self.resolve(shipment) else {
            return Verdict::denied(None, DenyReason::UnknownShipment);
        };
        let deny = |reason| Verdict::denied(Some(id), reason);
        if self.partners.get(&partner) == Some(&PartnerStatus::Suspended) {
            return deny(DenyReason::PartnerSuspended);
        }
        let Some(facts) = self.shipments.get(&id).copied() else {
            return deny(DenyReason::UnknownShipment);
        };
        let bit = purpose_bit(purpose);
        let (mut any, mut any_purpose, mut any_category) = (false, false, false);
        let mut in_force = Vec::new();
        let mut granted = Categories::default();
        let mut latest: Option<(ConsentId, &Rule)> = None;
        for (consent, rule) in self
            .covering(id, facts, self.shipper_wide_to(facts.shipper, partner))
            .filter(|(_, r)| r.partner == partner)
        {
            any = true;
            if rule.purposes & bit == 0 {
                continue;
            }
            any_purpose = true;
            let overlap = rule.categories.intersect(requested);
            if overlap.is_empty() {
                continue;
            }
            any_category = true;
            if state_now(rule, now).is_none() {
                in_force.push(consent);
                granted = granted.union(overlap);
            } else if latest.is_none_or(|(_, l)| rule.granted_position > l.granted_position) {
                latest = Some((consent, rule));
            }
        }
        // The asking partner's carrier authorizations (SPEC §16), in id order.
        let mut authorized = Vec::new();
        let mut dpa = None;
        let mut unauthorized: Option<(DenyReason, AuthorizationId)> = None;
        for rule in self.authorizations_covering(partner, facts) {
            any = true;
            if rule.purposes & bit == 0 {
                continue;
            }
            any_purpose = true;
            let overlap = rule.categories.intersect(requested);
            if overlap.is_empty() {
                continue;
            }
            any_category = true;
            let reason = match rule.state_now(facts.shipper, now) {
                // Not yet valid: it covers nothing yet, and no reason names that.
                Some(None) => continue,
                _ if !self.dpa_in_force(rule.dpa, now) => DenyReason::DpaMissing,
                Some(Some(reason)) => reason,
                None => {
                    authorized.push(rule.id);
                    dpa.get_or_insert(rule.dpa);
                    granted = granted.union(overlap);
                    continue;
                }
            };
            if unauthorized.is_none_or(|(first, _)| reason < first) {
                unauthorized = Some((reason, rule.id));
            }
        }
        if !in_force.is_empty() || !authorized.is_empty() {
            in_force.sort_unstable();
            return Verdict::Allowed {
                shipment: id,
                consents: in_force,
                authorizations: authorized,
                categories: granted,
                dpa: dpa.or_else(|| self.partner_dpa(partner, now)),
            };
        }
        if let Some((reason, authorization)) = unauthorized {
            return Verdict::Denied {
                shipment: Some(id),
                reason,
                consent: None,
                authorization: Some(authorization),
            };
        }
        match (any, any_purpose, any_category, latest) {
            (false, ..) => deny(DenyReason::NoConsent),
            (true, false, ..) => deny(DenyReason::PurposeNotCovered),
            (true, true, false, _) => deny(DenyReason::CategoryNotCovered),
            (.., Some((consent, rule))) => Verdict::Denied {
                shipment: Some(id),
                reason: state_now(rule, now).unwrap_or(DenyReason::ConsentRevoked),
                consent: Some(consent),
                authorization: None,
            },
            (.., None) => deny(DenyReason::NoConsent),
        }
    }

    /// The carrier authorizations under which an intermediary could see the shipment at `at`
    /// by their recorded history: granted by then, neither revoked nor objected to by its
    /// shipper then, valid then, and their DPA in force then.
    pub fn authorized_at(&self, shipment: ShipmentId, at: DateTime<Utc>) -> Vec<Authorized> {
        let Some(facts) = self.shipments.get(&shipment).copied() else {
            return Vec::new();
        };
        let mut found: Vec<Authorized> = self
            .authorizations
            .iter()
            .flat_map(|(partner, rules)| rules.iter().map(move |r| (*partner, r)))
            .filter(|(_, r)| {
                r.covers(facts)
                    && r.granted_at <= at
                    && r.state_at(facts.shipper, at).is_none()
                    && self.dpas.get(&r.dpa).is_some_and(|w| w.in_force_at(at))
            })
            .map(|(partner, r)| Authorized {
                authorization: r.id,
                partner,
                dpa: r.dpa,
            })
            .collect();
        found.sort_by_key(|a| a.authorization);
        found
    }

    /// Every consent that let a partner see the shipment at `at`: granted by then, not revoked
    /// by then, and valid then. Interval checks on the consent's history, no replay.
    pub fn parties_at(&self, shipment: ShipmentId, at: DateTime<Utc>) -> Vec<Party> {
        let Some(facts) = self.shipments.get(&shipment).copied() else {
            return Vec::new();
        };
        let mut parties: Vec<Party> = self
            .covering(shipment, facts, self.shipper_wide_to_all(facts.shipper))
            .filter(|(_, rule)| rule.granted_at <= at && state_at(rule, at).is_none())
            .map(|(consent, rule)| Party {
                consent,
                partner: rule.partner,
            })
            .collect();
        parties.sort_by_key(|p| p.consent);
        parties.dedup();
        parties
    }
}

/// `None` when the consent is in force now, else why not. A revocation counts whatever its
/// timestamp says: it is effective at commit (SPEC §5.2), even if clocks disagree.
fn state_now(rule: &Rule, now: DateTime<Utc>) -> Option<DenyReason> {
    if rule.revoked_at.is_some() {
        return Some(DenyReason::ConsentRevoked);
    }
    state_at(rule, now)
}

/// `None` when the consent was in force at `t` by its recorded history, else why not.
fn state_at(rule: &Rule, t: DateTime<Utc>) -> Option<DenyReason> {
    if rule.revoked_at.is_some_and(|r| r <= t) {
        Some(DenyReason::ConsentRevoked)
    } else if rule.valid_until.is_some_and(|u| t >= u) {
        Some(DenyReason::ConsentExpired)
    } else if t < rule.valid_from {
        Some(DenyReason::ConsentNotYetValid)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).single().unwrap()
    }
    fn id<T: std::str::FromStr>(n: u32) -> T
    where
        T::Err: std::fmt::Debug,
    {
        format!("0190d5f6-0000-7000-8000-{n:012}").parse().unwrap()
    }
    fn set<T: Ord + Clone>(v: &[T]) -> NonEmptySet<T> {
        NonEmptySet::new(v.to_vec()).unwrap()
    }
    fn cats(c: &[DataCategory]) -> Categories {
        Categories::of(c)
    }

    const SHIPPER: u32 = 1;
    const PARTNER: u32 = 2;
    const OTHER_PARTNER: u32 = 3;
    const DHL_DE: u32 = 10;
    const UPS_FR: u32 = 11;

    struct Fixture {
        d: Decider,
        next_position: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let mut d = Decider::default();
            d.add_partner(id(PARTNER));
            d.add_partner(id(OTHER_PARTNER));
            let dhl = CarrierCode::parse("DHL").unwrap();
            let ups = CarrierCode::parse("UPS").unwrap();
            d.add_shipment(
                id(DHL_DE),
                id(SHIPPER),
                &dhl,
                Some(&TrackingNumber::parse("JJD1").unwrap()),
                CountryCode::parse("DE").unwrap(),
            );
            d.add_shipment(
                id(UPS_FR),
                id(SHIPPER),
                &ups,
                Some(&TrackingNumber::parse("1Z9").unwrap()),
                CountryCode::parse("FR").unwrap(),
            );
            Self {
                d,
                next_position: 100,
            }
        }

        fn grant(
            &mut self,
            consent: u32,
            scope: ConsentScope,
            purposes: &[Purpose],
            categories: &[DataCategory],
            from: DateTime<Utc>,
            until: Option<DateTime<Utc>>,
        ) {
            self.next_position += 1;
            self.d.add_grant(Grant {
                id: id(consent),
                partner: id(PARTNER),
                shipper: id(SHIPPER),
                scope: &scope,
                purposes: &set(purposes),
                categories: &set(categories),
                valid_from: from,
                valid_until: until,
                granted_at: from.min(t0()),
                position: self.next_position,
            });
        }

        fn decide(
            &self,
            shipment: u32,
            purpose: Purpose,
            requested: &[DataCategory],
            now: DateTime<Utc>,
        ) -> Outcome {
            self.verdict(shipment, purpose, requested, now).outcome()
        }

        fn verdict(
            &self,
            shipment: u32,
            purpose: Purpose,
            requested: &[DataCategory],
            now: DateTime<Utc>,
        ) -> Verdict {
            self.d.decide(
                id(PARTNER),
                &ShipmentRef::Id(id(shipment)),
                purpose,
                cats(requested),
                now,
            )
        }
    }

    fn listed(shipment: u32) -> ConsentScope {
        ConsentScope::Shipments {
            shipment_ids: set(&[id(shipment)]),
        }
    }

    use DataCategory::{Location, ProofOfDelivery, StatusEvents};
    use Purpose::{FraudPrevention, InsuranceClaim};

    #[test]
    fn allows_with_data_minimisation() {
        let mut f = Fixture::new();
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents, ProofOfDelivery],
            t0(),
            None,
        );
        assert_eq!(
            f.decide(DHL_DE, InsuranceClaim, &[StatusEvents, Location], t0()),
            Outcome::Allowed {
                consents: vec![id(1)],
                categories: cats(&[StatusEvents])
            }
        );
    }

    #[test]
    fn lists_every_consent_in_force_and_the_union_of_their_categories() {
        let mut f = Fixture::new();
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            None,
        );
        f.grant(
            2,
            ConsentScope::Shipper {
                carriers: None,
                destination_countries: None,
            },
            &[InsuranceClaim],
            &[Location],
            t0(),
            None,
        );
        assert_eq!(
            f.decide(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents, Location, ProofOfDelivery],
                t0()
            ),
            Outcome::Allowed {
                consents: vec![id(1), id(2)],
                categories: cats(&[StatusEvents, Location])
            }
        );
    }

    #[test]
    fn deny_reasons_come_in_spec_order() {
        let mut f = Fixture::new();
        let unknown = f.d.decide(
            id(PARTNER),
            &ShipmentRef::Id(id(99)),
            InsuranceClaim,
            cats(&[StatusEvents]),
            t0(),
        );
        assert_eq!(
            unknown.outcome(),
            Outcome::Denied(DenyReason::UnknownShipment)
        );
        assert_eq!(
            f.decide(DHL_DE, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::NoConsent)
        );
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            None,
        );
        assert_eq!(
            f.decide(DHL_DE, FraudPrevention, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::PurposeNotCovered)
        );
        assert_eq!(
            f.decide(DHL_DE, InsuranceClaim, &[Location], t0()),
            Outcome::Denied(DenyReason::CategoryNotCovered)
        );
        f.d.set_partner_status(id(PARTNER), PartnerStatus::Suspended);
        assert_eq!(
            f.decide(DHL_DE, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::PartnerSuspended)
        );
        f.d.set_partner_status(id(PARTNER), PartnerStatus::Active);
        f.d.revoke(id(1), t0() + Duration::hours(1));
        // Effective at once, whatever the clock says; the denial names the revoked consent.
        let revoked = f.verdict(DHL_DE, InsuranceClaim, &[StatusEvents], t0());
        assert_eq!(
            revoked.outcome(),
            Outcome::Denied(DenyReason::ConsentRevoked)
        );
        assert_eq!(revoked.consent(), Some(id(1)));
    }

    #[test]
    fn only_a_denial_on_a_consent_state_names_a_consent() {
        let mut f = Fixture::new();
        assert_eq!(
            f.verdict(DHL_DE, InsuranceClaim, &[StatusEvents], t0())
                .consent(),
            None
        );
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            None,
        );
        for (purpose, categories) in [
            (FraudPrevention, &[StatusEvents][..]),
            (InsuranceClaim, &[Location][..]),
        ] {
            assert_eq!(f.verdict(DHL_DE, purpose, categories, t0()).consent(), None);
        }
        assert_eq!(
            f.verdict(DHL_DE, InsuranceClaim, &[StatusEvents], t0())
                .consent(),
            None,
            "an allowed decision lists its consents in the outcome"
        );
    }

    #[test]
    fn a_consent_of_another_partner_is_no_consent() {
        let mut f = Fixture::new();
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            None,
        );
        let other = f.d.decide(
            id(OTHER_PARTNER),
            &ShipmentRef::Id(id(DHL_DE)),
            InsuranceClaim,
            cats(&[StatusEvents]),
            t0(),
        );
        assert_eq!(other.outcome(), Outcome::Denied(DenyReason::NoConsent));
    }

    #[test]
    fn expiry_and_start_are_matters_of_time_and_the_latest_grant_speaks() {
        let mut f = Fixture::new();
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            Some(t0() + Duration::days(10)),
        );
        assert!(matches!(
            f.decide(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(9)
            ),
            Outcome::Allowed { .. }
        ));
        assert_eq!(
            f.decide(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(10)
            ),
            Outcome::Denied(DenyReason::ConsentExpired)
        );
        // A later grant that starts in the future: its state is the answer.
        f.grant(
            2,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0() + Duration::days(20),
            None,
        );
        assert_eq!(
            f.decide(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(11)
            ),
            Outcome::Denied(DenyReason::ConsentNotYetValid)
        );
        assert_eq!(
            f.verdict(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(11)
            )
            .consent(),
            Some(id(2)),
            "the most recently granted consent is the one named"
        );
        assert!(matches!(
            f.decide(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(20)
            ),
            Outcome::Allowed { .. }
        ));
    }

    #[test]
    fn the_partners_covering_a_parcel_are_those_whose_consent_scope_holds_it() {
        let mut f = Fixture::new();
        assert!(f.d.partners_covering(id(DHL_DE)).is_empty());
        let dhl_only = ConsentScope::Shipper {
            carriers: Some(set(&[CarrierCode::parse("DHL").unwrap()])),
            destination_countries: None,
        };
        f.grant(1, dhl_only, &[InsuranceClaim], &[StatusEvents], t0(), None);
        f.grant(
            2,
            listed(UPS_FR),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            None,
        );
        assert_eq!(f.d.partners_covering(id(DHL_DE)), vec![id(PARTNER)]);
        assert_eq!(f.d.partners_covering(id(UPS_FR)), vec![id(PARTNER)]);
        f.d.revoke(id(2), t0());
        assert_eq!(
            f.d.partners_covering(id(UPS_FR)),
            vec![id(PARTNER)],
            "whatever its state: the decision says why"
        );
        assert!(
            f.d.partners_covering(id(999)).is_empty(),
            "an unknown parcel"
        );
    }

    #[test]
    fn shipper_wide_scope_filters_by_carrier_and_country() {
        let mut f = Fixture::new();
        let dhl_only = ConsentScope::Shipper {
            carriers: Some(set(&[CarrierCode::parse("DHL").unwrap()])),
            destination_countries: None,
        };
        f.grant(1, dhl_only, &[InsuranceClaim], &[StatusEvents], t0(), None);
        assert!(matches!(
            f.decide(DHL_DE, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Allowed { .. }
        ));
        assert_eq!(
            f.decide(UPS_FR, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::NoConsent)
        );
        let fr_only = ConsentScope::Shipper {
            carriers: None,
            destination_countries: Some(set(&[CountryCode::parse("FR").unwrap()])),
        };
        f.grant(2, fr_only, &[InsuranceClaim], &[StatusEvents], t0(), None);
        assert_eq!(
            f.decide(UPS_FR, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Allowed {
                consents: vec![id(2)],
                categories: cats(&[StatusEvents])
            }
        );
        // Shipper-wide grants cover future shipments too, without fan-out.
        f.d.add_shipment(
            id(12),
            id(SHIPPER),
            &CarrierCode::parse("DHL").unwrap(),
            Some(&TrackingNumber::parse("JJD2").unwrap()),
            CountryCode::parse("AT").unwrap(),
        );
        assert_eq!(
            f.decide(12, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Allowed {
                consents: vec![id(1)],
                categories: cats(&[StatusEvents])
            }
        );
        // Another shipper's shipment is not covered by this shipper's grant.
        f.d.add_shipment(
            id(13),
            id(77),
            &CarrierCode::parse("DHL").unwrap(),
            Some(&TrackingNumber::parse("JJD3").unwrap()),
            CountryCode::parse("DE").unwrap(),
        );
        assert_eq!(
            f.decide(13, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::NoConsent)
        );
    }

    #[test]
    fn shipments_resolve_by_carrier_and_tracking_number() {
        let f = Fixture::new();
        let dhl = CarrierCode::parse("dhl").unwrap();
        assert_eq!(
            f.d.resolve(&ShipmentRef::Tracking(
                dhl.clone(),
                TrackingNumber::parse("JJD1").unwrap()
            )),
            Some(id(DHL_DE))
        );
        assert_eq!(
            f.d.resolve(&ShipmentRef::Tracking(
                dhl,
                TrackingNumber::parse("JJD9").unwrap()
            )),
            None
        );
        assert_eq!(
            f.d.resolve(&ShipmentRef::Tracking(
                CarrierCode::parse("GLS").unwrap(),
                TrackingNumber::parse("JJD1").unwrap()
            )),
            None
        );
        assert_eq!(f.d.shipment_owner(id(DHL_DE)), Some(id(SHIPPER)));
    }

    #[test]
    fn parties_as_of_follow_the_recorded_history() {
        let mut f = Fixture::new();
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            Some(t0() + Duration::days(30)),
        );
        f.d.revoke(id(1), t0() + Duration::days(5));
        let at = |days| f.d.parties_at(id(DHL_DE), t0() + Duration::days(days));
        assert_eq!(
            at(1),
            vec![Party {
                consent: id(1),
                partner: id(PARTNER)
            }]
        );
        assert!(at(6).is_empty(), "revoked on day 5");
        assert!(
            f.d.parties_at(id(DHL_DE), t0() - Duration::days(1))
                .is_empty(),
            "not yet granted"
        );
    }

    /// Cost isolation (issue: one shipper's 40,000 shipper-wide grants to other partners cut
    /// another partner's decision rate 26-fold): a decision walks only the asking partner's
    /// shipper-wide consents, while "who may see" still sees every partner's.
    #[test]
    fn a_decision_walks_only_the_asking_partners_shipper_wide_consents() {
        let mut f = Fixture::new();
        let wide = || ConsentScope::Shipper {
            carriers: None,
            destination_countries: None,
        };
        f.grant(1, wide(), &[InsuranceClaim], &[StatusEvents], t0(), None);
        for n in 0..2_000u32 {
            f.d.add_partner(id(100_000 + n));
            f.d.add_grant(Grant {
                id: id(200_000 + n),
                partner: id(100_000 + n),
                shipper: id(SHIPPER),
                scope: &wide(),
                purposes: &set(&[InsuranceClaim]),
                categories: &set(&[StatusEvents]),
                valid_from: t0(),
                valid_until: None,
                granted_at: t0(),
                position: 1_000 + u64::from(n),
            });
        }
        let facts = f.d.shipments[&id(DHL_DE)];
        let walked =
            f.d.covering(
                id(DHL_DE),
                facts,
                f.d.shipper_wide_to(facts.shipper, id(PARTNER)),
            )
            .count();
        assert_eq!(walked, 1, "only the asking partner's consent is walked");
        assert_eq!(
            f.decide(DHL_DE, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Allowed {
                consents: vec![id(1)],
                categories: cats(&[StatusEvents])
            }
        );
        assert_eq!(f.d.parties_at(id(DHL_DE), t0()).len(), 2_001);
    }

    fn authorize(
        f: &mut Fixture,
        n: u32,
        scope: AuthorizationScope,
        dpa: u32,
        until: Option<DateTime<Utc>>,
    ) {
        f.d.add_authorization(AuthorizationGrant {
            id: id(n),
            partner: id(PARTNER),
            dpa: id(dpa),
            scope: &scope,
            purposes: &set(&[InsuranceClaim]),
            categories: &set(&[StatusEvents, Location]),
            valid_from: t0(),
            valid_until: until,
            granted_at: t0(),
        });
    }

    fn dpa_in_force(f: &mut Fixture, n: u32, until: Option<DateTime<Utc>>) {
        f.d.set_dpa(
            id(n),
            DpaWindow {
                signed_at: t0() - Duration::days(30),
                valid_until: until,
                terminated_at: None,
            },
        );
    }

    fn dhl() -> AuthorizationScope {
        AuthorizationScope {
            carriers: Some(set(&[CarrierCode::parse("DHL").unwrap()])),
            destination_countries: None,
            shipper_ids: None,
        }
    }

    #[test]
    fn a_carrier_authorization_allows_without_any_consent_and_names_its_dpa() {
        let mut f = Fixture::new();
        dpa_in_force(&mut f, 50, None);
        authorize(&mut f, 40, dhl(), 50, None);
        let verdict = f.verdict(
            DHL_DE,
            InsuranceClaim,
            &[StatusEvents, ProofOfDelivery],
            t0(),
        );
        assert_eq!(
            verdict,
            Verdict::Allowed {
                shipment: id(DHL_DE),
                consents: vec![],
                authorizations: vec![id(40)],
                categories: cats(&[StatusEvents]),
                dpa: Some(id(50)),
            }
        );
        // Outside its class of shipments, purposes or categories: the consent reasons.
        assert_eq!(
            f.decide(UPS_FR, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::NoConsent)
        );
        assert_eq!(
            f.decide(DHL_DE, FraudPrevention, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::PurposeNotCovered)
        );
        assert_eq!(
            f.decide(DHL_DE, InsuranceClaim, &[ProofOfDelivery], t0()),
            Outcome::Denied(DenyReason::CategoryNotCovered)
        );
        // Another partner holds nothing through it.
        let other = f.d.decide(
            id(OTHER_PARTNER),
            &ShipmentRef::Id(id(DHL_DE)),
            InsuranceClaim,
            cats(&[StatusEvents]),
            t0(),
        );
        assert_eq!(other.outcome(), Outcome::Denied(DenyReason::NoConsent));
        assert_eq!(f.d.partners_covering(id(DHL_DE)), vec![id(PARTNER)]);
        assert!(f.d.partners_covering(id(UPS_FR)).is_empty());
    }

    #[test]
    fn authorization_reasons_come_in_spec_order_and_name_the_authorization() {
        let mut f = Fixture::new();
        authorize(&mut f, 40, dhl(), 50, Some(t0() + Duration::days(10)));
        let reason = |f: &Fixture, at| f.verdict(DHL_DE, InsuranceClaim, &[StatusEvents], at);
        // No DPA in the register: dpa_missing, before anything else of the authorization.
        let missing = reason(&f, t0());
        assert_eq!(missing.outcome(), Outcome::Denied(DenyReason::DpaMissing));
        assert_eq!(missing.authorization(), Some(id(40)));
        dpa_in_force(&mut f, 50, Some(t0() + Duration::days(5)));
        assert!(matches!(reason(&f, t0()), Verdict::Allowed { .. }));
        assert_eq!(
            reason(&f, t0() + Duration::days(6)).outcome(),
            Outcome::Denied(DenyReason::DpaMissing),
            "the DPA ended on day 5"
        );
        dpa_in_force(&mut f, 50, None);
        assert_eq!(
            reason(&f, t0() + Duration::days(10)).outcome(),
            Outcome::Denied(DenyReason::AuthorizationExpired)
        );
        f.d.revoke_authorization(id(40), t0() + Duration::hours(1));
        assert_eq!(
            reason(&f, t0()).outcome(),
            Outcome::Denied(DenyReason::AuthorizationRevoked),
            "effective at once, whatever the clock says"
        );
        f.d.object(id(40), id(SHIPPER), t0() + Duration::hours(2));
        assert_eq!(
            reason(&f, t0()).outcome(),
            Outcome::Denied(DenyReason::ShipperObjected)
        );
        // A consent in force allows whatever an authorization's state.
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            None,
        );
        assert!(matches!(reason(&f, t0()), Verdict::Allowed { .. }));
    }

    #[test]
    fn an_objection_excludes_only_its_shippers_shipments_until_withdrawn() {
        let mut f = Fixture::new();
        dpa_in_force(&mut f, 50, None);
        authorize(&mut f, 40, dhl(), 50, None);
        f.d.add_shipment(
            id(14),
            id(88),
            &CarrierCode::parse("DHL").unwrap(),
            Some(&TrackingNumber::parse("JJD4").unwrap()),
            CountryCode::parse("DE").unwrap(),
        );
        f.d.object(id(40), id(SHIPPER), t0() + Duration::days(1));
        assert_eq!(
            f.decide(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(2)
            ),
            Outcome::Denied(DenyReason::ShipperObjected)
        );
        assert!(matches!(
            f.decide(
                14,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(2)
            ),
            Outcome::Allowed { .. }
        ));
        // Who could see, by the recorded history: before the objection, not during it.
        let seen = |f: &Fixture, at| f.d.authorized_at(id(DHL_DE), at);
        assert_eq!(seen(&f, t0()).len(), 1);
        assert!(seen(&f, t0() + Duration::days(2)).is_empty());
        f.d.withdraw_objection(id(40), id(SHIPPER), t0() + Duration::days(3));
        assert!(matches!(
            f.decide(
                DHL_DE,
                InsuranceClaim,
                &[StatusEvents],
                t0() + Duration::days(4)
            ),
            Outcome::Allowed { .. }
        ));
        assert!(seen(&f, t0() + Duration::days(2)).is_empty());
        assert_eq!(
            seen(&f, t0() + Duration::days(4)),
            vec![Authorized {
                authorization: id(40),
                partner: id(PARTNER),
                dpa: id(50)
            }]
        );
    }

    #[test]
    fn an_authorization_named_for_shippers_covers_theirs_only() {
        let mut f = Fixture::new();
        dpa_in_force(&mut f, 50, None);
        let others = AuthorizationScope {
            carriers: None,
            destination_countries: Some(set(&[CountryCode::parse("FR").unwrap()])),
            shipper_ids: Some(set(&[id::<ShipperId>(88)])),
        };
        authorize(&mut f, 40, others, 50, None);
        assert_eq!(
            f.decide(UPS_FR, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::NoConsent)
        );
        let fr = AuthorizationScope {
            carriers: None,
            destination_countries: Some(set(&[CountryCode::parse("FR").unwrap()])),
            shipper_ids: Some(set(&[id::<ShipperId>(SHIPPER)])),
        };
        authorize(&mut f, 41, fr, 50, None);
        assert_eq!(
            f.verdict(UPS_FR, InsuranceClaim, &[StatusEvents], t0()),
            Verdict::Allowed {
                shipment: id(UPS_FR),
                consents: vec![],
                authorizations: vec![id(41)],
                categories: cats(&[StatusEvents]),
                dpa: Some(id(50)),
            }
        );
        assert_eq!(
            f.decide(DHL_DE, InsuranceClaim, &[StatusEvents], t0()),
            Outcome::Denied(DenyReason::NoConsent)
        );
    }

    #[test]
    fn a_consent_read_names_the_partners_own_dpa_while_it_is_in_force() {
        let mut f = Fixture::new();
        f.grant(
            1,
            listed(DHL_DE),
            &[InsuranceClaim],
            &[StatusEvents],
            t0(),
            None,
        );
        let dpa = |f: &Fixture| match f.verdict(DHL_DE, InsuranceClaim, &[StatusEvents], t0()) {
            Verdict::Allowed { dpa, .. } => dpa,
            Verdict::Denied { .. } => panic!("denied"),
        };
        assert_eq!(dpa(&f), None, "no agreement in the register");
        dpa_in_force(&mut f, 50, None);
        f.d.set_partner_dpa(id(PARTNER), Some(id(50)));
        assert_eq!(dpa(&f), Some(id(50)));
        f.d.set_dpa(
            id(50),
            DpaWindow {
                signed_at: t0() - Duration::days(30),
                valid_until: None,
                terminated_at: Some(t0() + Duration::days(1)),
            },
        );
        assert_eq!(
            dpa(&f),
            None,
            "terminated: in force nowhere from its commit"
        );
    }
}
