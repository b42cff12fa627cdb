//! Services for given/when/then tests: a fixed clock and a directory filled by the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use crate::services::{Directory, LedgerServices, ManualClock, PartnerFacts};
use crate::values::{DpaRef, PartnerId, PartnerStatus, ShipmentId, ShipperId};

/// 2026-01-01T00:00:00Z, the time of every test that does not move the clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

#[derive(Default)]
pub struct TestDirectory {
    pub partners: Mutex<HashMap<PartnerId, PartnerFacts>>,
    pub shipments: Mutex<HashMap<ShipmentId, ShipperId>>,
    pub shippers: Mutex<Vec<ShipperId>>,
}

impl TestDirectory {
    pub fn partner(&self, id: PartnerId, status: PartnerStatus) {
        let facts = PartnerFacts {
            status,
            dpa_ref: DpaRef::parse("DPA-DEFAULT").unwrap_or_else(|e| panic!("{e}")),
        };
        self.partners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, facts);
    }
    pub fn shipment(&self, id: ShipmentId, owner: ShipperId) {
        self.shipments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, owner);
        self.shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(owner);
    }
    pub fn shipper(&self, id: ShipperId) {
        self.shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
    }
}

impl Directory for TestDirectory {
    fn partner(&self, id: PartnerId) -> Option<PartnerFacts> {
        self.partners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
    fn shipment_owner(&self, id: ShipmentId) -> Option<ShipperId> {
        self.shipments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }
    fn is_shipper(&self, id: ShipperId) -> bool {
        self.shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }
}

/// Services at [`t0`] over an empty directory.
pub fn services() -> LedgerServices {
    services_with(Arc::new(TestDirectory::default())).0
}

/// Services at [`t0`] over `directory`, with the clock to move.
pub fn services_with(directory: Arc<TestDirectory>) -> (LedgerServices, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0()));
    (LedgerServices::new(clock.clone(), directory), clock)
}
