//! Fuzz-style property tests of the request-body parser on stable Rust (the security issue): for
//! every body the API takes, arbitrary bytes and valid bodies with one value replaced by an
//! arbitrary JSON value never panic, and a refusal is a 400 (not JSON, not an object) or a 422
//! naming the bad field — the problem+json a client can act on.

use actix_web::ResponseError;
use consent_ledger_api::body::parse_json;
use consent_ledger_api::problem::ApiError;
use consent_ledger_api::shapes::{NoBody, ReasonBody};
use consent_ledger_app::consents::GrantConsent;
use consent_ledger_app::decide::{DecisionBatch, DecisionRequest};
use consent_ledger_app::principals::CreatePrincipal;
use consent_ledger_app::requests::SubmitRequest;
use consent_ledger_app::shipments::RegisterShipment;
use consent_ledger_app::AppError;
use proptest::prelude::*;
use serde_json::{json, Value};

const KINDS: [&str; 8] = [
    "principal",
    "shipment",
    "consent",
    "request",
    "decision",
    "batch",
    "reason",
    "none",
];

/// A valid body of each kind (in the order of [`KINDS`]), to damage one value of.
fn valid_bodies() -> Vec<Value> {
    let id = "0190d5f6-0000-7000-8000-000000000001";
    vec![
        json!({"role": "partner", "name": "Insure",
            "partner": {"kind": "insurer", "country": "DE", "dpa_ref": "DPA-1"}}),
        json!({"carrier": "DHL", "tracking_number": "JJD1",
            "destination_country": "DE", "recipient_ref": "crm:1", "shipper_id": id}),
        json!({"partner_id": id, "scope": {"type": "shipments", "shipment_ids": [id]},
            "purposes": ["insurance_claim"], "data_categories": ["status_events"],
            "legal_basis": "contract", "valid_until": "2027-01-01T00:00:00Z"}),
        json!({"shipper_id": id, "scope": {"type": "shipper", "carriers": ["DHL"]},
            "purposes": ["insurance_claim"], "data_categories": ["status_events"],
            "legal_basis": "contract", "justification": "claims"}),
        json!({"shipment_id": id, "purpose": "insurance_claim",
            "data_categories": ["status_events"], "on_behalf_of": id, "at_least_as_fresh": 3}),
        json!({"items": [{"carrier": "DHL", "tracking_number": "JJD1",
            "purpose": "insurance_claim", "data_categories": ["location"]}]}),
        json!({"reason": "contract ended"}),
        json!({}),
    ]
}

/// Parses `body` as the kind named; `Ok(())` if it parsed.
fn parse(kind: &str, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        "principal" => parse_json::<CreatePrincipal>(body).map(drop),
        "shipment" => parse_json::<RegisterShipment>(body).map(drop),
        "consent" => parse_json::<GrantConsent>(body).map(drop),
        "request" => parse_json::<SubmitRequest>(body).map(drop),
        "decision" => parse_json::<DecisionRequest>(body).map(drop),
        "batch" => parse_json::<DecisionBatch>(body).map(drop),
        "reason" => parse_json::<ReasonBody>(body).map(drop),
        _ => parse_json::<NoBody>(body).map(drop),
    }
}

/// A refusal a client can act on: 400 for a body that is no JSON object, 422 naming a field.
fn assert_actionable(kind: &str, body: &[u8], refused: &ApiError) {
    let status = refused.status_code().as_u16();
    match &refused.0 {
        AppError::InvalidField { field, detail } => {
            assert_eq!(status, 422, "{kind}");
            assert!(
                !field.is_empty() && !detail.is_empty(),
                "{kind}: {refused:?}"
            );
        }
        AppError::MalformedBody { .. } => assert_eq!(status, 400, "{kind}"),
        other => panic!("{kind}: {other:?} for {}", String::from_utf8_lossy(body)),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("")),
        Just(json!("=cmd|' /C calc'!A0")),
        Just(json!("9999-12-31T23:59:59-14:00")),
        Just(json!(u64::MAX)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value inside `v` (object keys and array indexes).
fn paths(v: &Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            let mut p = at.clone();
            p.push(k.clone());
            paths(x, p, out)
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| {
            let mut p = at.clone();
            p.push(i.to_string());
            paths(x, p, out)
        }),
        _ => {}
    }
}

fn replace(v: &mut Value, path: &[String], with: Value) {
    match path.split_first() {
        None => *v = with,
        Some((head, rest)) => match v {
            Value::Object(o) => {
                if let Some(x) = o.get_mut(head) {
                    replace(x, rest, with)
                }
            }
            Value::Array(a) => {
                if let Some(x) = head.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    replace(x, rest, with)
                }
            }
            _ => {}
        },
    }
}

#[test]
fn every_valid_body_parses() {
    for (kind, body) in KINDS.iter().zip(valid_bodies()) {
        let text = serde_json::to_vec(&body).expect("json");
        if let Err(e) = parse(kind, &text) {
            panic!("{kind}: {e:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_are_parsed_or_refused_with_an_actionable_problem(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        kind in prop::sample::select(KINDS.to_vec()),
    ) {
        if let Err(refused) = parse(kind, &bytes) {
            assert_actionable(kind, &bytes, &refused);
        }
    }

    #[test]
    fn a_valid_body_with_one_value_replaced_is_parsed_or_refused_naming_a_field(
        which in 0..KINDS.len(),
        at in any::<prop::sample::Index>(),
        with in json_value(),
        extra in prop::option::of((".{1,8}", json_value())),
    ) {
        let kind = KINDS[which];
        let mut body = valid_bodies().swap_remove(which);
        let mut all = Vec::new();
        paths(&body, Vec::new(), &mut all);
        let path = at.get(&all).clone();
        replace(&mut body, &path, with);
        if let (Some((name, value)), Some(o)) = (extra, body.as_object_mut()) {
            o.insert(name, value);
        }
        let text = serde_json::to_vec(&body).expect("json");
        if let Err(refused) = parse(kind, &text) {
            assert_actionable(kind, &text, &refused);
        }
    }
}
