//! The decider (SPEC §3 "Access decision") checked against a plain reference model: small random
//! worlds of shippers, partners, shipments and consents (both scopes, validity windows,
//! revocations, suspended partners), built in a random order, and random questions about them.
//! The reference below is the SPEC's rule read literally, with linear scans over plain vectors;
//! the decider's indexes, interning and bit sets must answer exactly as it does.

use chrono::{DateTime, Duration, TimeZone, Utc};
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    CarrierCode, ConsentId, CountryCode, DataCategory, NonEmptySet, PartnerId, PartnerStatus,
    Purpose, ShipmentId, ShipperId, TrackingNumber,
};
use consent_ledger_projections::decider::{
    Categories, Decider, DenyReason, Grant, Party, ShipmentRef, Verdict,
};
use proptest::prelude::*;
use proptest::sample::subsequence;

const CARRIERS: [&str; 3] = ["DHL", "UPS", "GLS"];
const COUNTRIES: [&str; 3] = ["DE", "FR", "AT"];
/// Purposes consents grant; questions may also ask for one no consent names.
const GRANTED_PURPOSES: usize = 3;
const ASKED_PURPOSES: usize = 4;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).single().unwrap()
}

/// Minutes after the base time: small numbers, so that times often fall on window edges.
fn t(minutes: i64) -> DateTime<Utc> {
    base() + Duration::minutes(minutes)
}

fn id<T: std::str::FromStr>(kind: u32, n: usize) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("0190d5f6-{kind:04}-7000-8000-{n:012}")
        .parse()
        .unwrap()
}

fn shipper(n: usize) -> ShipperId {
    id(1, n)
}
fn partner(n: usize) -> PartnerId {
    id(2, n)
}
fn shipment(n: usize) -> ShipmentId {
    id(3, n)
}
/// Consent ids are not in grant order, so that sorting them is not a no-op.
fn consent(n: usize) -> ConsentId {
    id(4, 100 + (n * 5) % 8)
}

fn set<T: Ord + Clone>(v: Vec<T>) -> NonEmptySet<T> {
    NonEmptySet::new(v).unwrap()
}

// --- The world ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ShipmentSpec {
    shipper: usize,
    carrier: usize,
    country: usize,
}

#[derive(Debug, Clone)]
enum ScopeSpec {
    /// Indexes of listed shipments; an index past the registered ones names a shipment that was
    /// never registered.
    Listed(Vec<usize>),
    Shipper {
        carriers: Option<Vec<usize>>,
        countries: Option<Vec<usize>>,
    },
}

#[derive(Debug, Clone)]
struct ConsentSpec {
    partner: usize,
    shipper: usize,
    scope: ScopeSpec,
    purposes: Vec<usize>,
    categories: Vec<usize>,
    granted_at: i64,
    valid_from: i64,
    valid_until: Option<i64>,
    /// Minutes after the grant at which it is revoked.
    revoked_after: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PartnerSpec {
    Active,
    Suspended,
    /// Never registered with the decider (treated as not suspended).
    Unregistered,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Shipment(usize),
    Grant(usize),
}

#[derive(Debug, Clone)]
struct World {
    shippers: usize,
    partners: Vec<PartnerSpec>,
    shipments: Vec<ShipmentSpec>,
    consents: Vec<ConsentSpec>,
    /// Shipments and grants in the order they reach the decider; revocations come after.
    order: Vec<Op>,
}

fn carrier(n: usize) -> CarrierCode {
    CarrierCode::parse(CARRIERS[n]).unwrap()
}
fn country(n: usize) -> CountryCode {
    CountryCode::parse(COUNTRIES[n]).unwrap()
}
fn tracking(n: usize) -> TrackingNumber {
    TrackingNumber::parse(format!("JJD{n:04}")).unwrap()
}

fn subset(len: usize) -> impl Strategy<Value = Vec<usize>> {
    subsequence((0..len).collect::<Vec<_>>(), 1..=len)
}

fn scope_spec(shipments: usize) -> impl Strategy<Value = ScopeSpec> {
    prop_oneof![
        // One past the registered ones: a listed id the decider never saw.
        subsequence(
            (0..=shipments).collect::<Vec<_>>(),
            1..=3.min(shipments + 1)
        )
        .prop_map(ScopeSpec::Listed),
        (
            proptest::option::of(subset(CARRIERS.len())),
            proptest::option::of(subset(COUNTRIES.len())),
        )
            .prop_map(|(carriers, countries)| ScopeSpec::Shipper {
                carriers,
                countries
            }),
    ]
}

fn consent_spec(
    shippers: usize,
    partners: usize,
    shipments: usize,
) -> impl Strategy<Value = ConsentSpec> {
    (
        (0..partners, 0..shippers, scope_spec(shipments)),
        (subset(GRANTED_PURPOSES), subset(DataCategory::ALL.len())),
        // Validity as the domain allows it: from at most 5 minutes before the grant, until after
        // both the start and the grant.
        (0i64..20, -5i64..=20, proptest::option::of(1i64..=20)),
        proptest::option::weighted(0.35, 0i64..=30),
    )
        .prop_map(
            |(
                (partner, shipper, scope),
                (purposes, categories),
                (granted_at, from, until),
                revoked_after,
            )| {
                let valid_from = granted_at + from;
                ConsentSpec {
                    partner,
                    shipper,
                    scope,
                    purposes,
                    categories,
                    granted_at,
                    valid_from,
                    valid_until: until.map(|u| valid_from.max(granted_at) + u),
                    revoked_after,
                }
            },
        )
}

fn world() -> impl Strategy<Value = World> {
    (2usize..=3, 2usize..=4, 2usize..=6)
        .prop_flat_map(|(shippers, partners, shipments)| {
            (
                Just(shippers),
                proptest::collection::vec(
                    prop_oneof![
                        5 => Just(PartnerSpec::Active),
                        2 => Just(PartnerSpec::Suspended),
                        1 => Just(PartnerSpec::Unregistered),
                    ],
                    partners,
                ),
                proptest::collection::vec(
                    (0..shippers, 0..CARRIERS.len(), 0..COUNTRIES.len()).prop_map(
                        |(shipper, carrier, country)| ShipmentSpec {
                            shipper,
                            carrier,
                            country,
                        },
                    ),
                    shipments,
                ),
                proptest::collection::vec(consent_spec(shippers, partners, shipments), 0..=8),
            )
        })
        .prop_flat_map(|(shippers, partners, shipments, consents)| {
            let order: Vec<Op> = (0..shipments.len())
                .map(Op::Shipment)
                .chain((0..consents.len()).map(Op::Grant))
                .collect();
            (
                Just(shippers),
                Just(partners),
                Just(shipments),
                Just(consents),
                Just(order).prop_shuffle(),
            )
        })
        .prop_map(|(shippers, partners, shipments, consents, order)| World {
            shippers,
            partners,
            shipments,
            consents,
            order,
        })
}

/// The world as the decider holds it, and each consent's log position (assigned in the order
/// the grants reached it).
fn build(w: &World) -> (Decider, Vec<u64>) {
    let mut d = Decider::default();
    for (n, p) in w.partners.iter().enumerate() {
        match p {
            PartnerSpec::Active => d.add_partner(partner(n)),
            PartnerSpec::Suspended => {
                d.add_partner(partner(n));
                d.set_partner_status(partner(n), PartnerStatus::Suspended);
            }
            PartnerSpec::Unregistered => {}
        }
    }
    let mut positions = vec![0; w.consents.len()];
    for (position, op) in (1000u64..).zip(&w.order) {
        match *op {
            Op::Shipment(n) => {
                let s = &w.shipments[n];
                d.add_shipment(
                    shipment(n),
                    shipper(s.shipper),
                    &carrier(s.carrier),
                    Some(&tracking(n)),
                    country(s.country),
                );
            }
            Op::Grant(n) => {
                let c = &w.consents[n];
                let scope = match &c.scope {
                    ScopeSpec::Listed(listed) => ConsentScope::Shipments {
                        shipment_ids: set(listed.iter().map(|&s| shipment(s)).collect()),
                    },
                    ScopeSpec::Shipper {
                        carriers,
                        countries,
                    } => ConsentScope::Shipper {
                        carriers: carriers
                            .as_ref()
                            .map(|cs| set(cs.iter().map(|&c| carrier(c)).collect())),
                        destination_countries: countries
                            .as_ref()
                            .map(|cs| set(cs.iter().map(|&c| country(c)).collect())),
                    },
                };
                positions[n] = position;
                d.add_grant(Grant {
                    id: consent(n),
                    partner: partner(c.partner),
                    shipper: shipper(c.shipper),
                    scope: &scope,
                    purposes: &set(c.purposes.iter().map(|&p| Purpose::ALL[p]).collect()),
                    categories: &set(c.categories.iter().map(|&k| DataCategory::ALL[k]).collect()),
                    valid_from: t(c.valid_from),
                    valid_until: c.valid_until.map(t),
                    granted_at: t(c.granted_at),
                    position,
                });
            }
        }
    }
    for (n, c) in w.consents.iter().enumerate() {
        if let Some(after) = c.revoked_after {
            d.revoke(consent(n), t(c.granted_at + after));
        }
    }
    (d, positions)
}

// --- The reference: SPEC §3 read literally -------------------------------------------------------

fn covers(w: &World, c: &ConsentSpec, s: usize) -> bool {
    let facts = &w.shipments[s];
    match &c.scope {
        ScopeSpec::Listed(listed) => listed.contains(&s),
        ScopeSpec::Shipper {
            carriers,
            countries,
        } => {
            c.shipper == facts.shipper
                && carriers
                    .as_ref()
                    .is_none_or(|cs| cs.contains(&facts.carrier))
                && countries
                    .as_ref()
                    .is_none_or(|cs| cs.contains(&facts.country))
        }
    }
}

/// In force at `now` for a decision: a revocation counts whatever its time (SPEC §5.2).
fn in_force_now(c: &ConsentSpec, now: i64) -> bool {
    c.revoked_after.is_none() && c.valid_from <= now && c.valid_until.is_none_or(|u| now < u)
}

/// In force at `at` by the recorded history ("who may see this shipment as of").
fn in_force_at(c: &ConsentSpec, at: i64) -> bool {
    c.granted_at <= at
        && c.revoked_after.is_none_or(|r| at < c.granted_at + r)
        && c.valid_from <= at
        && c.valid_until.is_none_or(|u| at < u)
}

#[derive(Debug, Clone)]
enum Asked {
    Id(usize),
    UnknownId,
    /// Carrier index and the tracking number of a shipment index (possibly another carrier's).
    Tracking {
        carrier: usize,
        of: usize,
        lowercase: bool,
    },
}

#[derive(Debug, Clone)]
struct Question {
    partner: usize,
    shipment: Asked,
    purpose: usize,
    categories: Vec<usize>,
    now: i64,
}

fn resolve(w: &World, asked: &Asked) -> Option<usize> {
    match *asked {
        Asked::Id(n) => (n < w.shipments.len()).then_some(n),
        Asked::UnknownId => None,
        Asked::Tracking { carrier, of, .. } => {
            (0..w.shipments.len()).find(|&s| s == of && w.shipments[s].carrier == carrier)
        }
    }
}

fn reference_decide(w: &World, positions: &[u64], q: &Question) -> Verdict {
    let Some(s) = resolve(w, &q.shipment) else {
        return Verdict::Denied {
            authorization: None,
            shipment: None,
            reason: DenyReason::UnknownShipment,
            consent: None,
        };
    };
    let deny = |reason| Verdict::Denied {
        authorization: None,
        shipment: Some(shipment(s)),
        reason,
        consent: None,
    };
    if w.partners[q.partner] == PartnerSpec::Suspended {
        return deny(DenyReason::PartnerSuspended);
    }
    let covering: Vec<usize> = (0..w.consents.len())
        .filter(|&n| w.consents[n].partner == q.partner && covers(w, &w.consents[n], s))
        .collect();
    if covering.is_empty() {
        return deny(DenyReason::NoConsent);
    }
    let for_purpose: Vec<usize> = covering
        .into_iter()
        .filter(|&n| w.consents[n].purposes.contains(&q.purpose))
        .collect();
    if for_purpose.is_empty() {
        return deny(DenyReason::PurposeNotCovered);
    }
    let for_category: Vec<usize> = for_purpose
        .into_iter()
        .filter(|&n| {
            w.consents[n]
                .categories
                .iter()
                .any(|k| q.categories.contains(k))
        })
        .collect();
    if for_category.is_empty() {
        return deny(DenyReason::CategoryNotCovered);
    }
    let in_force: Vec<usize> = for_category
        .iter()
        .copied()
        .filter(|&n| in_force_now(&w.consents[n], q.now))
        .collect();
    if !in_force.is_empty() {
        let mut consents: Vec<ConsentId> = in_force.iter().map(|&n| consent(n)).collect();
        consents.sort();
        let granted: Vec<DataCategory> = q
            .categories
            .iter()
            .filter(|k| {
                in_force
                    .iter()
                    .any(|&n| w.consents[n].categories.contains(k))
            })
            .map(|&k| DataCategory::ALL[k])
            .collect();
        return Verdict::Allowed {
            authorizations: Vec::new(),
            dpa: None,
            shipment: shipment(s),
            consents,
            categories: Categories::of(&granted),
        };
    }
    // The most recently granted of them speaks.
    let latest = *for_category.iter().max_by_key(|&&n| positions[n]).unwrap();
    let c = &w.consents[latest];
    let reason = if c.revoked_after.is_some() {
        DenyReason::ConsentRevoked
    } else if c.valid_until.is_some_and(|u| q.now >= u) {
        DenyReason::ConsentExpired
    } else {
        assert!(q.now < c.valid_from, "not in force, so not yet valid");
        DenyReason::ConsentNotYetValid
    };
    Verdict::Denied {
        authorization: None,
        shipment: Some(shipment(s)),
        reason,
        consent: Some(consent(latest)),
    }
}

fn reference_parties(w: &World, s: usize, at: i64) -> Vec<Party> {
    if s >= w.shipments.len() {
        return Vec::new();
    }
    let mut parties: Vec<Party> = (0..w.consents.len())
        .filter(|&n| covers(w, &w.consents[n], s) && in_force_at(&w.consents[n], at))
        .map(|n| Party {
            consent: consent(n),
            partner: partner(w.consents[n].partner),
        })
        .collect();
    parties.sort_by_key(|p| p.consent);
    parties
}

// --- Questions ----------------------------------------------------------------------------------

fn asked(shipments: usize) -> impl Strategy<Value = Asked> {
    prop_oneof![
        6 => (0..shipments).prop_map(Asked::Id),
        1 => Just(Asked::UnknownId),
        3 => (0..CARRIERS.len(), 0..=shipments, any::<bool>())
            .prop_map(|(carrier, of, lowercase)| Asked::Tracking { carrier, of, lowercase }),
    ]
}

fn question(w: &World) -> impl Strategy<Value = Question> {
    (
        0..w.partners.len(),
        asked(w.shipments.len()),
        0..ASKED_PURPOSES,
        subset(DataCategory::ALL.len()),
        -10i64..=70,
    )
        .prop_map(|(partner, shipment, purpose, categories, now)| Question {
            partner,
            shipment,
            purpose,
            categories,
            now,
        })
}

fn world_and_questions() -> impl Strategy<Value = (World, Vec<Question>)> {
    world().prop_flat_map(|w| {
        let questions = proptest::collection::vec(question(&w), 1..=12);
        (Just(w), questions)
    })
}

fn ask(d: &Decider, q: &Question) -> Verdict {
    let shipment = match q.shipment {
        Asked::Id(n) => ShipmentRef::Id(shipment(n)),
        Asked::UnknownId => ShipmentRef::Id(shipment(999)),
        Asked::Tracking {
            carrier,
            of,
            lowercase,
        } => {
            let code = CARRIERS[carrier];
            let code = if lowercase {
                code.to_lowercase()
            } else {
                code.to_owned()
            };
            ShipmentRef::Tracking(CarrierCode::parse(code).unwrap(), tracking(of))
        }
    };
    let requested: Vec<DataCategory> = q.categories.iter().map(|&k| DataCategory::ALL[k]).collect();
    d.decide(
        partner(q.partner),
        &shipment,
        Purpose::ALL[q.purpose],
        Categories::of(&requested),
        t(q.now),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every verdict — allowed or denied, the reason, the consents listed and the categories
    /// granted, and the consent named on a denial for its state — is the reference's.
    #[test]
    fn decisions_follow_the_spec((w, questions) in world_and_questions()) {
        let (d, positions) = build(&w);
        for q in &questions {
            let expected = reference_decide(&w, &positions, q);
            let got = ask(&d, q);
            prop_assert_eq!(got, expected, "question {:?}", q);
        }
    }

    /// "Who may see this shipment at T" is every consent covering it that was granted by T, not
    /// revoked by T and valid at T, whatever the partner's status now.
    #[test]
    fn parties_at_follow_the_recorded_history(
        (w, times) in world().prop_flat_map(|w| {
            let shipments = w.shipments.len();
            (Just(w), proptest::collection::vec((0..=shipments, -10i64..=70), 1..=12))
        })
    ) {
        let (d, _) = build(&w);
        for &(s, at) in &times {
            let id = if s < w.shipments.len() { shipment(s) } else { shipment(999) };
            prop_assert_eq!(
                d.parties_at(id, t(at)),
                reference_parties(&w, s, at),
                "shipment {} at {}", s, at
            );
        }
    }
}

/// The reference itself, on a hand-made world, so that a bug in it cannot hide one in the
/// decider.
#[test]
fn the_reference_answers_the_spec_examples() {
    let w = World {
        shippers: 2,
        partners: vec![PartnerSpec::Active, PartnerSpec::Suspended],
        shipments: vec![
            ShipmentSpec {
                shipper: 0,
                carrier: 0,
                country: 0,
            },
            ShipmentSpec {
                shipper: 1,
                carrier: 1,
                country: 1,
            },
        ],
        consents: vec![
            ConsentSpec {
                partner: 0,
                shipper: 0,
                scope: ScopeSpec::Listed(vec![0]),
                purposes: vec![0],
                categories: vec![0, 1],
                granted_at: 0,
                valid_from: 0,
                valid_until: Some(10),
                revoked_after: None,
            },
            ConsentSpec {
                partner: 0,
                shipper: 0,
                scope: ScopeSpec::Shipper {
                    carriers: None,
                    countries: None,
                },
                purposes: vec![0],
                categories: vec![2],
                granted_at: 1,
                valid_from: 5,
                valid_until: None,
                revoked_after: Some(20),
            },
        ],
        order: vec![Op::Shipment(0), Op::Shipment(1), Op::Grant(0), Op::Grant(1)],
    };
    assert_eq!(w.shippers, 2);
    let (d, positions) = build(&w);
    let q = |partner, s, purpose, categories: &[usize], now| Question {
        partner,
        shipment: Asked::Id(s),
        purpose,
        categories: categories.to_vec(),
        now,
    };
    let cases = [
        (
            q(0, 0, 0, &[2], 6),
            Verdict::Denied {
                authorization: None,
                shipment: Some(shipment(0)),
                reason: DenyReason::ConsentRevoked,
                consent: Some(consent(1)),
            },
        ),
        (
            q(0, 0, 0, &[0, 3], 6),
            Verdict::Allowed {
                authorizations: Vec::new(),
                dpa: None,
                shipment: shipment(0),
                consents: vec![consent(0)],
                categories: Categories::of(&[DataCategory::ALL[0]]),
            },
        ),
        (
            q(0, 0, 0, &[0], 10),
            Verdict::Denied {
                authorization: None,
                shipment: Some(shipment(0)),
                reason: DenyReason::ConsentExpired,
                consent: Some(consent(0)),
            },
        ),
        (
            q(0, 0, 1, &[0], 5),
            Verdict::Denied {
                authorization: None,
                shipment: Some(shipment(0)),
                reason: DenyReason::PurposeNotCovered,
                consent: None,
            },
        ),
        (
            q(0, 0, 0, &[3], 5),
            Verdict::Denied {
                authorization: None,
                shipment: Some(shipment(0)),
                reason: DenyReason::CategoryNotCovered,
                consent: None,
            },
        ),
        (
            q(0, 1, 0, &[0], 5),
            Verdict::Denied {
                authorization: None,
                shipment: Some(shipment(1)),
                reason: DenyReason::NoConsent,
                consent: None,
            },
        ),
        (
            q(1, 0, 0, &[0], 5),
            Verdict::Denied {
                authorization: None,
                shipment: Some(shipment(0)),
                reason: DenyReason::PartnerSuspended,
                consent: None,
            },
        ),
    ];
    for (question, expected) in cases {
        assert_eq!(reference_decide(&w, &positions, &question), expected);
        assert_eq!(ask(&d, &question), expected);
    }
    let parties = |at| reference_parties(&w, 0, at);
    let both = vec![
        Party {
            consent: consent(0),
            partner: partner(0),
        },
        Party {
            consent: consent(1),
            partner: partner(0),
        },
    ];
    assert_eq!(parties(4), both[..1].to_vec());
    assert_eq!(parties(5), both);
    assert_eq!(parties(10), both[1..].to_vec());
    assert_eq!(parties(21), Vec::new());
    assert_eq!(d.parties_at(shipment(0), t(5)), both);
}
