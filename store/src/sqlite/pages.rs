//! Bulk reads of the log on SQLite, a page of events per result row (issue 18).
//!
//! sqlx hands every result row from SQLite's worker thread to the reader and copies each of its
//! values twice on the way, into the row and then into the caller's `String`s: on a
//! 1,640,018-event log that cost 2.6 µs an event, where SQLite's own scan of the same rows takes
//! 0.3 µs (BENCHMARKS.md, "Bulk log reads, a page per row"). Here one statement returns up to
//! [`PAGE`] events as a single row: each text column of the page concatenated into one value,
//! beside a list of the numbers that cut them apart again (position, versions, and each text's
//! length in bytes). The events are selected by a range of positions, which on the dense log
//! is the same as `position >= from ORDER BY position LIMIT n`; whatever would tell them apart
//! (a position missing, a malformed row) sends the read to the row-at-a-time query, so that the
//! answer, and the error naming a damaged row, are always exactly that query's.
//!
//! For readers of the log's bulk (`audit-log`), not for readers beside the decisions in
//! `serve`: there the GDPR projection's catch-up read this way lengthened the decisions' p99
//! from 9.2–10.3 to 13.9–19.7 ms (same hour, alternating), the pages' large strings being
//! allocated and freed again beside the decision path.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection as _, Row as _, SqliteConnection, SqlitePool};

use crate::error::StoreError;
use crate::event::{Payload, Position, StoredEvent};
use crate::write_path::sql_index;

/// Events per statement: about half a MiB of text at ~550 bytes an event. Measured on the
/// 1.64M-event log (`audit-log`): 512 to 4,096 within the machine's spread, 1,024 the best;
/// larger pages spend more on fresh memory for SQLite's growing strings.
const PAGE: u64 = 1_024;

/// The text columns of an event, in the order their lengths follow the three numbers.
const TEXTS: usize = 7;

/// One row for the events of positions `$1..$2`: their count, then per event "position,
/// stream_version,schema_version" and the byte length of each text column, all comma-separated,
/// then each text column concatenated, then how many events hold a value of another type than
/// their column's (which the row read decodes, or refuses, by its type). Rows are aggregated in
/// the table's (position) order.
const EVENTS_PAGE: &str = "SELECT count(*), group_concat(\
    position || ',' || stream_version || ',' || schema_version \
    || ',' || length(CAST(stream_type AS BLOB)) || ',' || length(CAST(stream_id AS BLOB)) \
    || ',' || length(CAST(event_type AS BLOB)) || ',' || length(CAST(actor AS BLOB)) \
    || ',' || length(CAST(request_id AS BLOB)) || ',' || length(CAST(recorded_at AS BLOB)) \
    || ',' || length(CAST(payload AS BLOB)), ','), \
    CAST(group_concat(stream_type, '') AS BLOB), CAST(group_concat(stream_id, '') AS BLOB), \
    CAST(group_concat(event_type, '') AS BLOB), CAST(group_concat(actor, '') AS BLOB), \
    CAST(group_concat(request_id, '') AS BLOB), CAST(group_concat(recorded_at, '') AS BLOB), \
    CAST(group_concat(payload, '') AS BLOB), \
    total(typeof(position) <> 'integer' OR typeof(stream_version) <> 'integer' \
    OR typeof(schema_version) <> 'integer' OR typeof(stream_type) <> 'text' \
    OR typeof(stream_id) <> 'text' OR typeof(event_type) <> 'text' OR typeof(actor) <> 'text' \
    OR typeof(request_id) <> 'text' OR typeof(recorded_at) <> 'text' \
    OR typeof(payload) <> 'text') \
    FROM events WHERE position >= $1 AND position < $2";

/// One row for the stored leaves of positions `$1..$2`: their count, their indexes, the sum of
/// their lengths, the hashes concatenated, and how many are stored with another type than
/// their column's.
const LEAVES_PAGE: &str = "SELECT count(*), group_concat(idx, ','), sum(length(hash)), \
    CAST(group_concat(hash, '') AS BLOB), \
    total(typeof(idx) <> 'integer' OR typeof(hash) <> 'blob') \
    FROM merkle_nodes WHERE level = 0 AND idx >= $1 AND idx < $2";

/// Whether an event is stored at position `$1` or after it.
const EVENT_FROM: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE position >= $1)";

/// Whether a leaf is stored at position `$1` or after it.
const LEAF_FROM: &str = "SELECT EXISTS (SELECT 1 FROM merkle_nodes WHERE level = 0 AND idx >= $1)";

/// What a page read found where the dense log's shape was expected.
enum Page<T> {
    /// Every value of the range, in order.
    Full(Vec<T>),
    /// Fewer than the range holds: the log ends (or has a hole) inside it.
    Short(Vec<T>),
    /// Something the row-at-a-time read must see: a hole, or a value of the wrong shape.
    Irregular,
}

impl<T> Page<T> {
    /// The values read from a range of `range_len` positions.
    fn of(values: Vec<T>, range_len: u64) -> Self {
        if values.len() as u64 == range_len {
            Self::Full(values)
        } else {
            Self::Short(values)
        }
    }
}

/// The one row `sql` answers for positions `start..stop`, with the count of values it
/// aggregates; `None` when there are none.
async fn page_row(
    conn: &mut SqliteConnection,
    sql: &'static str,
    start: u64,
    stop: u64,
) -> Result<Option<(u64, SqliteRow)>, StoreError> {
    let row = sqlx::query(sql)
        .bind(sql_index(start))
        .bind(sql_index(stop))
        .fetch_one(conn)
        .await
        .map_err(StoreError::unavailable)?;
    let count: i64 = row.try_get(0).map_err(StoreError::unavailable)?;
    Ok(u64::try_from(count)
        .ok()
        .filter(|c| *c > 0)
        .map(|c| (c, row)))
}

/// Up to `limit` events from position `from` on, in log order (as `read_range`), their
/// openings attached.
#[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), limit = limit))]
pub(crate) async fn read_pages(
    pool: &SqlitePool,
    from: Position,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let Some(mut events) = paged(pool, from.get(), limit, events_page, EVENT_FROM).await? else {
        return super::read_range(pool, from, limit).await;
    };
    super::attach_openings(pool, &mut events).await?;
    Ok(events)
}

/// Stored leaf hashes (level 0 of the tree) from position `from` on (as `leaf_hashes_rows`).
#[tracing::instrument(level = "debug", skip_all, fields(from = from, limit = limit))]
pub(crate) async fn leaf_hashes(
    pool: &SqlitePool,
    from: u64,
    limit: u32,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    match paged(pool, from, limit, leaves_page, LEAF_FROM).await? {
        Some(leaves) => Ok(leaves),
        None => super::leaf_hashes_rows(pool, from, limit).await,
    }
}

/// Reads `from..from + limit` page by page with `page`, all in one read transaction (an event
/// committed between two statements must not be missing from the first and then skipped by
/// the second); `None` when the row-at-a-time read must answer instead (a hole in the
/// positions, or a value of the wrong shape). `any_from` asks whether anything is stored at or
/// after a position.
async fn paged<T, F>(
    pool: &SqlitePool,
    from: u64,
    limit: u32,
    page: F,
    any_from: &'static str,
) -> Result<Option<Vec<T>>, StoreError>
where
    F: AsyncFn(&mut SqliteConnection, u64, u64) -> Result<Page<T>, StoreError>,
{
    let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
    let mut tx = conn.begin().await.map_err(StoreError::unavailable)?;
    let end = from.saturating_add(u64::from(limit));
    let mut found = Vec::new();
    let mut start = from;
    while start < end {
        let stop = start.saturating_add(PAGE).min(end);
        match page(&mut tx, start, stop).await? {
            Page::Full(mut values) => found.append(&mut values),
            Page::Short(mut values) => {
                found.append(&mut values);
                // The log ends here, unless a position is missing: then rows answer.
                let more: bool = sqlx::query_scalar(any_from)
                    .bind(sql_index(stop))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
                return Ok((!more).then_some(found));
            }
            Page::Irregular => return Ok(None),
        }
        start = stop;
    }
    tx.commit().await.map_err(StoreError::unavailable)?;
    Ok(Some(found))
}

/// The events of positions `start..stop`.
async fn events_page(
    conn: &mut SqliteConnection,
    start: u64,
    stop: u64,
) -> Result<Page<StoredEvent>, StoreError> {
    let Some((count, row)) = page_row(conn, EVENTS_PAGE, start, stop).await? else {
        return Ok(Page::Short(Vec::new()));
    };
    let mistyped: f64 = row.try_get(2 + TEXTS).map_err(StoreError::unavailable)?;
    if mistyped != 0.0 {
        return Ok(Page::Irregular);
    }
    let numbers: Option<&str> = row.try_get(1).map_err(StoreError::unavailable)?;
    let mut texts: [&[u8]; TEXTS] = [&[]; TEXTS];
    for (i, text) in texts.iter_mut().enumerate() {
        let value: Option<&[u8]> = row.try_get(2 + i).map_err(StoreError::unavailable)?;
        *text = value.unwrap_or_default();
    }
    let Some(events) = numbers.and_then(|n| cut_events(n, texts, start)) else {
        return Ok(Page::Irregular);
    };
    if count != events.len() as u64 {
        return Ok(Page::Irregular);
    }
    Ok(Page::of(events, stop - start))
}

/// The events a page's numbers and texts describe, in ascending positions from `start`; `None`
/// if anything is out of shape (a number that is none, a length past the text, text that is not
/// UTF-8, a time that is not RFC 3339, positions not ascending).
fn cut_events(numbers: &str, texts: [&[u8]; TEXTS], start: u64) -> Option<Vec<StoredEvent>> {
    let mut numbers = numbers.split(',');
    let mut offsets = [0usize; TEXTS];
    let mut events = Vec::new();
    let mut next = start;
    while let Some(position) = numbers.next() {
        let position: u64 = position.parse().ok()?;
        if position < next {
            return None;
        }
        next = position + 1;
        let stream_version: u64 = numbers.next()?.parse().ok()?;
        let schema_version: u32 = numbers.next()?.parse().ok()?;
        let mut fields: [String; TEXTS] = Default::default();
        for (i, field) in fields.iter_mut().enumerate() {
            let len: usize = numbers.next()?.parse().ok()?;
            let bytes = texts[i].get(offsets[i]..offsets[i].checked_add(len)?)?;
            offsets[i] += len;
            *field = String::from_utf8(bytes.to_vec()).ok()?;
        }
        let [stream_type, stream_id, event_type, actor, request_id, recorded_at, payload] = fields;
        events.push(StoredEvent {
            position: Position::new(position),
            stream_type,
            stream_id,
            stream_version,
            event_type,
            schema_version,
            actor,
            request_id,
            recorded_at: parse_time(&recorded_at).ok()?,
            payload: Payload::stored(payload),
            openings: Vec::new(),
        });
    }
    // Every byte of every text belongs to an event.
    (offsets.iter().zip(texts).all(|(o, t)| *o == t.len())).then_some(events)
}

/// A stored `recorded_at`: RFC 3339 text, as the writer binds it.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

/// The stored leaves of positions `start..stop`.
async fn leaves_page(
    conn: &mut SqliteConnection,
    start: u64,
    stop: u64,
) -> Result<Page<(u64, Vec<u8>)>, StoreError> {
    let Some((count, row)) = page_row(conn, LEAVES_PAGE, start, stop).await? else {
        return Ok(Page::Short(Vec::new()));
    };
    let indexes: Option<&str> = row.try_get(1).map_err(StoreError::unavailable)?;
    let bytes: Option<i64> = row.try_get(2).map_err(StoreError::unavailable)?;
    let hashes: Option<&[u8]> = row.try_get(3).map_err(StoreError::unavailable)?;
    let mistyped: f64 = row.try_get(4).map_err(StoreError::unavailable)?;
    if mistyped != 0.0 {
        return Ok(Page::Irregular);
    }
    let (Some(indexes), Some(hashes)) = (indexes, hashes) else {
        return Ok(Page::Irregular);
    };
    // A hash of another length than 32 bytes is for the row-at-a-time read to report.
    if bytes.and_then(|b| u64::try_from(b).ok()) != Some(count.saturating_mul(32))
        || hashes.len() as u64 != count.saturating_mul(32)
    {
        return Ok(Page::Irregular);
    }
    let mut leaves = Vec::with_capacity(hashes.len() / 32);
    let mut next = start;
    for (idx, hash) in indexes.split(',').zip(hashes.chunks_exact(32)) {
        let Some(idx) = idx.parse::<u64>().ok().filter(|i| *i >= next) else {
            return Ok(Page::Irregular);
        };
        next = idx + 1;
        leaves.push((idx, hash.to_vec()));
    }
    if leaves.len() as u64 != count {
        return Ok(Page::Irregular);
    }
    Ok(Page::of(leaves, stop - start))
}

#[cfg(test)]
mod tests {
    use super::super::{open, read_range};
    use super::*;

    /// A log of `n` events whose texts hold what a cut in the wrong place would show: commas,
    /// colons, multi-byte characters, empty and long values; and a leaf for each.
    async fn log_of(n: u64) -> (tempfile::TempDir, SqlitePool, SqliteConnection) {
        let dir = tempfile::tempdir().expect("dir");
        let (pool, mut writer) = open(&dir.path().join("ledger.db")).await.expect("open");
        let mut tx = writer.begin().await.expect("begin");
        for p in 0..n {
            let i = i64::try_from(p).expect("small");
            sqlx::query(
                "INSERT INTO events (position, stream_type, stream_id, stream_version, \
                 event_type, schema_version, actor, request_id, recorded_at, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(i)
            .bind(if p % 3 == 0 { "access" } else { "shipment" })
            .bind(format!("stream,{p}:é"))
            .bind(i % 7 + 1)
            .bind("Événement,1")
            .bind(i % 2 + 1)
            .bind(if p % 5 == 0 {
                String::new()
            } else {
                format!("actor 𝄞 {p}")
            })
            .bind("req:1,2")
            .bind(format!(
                "2026-12-05T01:{:02}:{:02}.123456Z",
                (p / 60) % 60,
                p % 60
            ))
            .bind(format!(
                r#"{{"n":{p},"text":"{}"}}"#,
                "ü,:".repeat((p % 50) as usize)
            ))
            .execute(&mut *tx)
            .await
            .expect("event");
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&p.to_le_bytes());
            sqlx::query("INSERT INTO merkle_nodes (level, idx, hash) VALUES (0, $1, $2)")
                .bind(i)
                .bind(hash.as_slice())
                .execute(&mut *tx)
                .await
                .expect("leaf");
        }
        tx.commit().await.expect("commit");
        (dir, pool, writer)
    }

    /// Changes the stored log behind the store's back.
    async fn damage(writer: &mut SqliteConnection, statements: &[&'static str]) {
        for &statement in statements {
            sqlx::query(statement)
                .execute(&mut *writer)
                .await
                .expect("damage");
        }
    }

    /// Asserts that the page reads of `from`, `limit` answer what the row reads answer.
    async fn both_reads_agree(pool: &SqlitePool, from: u64, limit: u32) {
        let paged = read_pages(pool, Position::new(from), limit)
            .await
            .expect("pages");
        let rows = read_range(pool, Position::new(from), limit)
            .await
            .expect("rows");
        assert_eq!(paged.len(), rows.len(), "as many events from {from}");
        for (x, y) in paged.iter().zip(&rows) {
            assert_eq!(format!("{x:?}"), format!("{y:?}"), "event {}", y.position);
        }
        let leaves = leaf_hashes(pool, from, limit).await.expect("leaves");
        let leaf_rows = super::super::leaf_hashes_rows(pool, from, limit)
            .await
            .expect("leaf rows");
        assert_eq!(leaves, leaf_rows, "leaves from {from}, limit {limit}");
    }

    /// How many events and leaves `paged` reads from `from`, `limit`; `None` where it hands
    /// the read to rows.
    async fn read_in_pages(pool: &SqlitePool, from: u64, limit: u32) -> [Option<usize>; 2] {
        let events = paged(pool, from, limit, events_page, EVENT_FROM)
            .await
            .expect("pages");
        let leaves = paged(pool, from, limit, leaves_page, LEAF_FROM)
            .await
            .expect("pages");
        [events.map(|e| e.len()), leaves.map(|l| l.len())]
    }

    /// Every page read answers exactly what the row-at-a-time read answers: from any position,
    /// for any limit, across page boundaries and past the end of the log.
    #[tokio::test]
    async fn pages_read_what_rows_read() {
        let (_dir, pool, _writer) = log_of(9_000).await;
        assert_eq!(
            read_in_pages(&pool, 0, 10_000).await,
            [Some(9_000), Some(9_000)],
            "read in pages, not rows"
        );
        for (from, limit) in [
            (0, 1),
            (0, 1_024),
            (0, 1_025),
            (17, 3_000),
            (1_023, 2),
            (8_990, 100),
            (9_000, 10),
            (12_000, 10),
            (0, u32::MAX),
        ] {
            both_reads_agree(&pool, from, limit).await;
        }
    }

    /// A log that is not dense — an event deleted from the file — is read as the rows read it,
    /// the events after the hole included; and a leaf of the wrong length reaches the caller
    /// as it is stored, for the audit to name.
    #[tokio::test]
    async fn holes_and_malformed_rows_are_read_as_rows_read_them() {
        let (_dir, pool, mut writer) = log_of(6_000).await;
        damage(
            &mut writer,
            &[
                "DELETE FROM events WHERE position >= 100 AND position < 5000",
                "DELETE FROM merkle_nodes WHERE level = 0 AND idx = 300",
                "UPDATE merkle_nodes SET hash = x'0102' WHERE level = 0 AND idx = 5500",
            ],
        )
        .await;
        assert_eq!(
            read_in_pages(&pool, 0, 200).await[0],
            None,
            "a hole sends the read to rows"
        );
        assert_eq!(
            read_in_pages(&pool, 5_400, 200).await[1],
            None,
            "a malformed leaf sends the read to rows"
        );
        for (from, limit) in [(0, 200), (0, 1_024), (50, 10_000), (5_400, 200)] {
            both_reads_agree(&pool, from, limit).await;
        }
        let short = leaf_hashes(&pool, 5_500, 1).await.expect("leaf");
        assert_eq!(
            short,
            vec![(5_500, vec![1, 2])],
            "the stored bytes, as stored"
        );
    }

    /// A stored value out of shape (a time that is not one, a payload stored as a BLOB, a leaf
    /// stored as text) is the row-at-a-time read's to report or return as it is.
    #[tokio::test]
    async fn an_unreadable_event_is_reported_as_rows_report_it() {
        let (_dir, pool, mut writer) = log_of(50).await;
        damage(
            &mut writer,
            &[
                "UPDATE events SET recorded_at = 'yesterday' WHERE position = 42",
                "UPDATE events SET payload = CAST(payload AS BLOB) WHERE position = 7",
                "UPDATE merkle_nodes SET hash = 'abcdefghijklmnopqrstuvwxyz012345' WHERE level = 0 AND idx = 9",
            ],
        )
        .await;
        assert_eq!(
            read_in_pages(&pool, 0, 20).await,
            [None, None],
            "a value of another type sends the read to rows"
        );
        let paged = leaf_hashes(&pool, 0, 20).await;
        let rows = super::super::leaf_hashes_rows(&pool, 0, 20).await;
        assert_eq!(format!("{paged:?}"), format!("{rows:?}"));
        for (from, bad) in [(0, 7), (20, 42)] {
            let paged = read_pages(&pool, Position::new(from), 100).await;
            let rows = read_range(&pool, Position::new(from), 100).await;
            assert!(
                matches!(paged, Err(StoreError::Corrupt { position, .. }) if position == bad),
                "{paged:?}"
            );
            assert_eq!(format!("{paged:?}"), format!("{rows:?}"));
        }
    }
}
