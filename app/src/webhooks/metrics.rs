//! What a node's webhook worker keeps in the application state: its counters for `/metrics`,
//! and the endpoints' signing keys it has read. Apart from the worker, so that the state
//! holds them without depending on the worker's code.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use consent_ledger_audit::webhook::WebhookKey;

/// The latency histogram's upper bounds, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0];

/// What `/metrics` shows of this node's deliveries.
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    /// Attempts answered 2xx.
    pub delivered: AtomicU64,
    /// Attempts that failed (retried or not).
    pub failed: AtomicU64,
    /// Messages given up (schedule spent, `410`, or endpoint disabled).
    pub given_up: AtomicU64,
    /// Tracking deliveries cancelled at send time (SPEC §14).
    pub cancelled: AtomicU64,
    /// Attempts per latency bucket ([`LATENCY_BUCKETS`], then +Inf), not cumulative.
    pub latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// The attempts' latencies summed, in microseconds.
    pub latency_micros: AtomicU64,
}

impl DeliveryMetrics {
    pub(crate) fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[bucket].fetch_add(1, Relaxed);
        self.latency_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }
}

/// Signing keys by their public key: a public key names one secret for good, so an entry never
/// goes stale; which keys sign is the endpoint's view's to say. Read from the store the first
/// time a key signs, not for every message.
#[derive(Default)]
pub struct SigningKeys(std::sync::Mutex<std::collections::HashMap<String, WebhookKey>>);

impl SigningKeys {
    /// Most keys kept: beyond it (endpoints come and go) the cache starts over.
    const MOST: usize = 100_000;

    pub(crate) fn get(&self, public: &[&str]) -> Option<Vec<WebhookKey>> {
        let keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        public.iter().map(|p| keys.get(*p).cloned()).collect()
    }

    pub(crate) fn keep(&self, found: &[WebhookKey]) {
        let mut keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() + found.len() > Self::MOST {
            keys.clear();
        }
        for key in found {
            keys.insert(key.public(), key.clone());
        }
    }
}
