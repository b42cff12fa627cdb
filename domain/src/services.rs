//! Outside facts the aggregates need, injected through cqrs-es's `Services` so that tests
//! decide them: the clock, the id generator, and what the read side knows of other aggregates (a partner's
//! status, a shipment's owner).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};

use crate::values::{DpaRef, PartnerId, PartnerStatus, ShipmentId, ShipperId};

/// Where "now" comes from. The service uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Microsecond precision: what RFC 3339 answers and both stores keep.
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where new ids come from. The service mints UUIDv7 ([`UuidV7`]: time-ordered, so ids sort
/// by creation); tests may mint predictable ones.
pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> uuid::Uuid;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn new_id(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}

/// What a command handler may ask about the rest of the ledger. Implemented by the read side.
pub trait Directory: Send + Sync {
    /// The partner's status and default DPA reference, or `None` if no such partner exists.
    fn partner(&self, id: PartnerId) -> Option<PartnerFacts>;
    /// Who registered the shipment, or `None` if it is unknown.
    fn shipment_owner(&self, id: ShipmentId) -> Option<ShipperId>;
    /// True when `id` is a registered principal of role `shipper`.
    fn is_shipper(&self, id: ShipperId) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerFacts {
    pub status: PartnerStatus,
    pub dpa_ref: DpaRef,
}

/// The `Services` of every aggregate in this crate.
#[derive(Clone)]
pub struct LedgerServices {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub directory: Arc<dyn Directory>,
}

impl LedgerServices {
    /// Services minting UUIDv7 ids.
    pub fn new(clock: Arc<dyn Clock>, directory: Arc<dyn Directory>) -> Self {
        Self::with_ids(clock, Arc::new(UuidV7), directory)
    }
    pub fn with_ids(
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        directory: Arc<dyn Directory>,
    ) -> Self {
        Self {
            clock,
            ids,
            directory,
        }
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
