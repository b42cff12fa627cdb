//! Read-model snapshots: a restart loads the snapshot and replays only what came after it, and
//! the result equals a full replay of the log; a snapshot of another log is ignored.

use std::sync::Arc;

use consent_ledger_app::principals::{register, CreatePrincipal};
use consent_ledger_app::state::{AppState, ServiceConfig, StoreOptions};
use consent_ledger_domain::consent::ConsentCommand;
use consent_ledger_domain::principal::PartnerProfile;
use consent_ledger_domain::shipment::ShipmentCommand;
use consent_ledger_domain::terms::ConsentScope;
use consent_ledger_domain::values::{
    CarrierCode, ConsentId, CountryCode, DataCategory, DisplayName, DpaRef, LegalBasis,
    NonEmptySet, PartnerId, PartnerKind, Purpose, Reason, Role, ShipmentId, ShipperId,
    TrackingNumber,
};
use consent_ledger_domain::SystemClock;
use consent_ledger_projections::decider::{Categories, ShipmentRef};
use consent_ledger_projections::Projector;
use consent_ledger_store::cqrs::CommandMeta;
use uuid::Uuid;

fn options(dir: &std::path::Path) -> StoreOptions {
    StoreOptions {
        data_dir: dir.to_path_buf(),
        database_url: None,
    }
}

async fn open(dir: &std::path::Path) -> Arc<AppState> {
    AppState::open(
        &options(dir),
        Arc::new(SystemClock),
        ServiceConfig::default(),
    )
    .await
    .expect("open")
}

/// The service opened again on `dir`, its model (snapshot and the rest) checked against a full
/// replay of the log.
async fn reopened(dir: &std::path::Path) -> Arc<AppState> {
    let state = open(dir).await;
    let replayed = Projector::replay(&state.store, |_| {})
        .await
        .expect("replay");
    assert_eq!(state.projector.read().summary(), replayed.summary());
    state
}

fn meta() -> CommandMeta {
    CommandMeta::new("test", "snapshot")
}

/// A shipper with `n` shipments and a partner with a shipper-wide grant; returns ids.
async fn populate(
    state: &AppState,
    n: usize,
) -> (ShipperId, PartnerId, Vec<ShipmentId>, ConsentId) {
    let name = |s: &str| DisplayName::parse(s).expect("name");
    let (shipper, _) = register(
        state,
        CreatePrincipal {
            role: Role::Shipper,
            name: name("Shop"),
            partner: None,
        },
        meta(),
    )
    .await
    .expect("shipper");
    let profile = PartnerProfile {
        kind: PartnerKind::Insurer,
        country: CountryCode::parse("DE").expect("DE"),
        dpa_ref: DpaRef::parse("DPA").expect("dpa"),
    };
    let (partner, _) = register(
        state,
        CreatePrincipal {
            role: Role::Partner,
            name: name("Insure"),
            partner: Some(profile),
        },
        meta(),
    )
    .await
    .expect("partner");
    let shipper = shipper.id.as_shipper();
    let mut shipments = Vec::new();
    for i in 0..n {
        let id = ShipmentId::from_uuid(Uuid::now_v7());
        let command = ShipmentCommand::RegisterShipment {
            id,
            shipper,
            carrier: CarrierCode::parse(if i % 2 == 0 { "DHL" } else { "UPS" }).expect("carrier"),
            tracking_number: TrackingNumber::parse(format!("T{i}")).expect("tracking"),
            destination_country: CountryCode::parse("FR").expect("FR"),
            recipient_ref: None,
        };
        state
            .shipments
            .execute(&id.to_string(), command, meta())
            .await
            .expect("shipment");
        shipments.push(id);
    }
    let consent = grant(state, shipper, partner.id.as_partner(), Some("DHL")).await;
    (shipper, partner.id.as_partner(), shipments, consent)
}

async fn grant(
    state: &AppState,
    shipper: ShipperId,
    partner: PartnerId,
    carrier: Option<&str>,
) -> ConsentId {
    let id = ConsentId::from_uuid(Uuid::now_v7());
    let command = ConsentCommand::GrantConsent {
        id,
        shipper,
        partner,
        scope: ConsentScope::Shipper {
            carriers: carrier.map(|c| {
                NonEmptySet::new(vec![CarrierCode::parse(c).expect("carrier")]).expect("set")
            }),
            destination_countries: None,
        },
        purposes: NonEmptySet::new(vec![Purpose::InsuranceClaim]).expect("set"),
        data_categories: NonEmptySet::new(vec![DataCategory::StatusEvents]).expect("set"),
        legal_basis: LegalBasis::Contract,
        dpa_ref: None,
        valid_from: None,
        valid_until: None,
        origin_request: None,
    };
    state
        .consents
        .execute(&id.to_string(), command, meta())
        .await
        .expect("grant");
    id
}

fn allowed(state: &AppState, partner: PartnerId, shipment: ShipmentRef) -> bool {
    let verdict = state.projector.read().access.decide(
        partner,
        &shipment,
        Purpose::InsuranceClaim,
        Categories::of(&[DataCategory::StatusEvents]),
        chrono::Utc::now(),
    );
    matches!(
        verdict.outcome(),
        consent_ledger_projections::decider::Outcome::Allowed { .. }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_the_snapshot_and_replays_only_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let state = open(dir.path()).await;
    let (shipper, partner, shipments, dhl_only) = populate(&state, 50).await;
    // A token admitted from the credentials table, as a first authentication admits it.
    let digest = "ab".repeat(32);
    let issued_at = state.projector.read().principals[&shipper.into()].credential_at;
    assert!(state
        .projector
        .admit_credential(shipper.into(), &digest, issued_at));
    let snapshot = options(dir.path()).snapshot_path();
    let at = state
        .projector
        .save_snapshot(&snapshot)
        .await
        .expect("save");
    assert_eq!(at, state.store.next_position().await.expect("size"));
    // After the snapshot: a wider grant, then the first one revoked.
    let wide = grant(&state, shipper, partner, None).await;
    revoke(&state, shipper, dhl_only).await;
    let before = state.projector.read().summary();
    drop(state);

    let state = reopened(dir.path()).await;
    assert_eq!(state.projector.read().summary(), before);
    // Shipments from the snapshot resolve by id and by tracking number; consents after it count.
    for (i, id) in shipments.iter().enumerate() {
        assert!(
            allowed(&state, partner, ShipmentRef::Id(*id)),
            "shipment {i} by id"
        );
    }
    let by_tracking = ShipmentRef::Tracking(
        CarrierCode::parse("ups").expect("c"),
        TrackingNumber::parse("t1").expect("t"),
    );
    assert!(allowed(&state, partner, by_tracking));
    let model = state.projector.read();
    assert!(model.consents[&dhl_only].revocation.is_some());
    assert!(model.consents[&wide].revocation.is_none());
    // Credentials admitted before the snapshot, and where each was issued, are kept in it.
    assert_eq!(
        model.principal_by_token(&digest).map(|p| p.id),
        Some(shipper.into())
    );
    assert_eq!(model.principals[&shipper.into()].credential_at, issued_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_log_is_ignored() {
    let a = tempfile::tempdir().expect("dir");
    let b = tempfile::tempdir().expect("dir");
    let state_a = open(a.path()).await;
    populate(&state_a, 5).await;
    state_a
        .projector
        .save_snapshot(&options(a.path()).snapshot_path())
        .await
        .expect("save");
    let state_b = open(b.path()).await;
    populate(&state_b, 7).await;
    drop((state_a, state_b));
    std::fs::copy(
        options(a.path()).snapshot_path(),
        options(b.path()).snapshot_path(),
    )
    .expect("copy");
    let state_b = open(b.path()).await;
    let replayed = Projector::replay(&state_b.store, |_| {})
        .await
        .expect("replay");
    assert_eq!(state_b.projector.read().summary(), replayed.summary());
    assert_eq!(replayed.summary().shipments, 7);
}

async fn revoke(state: &AppState, shipper: ShipperId, consent: ConsentId) {
    let revoke = ConsentCommand::RevokeConsent {
        revoked_by: shipper.into(),
        reason: Reason::parse("ended").expect("reason"),
    };
    state
        .consents
        .execute(&consent.to_string(), revoke, meta())
        .await
        .expect("revoke");
}

/// Decisions about `shipments` (and one unknown shipment), recorded as the API records them.
async fn decide(state: &AppState, partner: PartnerId, shipments: &[ShipmentId]) {
    use consent_ledger_app::decide::{decide_and_record, Question};
    let unknown = ShipmentId::from_uuid(Uuid::now_v7());
    let questions: Vec<Question> = shipments
        .iter()
        .chain([&unknown])
        .map(|id| Question {
            partner,
            shipment: ShipmentRef::Id(*id),
            purpose: Purpose::InsuranceClaim,
            requested: Categories::of(&[DataCategory::StatusEvents]),
            on_behalf_of: None,
            channel: None,
        })
        .collect();
    let caller = consent_ledger_app::auth::Caller::of(&state.projector.read(), partner.into())
        .expect("the partner is registered");
    decide_and_record(state, &caller, &questions, meta())
        .await
        .expect("decisions recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_passes_over_decisions_and_ends_at_the_log_size() {
    let dir = tempfile::tempdir().expect("dir");
    let state = open(dir.path()).await;
    let (shipper, partner, shipments, dhl_only) = populate(&state, 20).await;
    // Decisions between the other events, and as the log's last events.
    decide(&state, partner, &shipments[..5]).await;
    grant(&state, shipper, partner, None).await;
    decide(&state, partner, &shipments[5..]).await;
    revoke(&state, shipper, dhl_only).await;
    decide(&state, partner, &shipments).await;

    let size = state.store.next_position().await.expect("size");
    let mut reached = Vec::new();
    let replayed = Projector::replay(&state.store, |p| reached.push(p))
        .await
        .expect("replay");
    assert_eq!(replayed.next_position(), size);
    assert_eq!(reached.last(), Some(&size), "progress ends at the log size");
    assert_eq!(replayed.summary(), state.projector.read().summary());
    assert_eq!(replayed.summary().log_size, size.get());
    assert!(replayed.consents[&dhl_only].revocation.is_some());
}

/// Carrier authorizations (SPEC §16) live in the snapshot's views: a restart rebuilds their
/// index, their DPA's window, the partner's register DPA and a shipper's objection from it,
/// and applies a withdrawal recorded after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizations_dpas_and_objections_outlive_a_snapshot() {
    use consent_ledger_domain::authorization::{
        AuthorizationCommand, AuthorizationScope, AuthorizationTerms,
    };
    use consent_ledger_domain::dpa::{DpaCommand, DpaTerms};
    use consent_ledger_domain::values::{AuthorizationId, DpaId, DpaRole};
    use consent_ledger_projections::decider::{DenyReason, Verdict};

    let dir = tempfile::tempdir().expect("dir");
    let state = open(dir.path()).await;
    // Shipments alternate DHL and UPS; the partner's consent covers DHL only.
    let (shipper, partner, shipments, _) = populate(&state, 4).await;
    let now = chrono::Utc::now();
    let dpa = DpaId::from_uuid(Uuid::now_v7());
    let terms = DpaTerms {
        partner,
        reference: DpaRef::parse("DPA").expect("reference"),
        role: DpaRole::Processor,
        signed_at: now - chrono::Duration::days(1),
        valid_until: None,
        sub_processors: Vec::new(),
        transfer_mechanism: None,
        document_sha256: None,
    };
    state
        .dpas
        .execute(
            &dpa.to_string(),
            DpaCommand::Register { id: dpa, terms },
            meta(),
        )
        .await
        .expect("dpa");
    let authorization = AuthorizationId::from_uuid(Uuid::now_v7());
    let terms = AuthorizationTerms {
        partner,
        dpa,
        scope: AuthorizationScope {
            carriers: Some(
                NonEmptySet::new(vec![CarrierCode::parse("UPS").expect("c")]).expect("s"),
            ),
            destination_countries: None,
            shipper_ids: None,
        },
        purposes: NonEmptySet::new(vec![Purpose::InsuranceClaim]).expect("set"),
        data_categories: NonEmptySet::new(vec![DataCategory::StatusEvents]).expect("set"),
        legal_basis: LegalBasis::LegitimateInterests,
        valid_from: now - chrono::Duration::hours(1),
        valid_until: None,
    };
    let execute = |state: &Arc<AppState>, command| {
        let state = state.clone();
        async move {
            state
                .authorizations
                .execute(&authorization.to_string(), command, meta())
                .await
                .expect("authorization command")
        }
    };
    execute(
        &state,
        AuthorizationCommand::Grant {
            id: authorization,
            terms,
        },
    )
    .await;
    execute(
        &state,
        AuthorizationCommand::Object {
            shipper,
            reason: Reason::parse("no relays for us").expect("reason"),
        },
    )
    .await;
    let snapshot = options(dir.path()).snapshot_path();
    state
        .projector
        .save_snapshot(&snapshot)
        .await
        .expect("save");
    drop(state);

    let verdict = |state: &AppState, shipment: ShipmentId| {
        state.projector.read().access.decide(
            partner,
            &ShipmentRef::Id(shipment),
            Purpose::InsuranceClaim,
            Categories::of(&[DataCategory::StatusEvents]),
            chrono::Utc::now(),
        )
    };
    let (dhl, ups) = (shipments[0], shipments[1]);
    let state = open(dir.path()).await;
    let objected = verdict(&state, ups);
    assert_eq!(
        objected.outcome(),
        consent_ledger_projections::decider::Outcome::Denied(DenyReason::ShipperObjected)
    );
    assert_eq!(objected.authorization(), Some(authorization));
    match verdict(&state, dhl) {
        Verdict::Allowed { dpa: relied, .. } => {
            assert_eq!(
                relied,
                Some(dpa),
                "the consent read names the partner's DPA"
            )
        }
        denied => panic!("the DHL consent allows: {denied:?}"),
    }
    execute(&state, AuthorizationCommand::WithdrawObjection { shipper }).await;
    drop(state);

    let state = reopened(dir.path()).await;
    match verdict(&state, ups) {
        Verdict::Allowed {
            authorizations,
            consents,
            dpa: relied,
            ..
        } => {
            assert_eq!(authorizations, vec![authorization]);
            assert!(consents.is_empty());
            assert_eq!(relied, Some(dpa));
        }
        denied => panic!("the withdrawal after the snapshot applies: {denied:?}"),
    }
}
