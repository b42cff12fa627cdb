//! Rate limits (SECURITY.md "Rate limits", docs/adr/0009): each authenticated principal may
//! make `N` requests a second, in bursts of up to `N`; and each client address may present
//! `N` tokens a second that this node has not seen, since each of those costs a read of the
//! credentials table before it can be refused. Off unless the operator asks (`serve
//! --rate-limit N`): the carrier's gateway asks every decision for its partners, and a
//! default low enough to matter would throttle it.
//!
//! The buckets are governor's GCRA, one per key, in this node's memory: several nodes sharing
//! a database each allow `N`. Keys whose bucket has refilled are forgotten by
//! [`RateLimits::prune`], which `serve` calls every second, so memory holds only the keys of
//! the last two seconds (a bucket of N refills in one).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use consent_ledger_domain::values::PrincipalId;
use governor::clock::{Clock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::{NotUntil, Quota, RateLimiter};

use crate::error::AppError;
pub use crate::error::{retry_after_seconds, Limited};

/// The time the buckets refill on: the monotonic clock in service (a wall clock stepped back
/// would hold every bucket empty until it caught up), or one a test moves by hand.
#[derive(Debug, Clone)]
pub enum RateClock {
    Monotonic(std::time::Instant),
    Manual(FakeRelativeClock),
}

impl Default for RateClock {
    fn default() -> Self {
        Self::Monotonic(std::time::Instant::now())
    }
}

impl RateClock {
    /// A clock standing still until [`RateClock::advance`] moves it.
    pub fn manual() -> Self {
        Self::Manual(FakeRelativeClock::default())
    }

    /// Moves a manual clock forward by `by` (a monotonic one moves by itself: no effect).
    pub fn advance(&self, by: Duration) {
        if let Self::Manual(clock) = self {
            clock.advance(by);
        }
    }
}

impl Clock for RateClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match self {
            // 584 years of uptime before this saturates.
            Self::Monotonic(start) => {
                Nanos::new(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
            }
            Self::Manual(clock) => clock.now(),
        }
    }
}

/// Where a client's unknown tokens are counted: its IP address, an IPv6 one by its /64 prefix
/// (one host is commonly given a whole /64, so each of its addresses would otherwise have a
/// bucket of its own), an IPv4-mapped one as the IPv4 address it is. `None`: the transport
/// did not know the peer's address; such requests share one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(Option<IpAddr>);

impl ClientKey {
    pub fn of(peer: Option<IpAddr>) -> Self {
        Self(peer.map(|ip| match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
            },
        }))
    }
}

type Keyed<K> = RateLimiter<K, HashMapStateStore<K>, RateClock, NoOpMiddleware<Nanos>>;

/// The limiters of a running node; with no limit configured, every check passes at once.
#[derive(Debug)]
pub struct RateLimits {
    limiters: Option<Limiters>,
    /// Requests refused, for `/metrics`.
    pub refused_principal: AtomicU64,
    pub refused_unknown_tokens: AtomicU64,
}

struct Limiters {
    principals: Keyed<PrincipalId>,
    clients: Keyed<ClientKey>,
    clock: RateClock,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("principals", &self.principals.len())
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// `per_second` requests a second for each principal and for each client address's unknown
    /// tokens, with bursts of as many; `None`: no limit.
    pub fn new(per_second: Option<NonZeroU32>, clock: RateClock) -> Self {
        let limiters = per_second.map(|n| {
            let quota = Quota::per_second(n);
            Limiters {
                principals: RateLimiter::new(quota, HashMapStateStore::default(), clock.clone()),
                clients: RateLimiter::new(quota, HashMapStateStore::default(), clock.clone()),
                clock,
            }
        });
        Self {
            limiters,
            refused_principal: AtomicU64::new(0),
            refused_unknown_tokens: AtomicU64::new(0),
        }
    }

    /// Takes one request from principal `id`'s bucket, or answers
    /// [`AppError::RateLimited`] when it is empty. Called once a token is authenticated, so a
    /// rotated or unknown token cannot spend its principal's requests.
    pub fn principal(&self, id: PrincipalId) -> Result<(), AppError> {
        let Some(l) = &self.limiters else {
            return Ok(());
        };
        l.principals.check_key(&id).map_err(|not_until| {
            self.refused_principal.fetch_add(1, Relaxed);
            refused(&not_until, &l.clock, Limited::Principal)
        })
    }

    /// Takes one from the bucket of the client at `peer`, before a token this node does not
    /// know is looked up in the store, or answers [`AppError::RateLimited`] when it is empty.
    pub fn unknown_token(&self, peer: Option<IpAddr>) -> Result<(), AppError> {
        let Some(l) = &self.limiters else {
            return Ok(());
        };
        l.clients
            .check_key(&ClientKey::of(peer))
            .map_err(|not_until| {
                self.refused_unknown_tokens.fetch_add(1, Relaxed);
                refused(&not_until, &l.clock, Limited::UnknownTokens)
            })
    }

    /// Forgets every key whose bucket has refilled (it would start full again anyway), and
    /// gives back the memory a burst of keys took.
    pub fn prune(&self) {
        if let Some(l) = &self.limiters {
            l.principals.retain_recent();
            l.principals.shrink_to_fit();
            l.clients.retain_recent();
            l.clients.shrink_to_fit();
        }
    }

    /// How many keys the limiters hold: principals, client addresses.
    pub fn tracked(&self) -> (usize, usize) {
        self.limiters
            .as_ref()
            .map_or((0, 0), |l| (l.principals.len(), l.clients.len()))
    }
}

/// The refusal for a bucket that next has room at `not_until`.
fn refused(not_until: &NotUntil<Nanos>, clock: &RateClock, limited: Limited) -> AppError {
    AppError::RateLimited {
        retry_after: not_until.wait_time_from(clock.now()),
        limited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> PrincipalId {
        PrincipalId::from_uuid(uuid::Uuid::now_v7())
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("an IP address"))
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix_and_a_mapped_ipv4_one_its_ipv4_address() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.7")),
            ClientKey::of(ip("192.0.2.7"))
        );
        assert_ne!(
            ClientKey::of(ip("192.0.2.7")),
            ClientKey::of(ip("192.0.2.8"))
        );
        assert_ne!(ClientKey::of(None), ClientKey::of(ip("0.0.0.0")));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        for (wait, seconds) in [
            (Duration::ZERO, 1),
            (Duration::from_nanos(1), 1),
            (Duration::from_millis(200), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(7), 7),
        ] {
            assert_eq!(retry_after_seconds(wait), seconds, "{wait:?}");
        }
    }

    #[test]
    fn each_key_has_its_own_bucket_of_n_refilled_at_n_a_second() {
        let clock = RateClock::manual();
        let limits = RateLimits::new(NonZeroU32::new(2), clock.clone());
        let (a, b) = (principal(), principal());
        assert!(limits.principal(a).is_ok() && limits.principal(a).is_ok());
        match limits.principal(a) {
            Err(AppError::RateLimited {
                retry_after,
                limited: Limited::Principal,
            }) => assert_eq!(retry_after, Duration::from_millis(500)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(limits.principal(b).is_ok(), "another principal's bucket");
        assert!(
            limits.unknown_token(ip("192.0.2.7")).is_ok(),
            "another limiter"
        );
        clock.advance(Duration::from_millis(500));
        assert!(limits.principal(a).is_ok());
        assert!(limits.principal(a).is_err());
        assert_eq!(limits.refused_principal.load(Relaxed), 2);
    }

    #[test]
    fn with_no_limit_every_check_passes_and_nothing_is_kept() {
        let limits = RateLimits::new(None, RateClock::manual());
        let id = principal();
        for _ in 0..10_000 {
            assert!(limits.principal(id).is_ok());
            assert!(limits.unknown_token(ip("192.0.2.7")).is_ok());
        }
        assert_eq!(limits.tracked(), (0, 0));
    }
}
