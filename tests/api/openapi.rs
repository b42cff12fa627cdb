//! `/openapi.json` documents every error answer an operation can give, as the handlers give
//! it: RFC 9457 problem+json with the shared `Problem` schema, 401 and 429 (with `Retry-After`)
//! for every authenticated operation, 400/408/413/422 for every one that reads a body, ids as
//! UUIDs, and the real bounds of values. `.ci/schemathesis.sh` checks the running binary
//! against the same document; these tests keep the document from losing what it checks.

use serde_json::Value;

use crate::helpers::spawn_app;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every operation of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// Follows a `$ref` inside the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"))
        }
        None => value,
    }
}

async fn document() -> Value {
    let app = spawn_app().await;
    let doc = app.get_anonymous("/openapi.json").await;
    assert_eq!(doc.status, actix_web::http::StatusCode::OK);
    doc.body
}

#[actix_web::test]
async fn every_error_answer_is_problem_json_with_the_problem_schema() {
    let doc = document().await;
    let problem = &doc["components"]["schemas"]["Problem"];
    for field in ["type", "title", "status", "detail"] {
        assert!(
            problem["required"]
                .as_array()
                .is_some_and(|r| r.contains(&Value::from(field))),
            "Problem.{field} is not required"
        );
    }
    assert!(problem["properties"]["field"].is_object());
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let code: u16 = status.parse().expect("numeric status");
            if code < 400 {
                continue;
            }
            let response = resolve(&doc, response);
            let content = response["content"].as_object().expect("content");
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                vec!["application/problem+json"],
                "{method} {path} {status}"
            );
            assert_eq!(
                content["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path} {status}"
            );
        }
    }
}

#[actix_web::test]
async fn authenticated_operations_answer_401_and_429_with_retry_after() {
    let doc = document().await;
    let mut authenticated = 0;
    for (method, path, op) in operations(&doc) {
        let responses = &op["responses"];
        if op["security"].is_null() {
            // Anyone may ask: no token, so no 401 and no per-principal limit.
            assert!(responses["401"].is_null(), "{method} {path}");
            continue;
        }
        authenticated += 1;
        for status in ["401", "429", "503"] {
            assert!(
                responses[status].is_object(),
                "{method} {path} lacks {status}"
            );
        }
        let too_many = resolve(&doc, &responses["429"]);
        assert_eq!(
            too_many["headers"]["Retry-After"]["schema"]["type"], "integer",
            "{method} {path}"
        );
        let unauthorized = resolve(&doc, &responses["401"]);
        assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
    }
    assert!(
        authenticated >= 30,
        "only {authenticated} authenticated operations"
    );
}

#[actix_web::test]
async fn operations_that_read_a_body_document_its_refusals_and_the_idempotency_key() {
    let doc = document().await;
    for (method, path, op) in operations(&doc) {
        if op["requestBody"].is_null() {
            continue;
        }
        // Writes nothing to the log and is idempotent by content: an update sent again (same
        // shipment, status and time) is kept once, so it takes no Idempotency-Key and has no
        // conflict to report.
        let by_content = op["operationId"] == "ingest_tracking_events";
        for status in ["400", "408", "413", "422"] {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} lacks {status}"
            );
        }
        if by_content {
            continue;
        }
        for status in ["400", "408", "413", "422"] {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} lacks {status}"
            );
        }
        let key = op["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "Idempotency-Key"))
            .unwrap_or_else(|| panic!("{method} {path}: no Idempotency-Key"));
        assert_eq!(key["in"], "header");
        assert_eq!(key["schema"]["type"], "string", "{method} {path}");
        assert_eq!(key["schema"]["maxLength"], 255);
        assert!(
            op["responses"]["409"].is_object(),
            "{method} {path} lacks 409"
        );
    }
}

#[actix_web::test]
async fn ids_are_uuids_operation_ids_are_unique_and_bounds_are_stated() {
    let doc = document().await;
    let mut ids = std::collections::BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
        for parameter in op["parameters"].as_array().into_iter().flatten() {
            let schema = resolve(&doc, &parameter["schema"]);
            assert_ne!(
                schema["type"],
                serde_json::json!(["string", "null"]),
                "{method} {path} {}: a parameter is never null",
                parameter["name"]
            );
            let name = parameter["name"].as_str().unwrap_or_default();
            if name == "message_id" {
                // A webhook message's id (`webhook-id`), not a UUID.
                assert_eq!(schema["pattern"], "^msg_[0-9a-f]{32}$", "{method} {path}");
            } else if name == "id" || name.ends_with("_id") {
                assert_eq!(schema["format"], "uuid", "{method} {path} {name}");
            }
            if name == "limit" {
                assert_eq!(parameter["schema"]["minimum"], 1, "{method} {path}");
                assert_eq!(parameter["schema"]["maximum"], 1000, "{method} {path}");
            }
        }
        if path.contains("{id}") {
            assert!(op["responses"]["404"].is_object(), "{method} {path}");
            assert!(op["responses"]["422"].is_object(), "{method} {path}");
        }
    }
    let schemas = &doc["components"]["schemas"];
    let items = &schemas["DecisionBatch"]["properties"]["items"];
    assert_eq!(
        (items["minItems"].clone(), items["maxItems"].clone()),
        (1.into(), 1000.into())
    );
    for (name, schema) in schemas.as_object().expect("schemas") {
        if name.starts_with("NonEmptySet_") {
            assert_eq!(schema["minItems"], 1, "{name}");
        }
    }
    for (name, max) in [
        ("CarrierCode", 32),
        ("TrackingNumber", 64),
        ("RecipientRef", 128),
        ("DisplayName", 200),
        ("DpaRef", 100),
        ("Reason", 2000),
    ] {
        assert_eq!(schemas[name]["maxLength"], max, "{name}");
        assert_eq!(schemas[name]["minLength"], 1, "{name}");
        assert!(schemas[name]["pattern"].is_string(), "{name}");
    }
    for (name, count) in [
        ("Role", 6),
        ("PartnerKind", 10),
        ("Purpose", 9),
        ("DataCategory", 4),
        ("LegalBasis", 4),
        ("CountryCode", 250),
    ] {
        assert_eq!(
            schemas[name]["enum"].as_array().map(Vec::len),
            Some(count),
            "{name}"
        );
    }
    for id in [
        "ShipmentId",
        "ConsentId",
        "PartnerId",
        "ShipperId",
        "PrincipalId",
    ] {
        assert_eq!(schemas[id]["format"], "uuid", "{id}");
    }
}

/// SPEC §12: a personal field reads its value or `{"erased":true}`; the document says both, so
/// that a client (and schemathesis) accepts an erased shipment's answer.
#[actix_web::test]
async fn personal_fields_document_their_erased_form() {
    let doc = document().await;
    let view = &doc["components"]["schemas"]["ShipmentView"]["properties"];
    for field in ["tracking_number", "recipient_ref"] {
        let alternatives = view[field]["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {}", view[field]));
        assert!(
            alternatives
                .iter()
                .any(|s| s["properties"]["erased"]["type"] == "boolean"),
            "{field}: {}",
            view[field]
        );
        assert!(
            alternatives.iter().any(|s| s["type"] == "string"),
            "{field}: {}",
            view[field]
        );
    }
}

/// SPEC §14: the document describes the webhook a subscribed partner receives, and its schema
/// names every field of the body the fan-out renders.
#[actix_web::test]
async fn the_tracking_webhook_a_partner_receives_is_described() {
    let doc = document().await;
    let hook = &doc["webhooks"]["tracking.updated"]["post"];
    let schema = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .expect("a schema reference");
    let name = schema.trim_start_matches("#/components/schemas/");
    let message = &doc["components"]["schemas"][name];
    for field in ["type", "timestamp", "data"] {
        assert!(message["properties"].get(field).is_some(), "{message}");
    }
    let text = doc["components"]["schemas"].to_string();
    for field in [
        "subscription_id",
        "decision_id",
        "shipment_id",
        "consent_ids",
        "update",
        "subscription_ended",
    ] {
        assert!(
            text.contains(&format!("\"{field}\"")),
            "{field} undocumented"
        );
    }
}
