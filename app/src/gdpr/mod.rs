//! The GDPR views (SPEC §7): `GET /v1/audit/access` (who read which parcel,
//! when, why, on which consent), `GET /v1/audit/dsar` (Art. 15: a data subject's recipients),
//! `GET /v1/audit/ropa` (Art. 30: per partner, what it processes and how often).
//!
//! Every view answers as of the log's size now (or `at_least_as_fresh`), so a decision whose
//! answer came back is in the next view: from the audit projection after catching it up, or,
//! when it is far behind, from its rows and the log after them (`tail.rs`). Who
//! sees what follows SPEC §2: privacy officers, regulators and admins everything, a shipper
//! its own shipments' records, a partner its own decisions; another tenant's shipment is 404.
//!
//! Each view is a module of its own (`access`, `dsar`, `ropa`); what they share is here: who
//! sees all, the formats, times and cursors of a query, and CSV written safe for a spreadsheet.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use consent_ledger_projections::model::ConsentStatus;
use consent_ledger_store::Position;
use serde::Serialize;

mod access;
mod dsar;
pub mod filter;
mod ropa;
mod tail;

pub use access::{
    access_filter, access_page, access_params, access_view, AccessPage, AccessRecord, ChainLink,
    ConsentLink,
};
pub use dsar::{
    dsar_view, Dsar, DsarAccess, DsarDenied, DsarErasure, DsarPlan, DsarRecipient, DsarShipment,
};
pub use ropa::{build_ropa, ropa_view, Ropa, RopaEntry};

use crate::auth::Caller;
use crate::error::AppError;
use crate::query::QueryParams;
use crate::state::AppState;

/// Who sees every tenant's records (SPEC §2): privacy officers and regulators. The operator's
/// admin registers principals and rotates keys; it reads no one's access history.
fn sees_all(caller: &Caller) -> bool {
    caller.is_auditor()
}

/// How a view is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Ndjson,
}

fn format(q: &QueryParams, allowed: &[Format]) -> Result<Format, AppError> {
    let given: Option<String> = q.get("format")?;
    let f = match given.as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("ndjson") => Format::Ndjson,
        Some(other) => {
            return Err(AppError::invalid(
                "format",
                format!("unknown value `{other}`; expected one of json, csv, ndjson"),
            ))
        }
    };
    if !allowed.contains(&f) {
        return Err(AppError::invalid("format", "not offered by this view"));
    }
    Ok(f)
}

fn time_param(q: &QueryParams, name: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    let raw: Option<String> = q.get(name)?;
    raw.map(|s| crate::query::rfc3339_time(&s).map_err(|e| AppError::invalid(name, e)))
        .transpose()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn time_of(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// What a view answers up to: every event before `at_least_as_fresh + 1` if given, else
/// before the log's size now.
async fn fresh_target(state: &AppState, q: &QueryParams) -> Result<Position, AppError> {
    Ok(match q.get::<u64>("at_least_as_fresh")? {
        Some(p) => {
            let size = state.store.next_position().await?;
            if p >= size.get() {
                return Err(AppError::invalid(
                    "at_least_as_fresh",
                    "no event at this position yet",
                ));
            }
            Position::new(p + 1)
        }
        None => state.store.next_position().await?,
    })
}

/// A page cursor, opaque to the caller: the last position returned, and for a time window the
/// span its first page found ([`Span`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    after: u64,
    span: Option<Span>,
}

/// What the first page of a time window found, so that the next ones read no more of the
/// log than it: the last projected position of the window's decisions then, and the position
/// the projection had applied up to then (every decision of the window after it is new).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    last: Option<u64>,
    applied: u64,
}

fn encode_cursor(cursor: Cursor) -> String {
    B64URL.encode(match cursor.span {
        None => cursor.after.to_string(),
        Some(Span { last, applied }) => format!(
            "{}.{}.{applied}",
            cursor.after,
            last.map(|l| l.to_string()).unwrap_or_default()
        ),
    })
}

fn decode_cursor(raw: &str) -> Result<Cursor, AppError> {
    let text = B64URL
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let parts: Vec<&str> = text
        .as_deref()
        .map_or(Vec::new(), |t| t.split('.').collect());
    let number = |n: &str| n.parse::<u64>().ok();
    let cursor = match parts.as_slice() {
        [after] => number(after).map(|after| Cursor { after, span: None }),
        [after, last, applied] => {
            number(after)
                .zip(number(applied))
                .and_then(|(after, applied)| {
                    let last = if last.is_empty() {
                        None
                    } else {
                        Some(number(last)?)
                    };
                    Some(Cursor {
                        after,
                        span: Some(Span { last, applied }),
                    })
                })
        }
        _ => None,
    };
    cursor.ok_or_else(|| AppError::invalid("after", "not a cursor this API returned"))
}

/// A list column of a GDPR row (comma-separated, as the projector wrote it), each item parsed:
/// a value that does not parse is an error naming the row, never dropped.
fn list<T>(position: u64, column: &str, text: &str) -> Result<Vec<T>, AppError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse().map_err(|e| {
                AppError::internal(anyhow::anyhow!(
                    "the GDPR row of position {position} holds a bad {column} item: {e}"
                ))
            })
        })
        .collect()
}

fn status_text(s: Option<ConsentStatus>) -> &'static str {
    match s {
        Some(ConsentStatus::Active) => "active",
        Some(ConsentStatus::Revoked) => "revoked",
        Some(ConsentStatus::Expired) => "expired",
        Some(ConsentStatus::NotYetValid) => "not_yet_valid",
        None => "unknown",
    }
}

/// A list as one CSV cell, `;`-separated.
fn joined<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(";")
}

/// RFC 4180 CSV (CRLF line ends, quoting where needed) with a header row. Every cell that a
/// spreadsheet would take for a formula is written as text (see [`formula_safe`]).
pub fn csv_text<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = [String; N]>,
) -> Result<String, AppError> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header).map_err(AppError::internal)?;
    for row in rows {
        w.write_record(row.iter().map(|cell| formula_safe(cell.as_str())))
            .map_err(AppError::internal)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    String::from_utf8(bytes).map_err(AppError::internal)
}

/// Characters that make a spreadsheet read a cell as a formula when they come first.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell`, with a `'` before it if it starts like a formula (OWASP "CSV Injection"): a privacy
/// officer opens these files in a spreadsheet, and a partner's name such as
/// `=HYPERLINK("https://…")` is the partner's own text, not the officer's. The quote makes
/// the spreadsheet show the text as it is; a reader of the CSV removes one leading `'` from
/// such a cell to get the value back.
fn formula_safe(cell: &str) -> std::borrow::Cow<'_, [u8]> {
    if cell.starts_with(FORMULA_STARTS) {
        std::borrow::Cow::Owned([b"'", cell.as_bytes()].concat())
    } else {
        std::borrow::Cow::Borrowed(cell.as_bytes())
    }
}

fn ndjson<T: Serialize>(items: &[T]) -> Result<String, AppError> {
    let mut out = String::new();
    for item in items {
        out.push_str(&serde_json::to_string(item).map_err(AppError::internal)?);
        out.push('\n');
    }
    Ok(out)
}

/// A view rendered in the format asked for.
#[derive(Debug)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
    /// For a page of access records: the cursor of the next page, if any.
    pub next_after: Option<String>,
}

const CSV_TYPE: &str = "text/csv; charset=utf-8; header=present";

fn json_text<T: Serialize>(value: &T) -> Result<String, AppError> {
    serde_json::to_string(value).map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written_and_nothing_else_reads_as_one() {
        for cursor in [
            Cursor {
                after: 7,
                span: None,
            },
            Cursor {
                after: 7,
                span: Some(Span {
                    last: Some(9),
                    applied: 12,
                }),
            },
            Cursor {
                after: 0,
                span: Some(Span {
                    last: None,
                    applied: 12,
                }),
            },
        ] {
            assert_eq!(decode_cursor(&encode_cursor(cursor)).ok(), Some(cursor));
        }
        // What the pages wrote before a time window's span was kept.
        assert_eq!(
            decode_cursor(&B64URL.encode("41")).ok(),
            Some(Cursor {
                after: 41,
                span: None
            })
        );
        for raw in ["", "x", "1.2", "1.2.3.4", "1.x.3", "-1", "1..", ".1.2"] {
            assert!(
                decode_cursor(&B64URL.encode(raw)).is_err(),
                "{raw:?} read as a cursor"
            );
        }
        assert!(decode_cursor("%%%").is_err());
    }

    #[test]
    fn cells_that_start_like_formulas_are_written_as_text() {
        let rows = [
            [
                "=HYPERLINK(\"https://x.example\",\"open\")".to_owned(),
                "plain".to_owned(),
            ],
            ["+1".to_owned(), "-2".to_owned()],
            ["@SUM(A1)".to_owned(), "\tTab".to_owned()],
            ["\rCR".to_owned(), "a=b".to_owned()],
        ];
        let text = csv_text(["a", "b"], rows.into_iter()).unwrap();
        let cells: Vec<Vec<String>> = csv::ReaderBuilder::new()
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(
            cells,
            [
                ["'=HYPERLINK(\"https://x.example\",\"open\")", "plain"],
                ["'+1", "'-2"],
                ["'@SUM(A1)", "'\tTab"],
                ["'\rCR", "a=b"],
            ]
        );
    }
}
