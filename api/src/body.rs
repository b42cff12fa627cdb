//! Reading request input: a size-limited body parsed with the path of any bad field, and query
//! strings and path ids that name the parameter at fault.

use std::time::Duration;

use actix_web::web;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use consent_ledger_app::AppError;

use crate::problem::ApiError;

/// Largest accepted request body. A batch of 1,000 decisions fits well within it.
pub const BODY_LIMIT: usize = 512 * 1024;

/// How long a client has to send a request's head (the server's `client_request_timeout`),
/// and then its whole body: a request still incomplete after that is answered 408 and its
/// connection closed, so that clients sending slowly, or not at all, cannot hold connections
/// and handlers (security issue: a half-sent body was waited for without end).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the whole body, refusing one over [`BODY_LIMIT`] without buffering the rest, and one
/// not received whole within [`REQUEST_TIMEOUT`] (actix's own limit covers the head only; a
/// client announcing a `Content-Length` it never sends would hold the handler for ever).
pub async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    actix_web::rt::time::timeout(REQUEST_TIMEOUT, read_all(payload))
        .await
        .map_err(|_| {
            ApiError(AppError::BodyTimeout {
                seconds: REQUEST_TIMEOUT.as_secs(),
            })
        })?
}

async fn read_all(mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::from(AppError::MalformedBody {
                detail: e.to_string(),
            })
        })?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(ApiError(AppError::PayloadTooLarge { limit: BODY_LIMIT }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body into `T`. A syntax error is a 400; a wrong, missing or unknown field is
/// a 422 naming the field by its path (`scope.shipment_ids[0]`). An empty body reads as `{}`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    // serde would read a struct from a JSON array by position; the API takes objects only.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
            return Err(ApiError::invalid("body", "expected a JSON object"));
        }
        _ => {
            return Err(ApiError::from(AppError::MalformedBody {
                detail: "expected a JSON object".into(),
            }))
        }
    }
    // Read plainly first: tracking every field's path made parsing a batch of 1,000 decisions
    // 2.3 times as slow (BENCHMARKS.md), and only a refusal needs the path. A body refused here
    // is read again, with it, for the problem that names the field.
    let mut plain = serde_json::Deserializer::from_slice(body);
    if let Ok(value) = T::deserialize(&mut plain) {
        if plain.end().is_ok() {
            return Ok(value);
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = strip_position(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::invalid(field_of(&path, &message), message)
            }
            // serde_json reports some type mismatches as syntax (a number where a name of an
            // enum is expected: "expected ident"); the body is JSON all the same, and the
            // caller is told which field holds a value it does not take (SPEC §10).
            serde_json::error::Category::Syntax
                if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() =>
            {
                ApiError::invalid(
                    field_of(&path, &message),
                    "not a value this field takes (see /openapi.json)",
                )
            }
            _ => ApiError::from(AppError::MalformedBody {
                detail: inner.to_string(),
            }),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::from(AppError::MalformedBody {
            detail: e.to_string(),
        })
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more to an API caller.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The field an error is about: its path, extended by the name serde quotes for unknown and
/// missing fields (which are reported at the enclosing object).
fn field_of(path: &str, message: &str) -> String {
    let quoted = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    // An unknown field is already the last segment of the path; a missing one is not.
    let field = match (path, quoted) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "body".to_owned(),
        (p, Some(name)) if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
        (p, Some(name)) => format!("{p}.{name}"),
        (p, None) => p.to_owned(),
    };
    // A member named "" has no name to give: the object holding it is the field.
    match field.trim_end_matches('.') {
        "" => "body".to_owned(),
        named => named.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        a: u8,
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        b: u8,
    }

    fn field(body: &str) -> String {
        match parse_json::<Probe>(body.as_bytes()) {
            Err(ApiError(AppError::InvalidField { field, .. })) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(r#"{"a": 300}"#), "a");
        // Found by the body property tests: an unknown member named "".
        assert_eq!(field(r#"{"": 1}"#), "body");
        assert_eq!(field(r#"{"a": 1, "zzz": 1}"#), "zzz");
        assert_eq!(field(r#"[1, null]"#), "body");
        assert_eq!(field(r#"{"a": 1, "inner": {"b": 1, "c": 2}}"#), "inner.c");
        assert_eq!(field(r#"{"inner": null}"#), "a");
    }

    #[test]
    fn a_body_that_fits_is_read_plainly_whole() {
        let probe = parse_json::<Probe>(br#" {"a": 7, "inner": {"b": 8}} "#).expect("a body");
        assert_eq!((probe.a, probe.inner.map(|i| i.b)), (7, Some(8)));
        assert_eq!(field(r#"{"a": 1, "inner": {"b": "x"}}"#), "inner.b");
    }

    #[test]
    fn syntax_errors_are_malformed_bodies() {
        assert!(matches!(
            parse_json::<Probe>(b"{\"a\": "),
            Err(ApiError(AppError::MalformedBody { .. }))
        ));
        assert!(matches!(
            parse_json::<Probe>(b"{\"a\": 1} x"),
            Err(ApiError(AppError::MalformedBody { .. }))
        ));
    }
}
