//! Bulk reads of the log on SQLite, stepping SQLite's own statement (issue 18).
//!
//! sqlx hands every result row from SQLite's worker thread to the reader and copies each of its
//! values twice on the way, into the row and then into the caller's `String`s: on a
//! 1,640,018-event log that cost 2.6 µs an event, where SQLite's own scan of the same rows takes
//! 0.3 µs (BENCHMARKS.md, "Bulk log reads, a page per row"). Here the connection is locked out of
//! sqlx's worker ([`SqliteConnection::lock_handle`], sqlx's documented way to call SQLite
//! directly) and the statement stepped on the reader's own thread, each value copied once,
//! straight from SQLite's row into the event. The events are selected by a range of positions,
//! which on the dense log is the same as `position >= from ORDER BY position LIMIT n`; whatever
//! would tell them apart (a position missing, a value of another type than its column's, a
//! malformed value, any error from SQLite) sends the read to the row-at-a-time query, so that
//! the answer, and the error naming a damaged row, are always exactly that query's.
//!
//! For readers of the log's bulk (`audit-log`, `replay --audit`) and the GDPR projection's
//! catch-up, which in `serve` runs on a thread of its own at a lower CPU priority (the GDPR
//! views catch up the few events it has not applied yet the same way before they answer): the
//! reader's thread does SQLite's work itself, about 0.5 µs an event, a page at a time. The
//! decision scan ([`read_decisions`], an export's pages) is read the same way where the caller's
//! runtime has threads to spare, and by the rows on an HTTP worker of `serve`.

use std::ffi::{c_int, CStr, CString};
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::NonNull;

use chrono::{DateTime, Utc};
use libsqlite3_sys as ffi;
use sqlx::{Connection as _, SqliteConnection, SqlitePool};

use consent_ledger_audit::leaf::{event_leaf_hash, LeafEvent};

use crate::error::StoreError;
use crate::event::{is_sealed, DecisionScan, Payload, Position, ReadLeaf, StoredEvent};
use crate::reads::{decision_scan_parts, ScanPart};
use crate::write_path::sql_index;

/// Events per statement.
const PAGE: u64 = 1_024;

/// Values a read makes room for at once: a whole read of `audit-log`'s or the catch-up's size,
/// without growing (and copying) its vector as it fills; a larger limit grows past it.
const RESERVED: u32 = 16_384;

/// The events of positions `?1..?2`, in log order.
const EVENTS_PAGE: &CStr = c"SELECT position, stream_version, schema_version, stream_type, \
    stream_id, event_type, actor, request_id, recorded_at, payload \
    FROM events WHERE position >= ?1 AND position < ?2 ORDER BY position";

/// The columns of [`EVENTS_PAGE`], in its order, which [`RowEvent::read`] reads them in.
const EVENT_COLUMNS: &str = "position, stream_version, schema_version, stream_type, \
    stream_id, event_type, actor, request_id, recorded_at, payload";

/// The stored leaves of positions `?1..?2`, in order.
const LEAVES_PAGE: &CStr = c"SELECT idx, hash FROM merkle_leaves \
    WHERE idx >= ?1 AND idx < ?2 ORDER BY idx";

/// Whether an event is stored at position `$1` or after it.
const EVENT_FROM: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE position >= $1)";

/// Whether a leaf is stored at position `$1` or after it.
const LEAF_FROM: &str = "SELECT EXISTS (SELECT 1 FROM merkle_leaves WHERE idx >= $1)";

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
    let mut found = Vec::with_capacity(usize::try_from(limit.min(RESERVED)).unwrap_or(0));
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
    events_as(conn, start, stop, |event| event.to_event()).await
}

/// What `make` makes of each event of positions `start..stop`, read from SQLite's row.
async fn events_as<T>(
    conn: &mut SqliteConnection,
    start: u64,
    stop: u64,
    make: impl Fn(&RowEvent<'_>) -> T,
) -> Result<Page<T>, StoreError> {
    let mut next = start;
    let made = stepped(conn, EVENTS_PAGE, start, stop, |row| {
        Some(make(&RowEvent::read(row, &mut next)?))
    })
    .await?;
    Ok(made.map_or(Page::Irregular, |m| Page::of(m, stop - start)))
}

/// Up to `limit` events from position `from` on, as [`read_pages`] reads them, each as its
/// leaf hash computed from SQLite's row, and whole only where it has sealed fields (with their
/// openings).
#[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), limit = limit))]
pub(crate) async fn read_leaves(
    pool: &SqlitePool,
    from: Position,
    limit: u32,
) -> Result<Vec<ReadLeaf>, StoreError> {
    let Some(mut leaves) = paged(pool, from.get(), limit, leaves_of_events, EVENT_FROM).await?
    else {
        let events = super::read_range(pool, from, limit).await?;
        return Ok(events.into_iter().map(ReadLeaf::of).collect());
    };
    let at: Vec<usize> = (0..leaves.len())
        .filter(|&i| leaves[i].sealed.is_some())
        .collect();
    let mut sealed: Vec<Box<StoredEvent>> =
        at.iter().filter_map(|&i| leaves[i].sealed.take()).collect();
    super::attach_openings(pool, &mut sealed).await?;
    for (i, event) in at.into_iter().zip(sealed) {
        leaves[i].sealed = Some(event);
    }
    Ok(leaves)
}

/// The leaves of the events of positions `start..stop`.
async fn leaves_of_events(
    conn: &mut SqliteConnection,
    start: u64,
    stop: u64,
) -> Result<Page<ReadLeaf>, StoreError> {
    events_as(conn, start, stop, |event| ReadLeaf {
        position: Position::new(event.position),
        leaf: event_leaf_hash(&event.leaf()),
        sealed: is_sealed(event.payload).then(|| Box::new(event.to_event())),
    })
    .await
}

/// The events of positions `range` that `scan` lets through, in order, as
/// `read_decisions_rows` reads them through sqlx (the same statement, [`decision_scan_parts`]),
/// stepped on the caller's thread a statement per [`PAGE`] positions, each value copied once:
/// for an export's pages read ahead on a runtime's worker threads (`consent-ledger export`).
/// A value out of shape, or any error from SQLite, sends the read to sqlx's rows, so that the
/// answer, and the error naming a damaged row, are that read's. On a runtime of one thread (an
/// HTTP worker of `serve`, which answers other requests meanwhile) sqlx's own thread steps the
/// statement, as before: stepped there, an officer's view of one parcel under a load of
/// decisions waited on the worker between its statements (the slowest of 14 answers 618.7 /
/// 576.2 ms against 413.6 / 478.0, BENCHMARKS.md, "Bulk reads on both cores").
#[tracing::instrument(level = "debug", skip_all, fields(start = range.start, end = range.end))]
pub(crate) async fn read_decisions(
    pool: &SqlitePool,
    range: Range<u64>,
    scan: &DecisionScan,
) -> Result<Vec<StoredEvent>, StoreError> {
    if on_one_thread() {
        return super::read_decisions_rows(pool, range, scan).await;
    }
    let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
    let stepped = decisions_stepped(&mut conn, range.clone(), scan).await?;
    drop(conn);
    let Some(mut events) = stepped else {
        return super::read_decisions_rows(pool, range, scan).await;
    };
    super::attach_openings(pool, &mut events).await?;
    Ok(events)
}

/// Whether the caller runs on a runtime of one thread, which stepping a statement would keep
/// from its other tasks.
fn on_one_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// The events of [`read_decisions`] without their openings, all in one read transaction;
/// `None` where sqlx's rows must answer instead.
async fn decisions_stepped(
    conn: &mut SqliteConnection,
    range: Range<u64>,
    scan: &DecisionScan,
) -> Result<Option<Vec<StoredEvent>>, StoreError> {
    let mut tx = conn.begin().await.map_err(StoreError::unavailable)?;
    let room = range
        .end
        .saturating_sub(range.start)
        .min(u64::from(RESERVED));
    let mut events = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    let mut start = range.start;
    while start < range.end {
        let stop = start.saturating_add(PAGE).min(range.end);
        let parts = decision_scan_parts(EVENT_COLUMNS, &super::SCAN_DIALECT, start..stop, scan);
        let Some((sql, params)) = statement_of(&parts) else {
            return Ok(None);
        };
        let mut handle = tx.lock_handle().await.map_err(StoreError::unavailable)?;
        let mut next = start;
        let room = usize::try_from(stop - start).unwrap_or(0);
        let read = step_all(handle.as_raw_handle(), &sql, &params, room, |row| {
            Some(RowEvent::read(row, &mut next)?.to_event())
        });
        let Some(mut read) = read else {
            return Ok(None);
        };
        events.append(&mut read);
        start = stop;
    }
    tx.commit().await.map_err(StoreError::unavailable)?;
    Ok(Some(events))
}

/// The SQL of `parts` with a `?` for each value, and the values in order; `None` if the text
/// holds a NUL (it never does: every value is bound, none written into it).
fn statement_of(parts: &[ScanPart]) -> Option<(CString, Vec<Bound<'_>>)> {
    let mut sql = String::new();
    let mut params = Vec::new();
    for part in parts {
        match part {
            ScanPart::Sql(text) => sql.push_str(text),
            ScanPart::Int(value) => {
                sql.push('?');
                params.push(Bound::Int(*value));
            }
            ScanPart::Text(value) => {
                sql.push('?');
                params.push(Bound::Text(value));
            }
        }
    }
    Some((CString::new(sql).ok()?, params))
}

/// An event as SQLite's current row holds it ([`EVENTS_PAGE`]'s columns), borrowed.
struct RowEvent<'r> {
    position: u64,
    stream_version: u64,
    schema_version: u32,
    stream_type: &'r str,
    stream_id: &'r str,
    event_type: &'r str,
    actor: &'r str,
    request_id: &'r str,
    recorded_at: DateTime<Utc>,
    payload: &'r str,
}

impl<'r> RowEvent<'r> {
    /// The event of `row`, if every value has its column's type and shape and its position is
    /// `next` or later (then `next` moves past it).
    fn read(row: &'r Row<'_>, next: &mut u64) -> Option<Self> {
        let position = u64::try_from(row.int(0)?).ok().filter(|p| *p >= *next)?;
        *next = position + 1;
        Some(Self {
            position,
            stream_version: u64::try_from(row.int(1)?).ok()?,
            schema_version: u32::try_from(row.int(2)?).ok()?,
            stream_type: row.text(3)?,
            stream_id: row.text(4)?,
            event_type: row.text(5)?,
            actor: row.text(6)?,
            request_id: row.text(7)?,
            recorded_at: parse_time(row.text(8)?).ok()?,
            payload: row.text(9)?,
        })
    }

    fn leaf(&self) -> LeafEvent<'r> {
        LeafEvent {
            position: self.position,
            stream_type: self.stream_type,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            actor: self.actor,
            request_id: self.request_id,
            recorded_at: self.recorded_at,
            payload: self.payload,
        }
    }

    fn to_event(&self) -> StoredEvent {
        StoredEvent {
            position: Position::new(self.position),
            stream_version: self.stream_version,
            schema_version: self.schema_version,
            stream_type: self.stream_type.to_owned(),
            stream_id: self.stream_id.to_owned(),
            event_type: self.event_type.to_owned(),
            actor: self.actor.to_owned(),
            request_id: self.request_id.to_owned(),
            recorded_at: self.recorded_at,
            payload: Payload::stored(self.payload.to_owned()),
            openings: Vec::new(),
        }
    }
}

/// A stored `recorded_at`: RFC 3339 text, as the writer binds it.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

/// The stored leaves of positions `start..stop`; a hash of another length than 32 bytes is for
/// the row-at-a-time read to report.
async fn leaves_page(
    conn: &mut SqliteConnection,
    start: u64,
    stop: u64,
) -> Result<Page<(u64, Vec<u8>)>, StoreError> {
    let mut next = start;
    let leaves = stepped(conn, LEAVES_PAGE, start, stop, |row| {
        let idx = u64::try_from(row.int(0)?).ok().filter(|i| *i >= next)?;
        next = idx + 1;
        let hash = row.blob(1).filter(|h| h.len() == 32)?;
        Some((idx, hash.to_vec()))
    })
    .await?;
    Ok(leaves.map_or(Page::Irregular, |l| Page::of(l, stop - start)))
}

/// The values `read` makes of each row `sql` answers for positions `start..stop` (its two
/// parameters), stepped on this thread with the connection locked out of sqlx's worker; `None`
/// if `read` refuses a row or SQLite reports an error (the row-at-a-time read then answers).
async fn stepped<T>(
    conn: &mut SqliteConnection,
    sql: &CStr,
    start: u64,
    stop: u64,
    read: impl FnMut(&Row<'_>) -> Option<T>,
) -> Result<Option<Vec<T>>, StoreError> {
    let mut handle = conn.lock_handle().await.map_err(StoreError::unavailable)?;
    // A range of positions holds at most its length, and no page is longer than PAGE.
    let room = usize::try_from(stop.saturating_sub(start).min(PAGE)).unwrap_or(0);
    Ok(step_all(
        handle.as_raw_handle(),
        sql,
        &[Bound::Int(sql_index(start)), Bound::Int(sql_index(stop))],
        room,
        read,
    ))
}

/// A value bound to a statement's parameter.
enum Bound<'a> {
    Int(i64),
    Text(&'a str),
}

/// A prepared statement, finalized when dropped. It never outlives the function that prepared
/// it on a locked connection (`step_all` here, the one-call commit's in `whole`).
pub(super) struct Statement(pub(super) NonNull<ffi::sqlite3_stmt>);

impl Statement {
    /// Prepares `sql` on `db`; SQLite's result code if it fails.
    ///
    /// `db` must be an open connection that no other thread uses while the statement is
    /// prepared, stepped or finalized (its caller holds the `LockedSqliteHandle`); a statement
    /// kept between those (the one call's, `whole::Kept`) sits reset, touched by no thread.
    pub(super) fn prepare(db: NonNull<ffi::sqlite3>, sql: &CStr) -> Result<Self, c_int> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `db` is open and used by this thread alone; `sql` is NUL-terminated; `raw`
        // receives the statement or NULL.
        let code = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr(),
                -1,
                &mut raw,
                std::ptr::null_mut(),
            )
        };
        // A statement made before a failure is finalized by its drop.
        let statement = NonNull::new(raw).map(Self);
        match statement {
            Some(statement) if code == ffi::SQLITE_OK => Ok(statement),
            _ => Err(if code == ffi::SQLITE_OK {
                ffi::SQLITE_ERROR
            } else {
                code
            }),
        }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a connection that no other thread uses while
        // this runs (its handle is locked, or its owner is being dropped: `whole::Kept`), and
        // is finalized once, here.
        unsafe {
            ffi::sqlite3_finalize(self.0.as_ptr());
        }
    }
}

/// Prepares `sql` on `db`, binds `params` to its parameters in order, and steps every row
/// through `read`, with room for `room` values made first.
fn step_all<T>(
    db: NonNull<ffi::sqlite3>,
    sql: &CStr,
    params: &[Bound<'_>],
    room: usize,
    mut read: impl FnMut(&Row<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let statement = Statement::prepare(db, sql).ok()?;
    let stmt = statement.0.as_ptr();
    for (i, param) in params.iter().enumerate() {
        let index = c_int::try_from(i + 1).ok()?;
        let code = match param {
            // SAFETY: `stmt` is the statement just prepared; SQLite refuses an index past its
            // parameters with an error code.
            Bound::Int(value) => unsafe { ffi::sqlite3_bind_int64(stmt, index, *value) },
            Bound::Text(value) => {
                let len = c_int::try_from(value.len()).ok()?;
                // SAFETY: as above; `value` is `len` bytes of UTF-8, which SQLite copies
                // (SQLITE_TRANSIENT) before this returns.
                unsafe {
                    ffi::sqlite3_bind_text(
                        stmt,
                        index,
                        value.as_ptr().cast(),
                        len,
                        ffi::SQLITE_TRANSIENT(),
                    )
                }
            }
        };
        if code != ffi::SQLITE_OK {
            return None;
        }
    }
    let mut values = Vec::with_capacity(room);
    loop {
        // SAFETY: as above; a row's values are only read through `Row` until the next step.
        match unsafe { ffi::sqlite3_step(stmt) } {
            ffi::SQLITE_ROW => values.push(read(&Row {
                stmt: statement.0,
                _row: PhantomData,
            })?),
            ffi::SQLITE_DONE => return Some(values),
            _ => return None,
        }
    }
}

/// The current row of a statement being stepped. The values it lends live until the next
/// step, which cannot happen while it is borrowed.
struct Row<'s> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    _row: PhantomData<&'s ()>,
}

impl Row<'_> {
    /// Column `i` if it holds an integer.
    fn int(&self, i: c_int) -> Option<i64> {
        // SAFETY: `stmt` has a current row (SQLITE_ROW); reading a column of the type it holds
        // converts nothing.
        unsafe {
            (ffi::sqlite3_column_type(self.stmt.as_ptr(), i) == ffi::SQLITE_INTEGER)
                .then(|| ffi::sqlite3_column_int64(self.stmt.as_ptr(), i))
        }
    }

    /// Column `i` if it holds text, and that text is UTF-8.
    fn text(&self, i: c_int) -> Option<&str> {
        std::str::from_utf8(self.bytes(i, ffi::SQLITE_TEXT)?).ok()
    }

    /// Column `i` if it holds a blob.
    fn blob(&self, i: c_int) -> Option<&[u8]> {
        self.bytes(i, ffi::SQLITE_BLOB)
    }

    /// The bytes of column `i` if it holds a value of type `kind` (text or blob).
    fn bytes(&self, i: c_int, kind: c_int) -> Option<&[u8]> {
        let stmt = self.stmt.as_ptr();
        // SAFETY: `stmt` has a current row; the pointer is taken before the length, as SQLite
        // asks, and both describe the value as stored (its type is `kind`: no conversion), which
        // stays valid until the next step or finalize — after this borrow ends.
        unsafe {
            if ffi::sqlite3_column_type(stmt, i) != kind {
                return None;
            }
            let data: *const u8 = if kind == ffi::SQLITE_TEXT {
                ffi::sqlite3_column_text(stmt, i)
            } else {
                ffi::sqlite3_column_blob(stmt, i).cast()
            };
            let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).ok()?;
            if len == 0 {
                return Some(&[]);
            }
            (!data.is_null()).then(|| std::slice::from_raw_parts(data, len))
        }
    }
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
            .bind(if p % 11 == 0 {
                // A sealed field: the leaves' reader keeps these events whole.
                format!(r#"{{"n":{p},"tracking_number":{{"commitment":"c{p}"}}}}"#)
            } else {
                format!(
                    r#"{{"n":{p},"text":"{}"}}"#,
                    "ü,:".repeat((p % 50) as usize)
                )
            })
            .execute(&mut *tx)
            .await
            .expect("event");
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&p.to_le_bytes());
            sqlx::query("INSERT INTO merkle_leaves (idx, hash) VALUES ($1, $2)")
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
        let leaf_reads = read_leaves(pool, Position::new(from), limit)
            .await
            .expect("leaves of events");
        let of_rows: Vec<ReadLeaf> = rows.iter().cloned().map(ReadLeaf::of).collect();
        assert_eq!(
            leaf_reads, of_rows,
            "leaves of events from {from}, limit {limit}"
        );
        assert!(
            leaf_reads.is_empty() || leaf_reads.iter().any(|l| l.sealed.is_some()),
            "sealed events are kept whole"
        );
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
        let of_events = paged(pool, from, limit, leaves_of_events, EVENT_FROM)
            .await
            .expect("pages");
        assert_eq!(
            events.as_ref().map(Vec::len),
            of_events.map(|l| l.len()),
            "the leaves of events are read in pages where the events are"
        );
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
                "DELETE FROM merkle_leaves WHERE idx = 300",
                "UPDATE merkle_leaves SET hash = x'0102' WHERE idx = 5500",
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

    /// Scans of every shape the decision scan takes, over the fixture's stream types, event
    /// types and payloads.
    fn scans() -> Vec<DecisionScan> {
        let access = DecisionScan::of("access");
        let field = |min: Option<&str>, max: Option<&str>| crate::event::TextFieldRange {
            key: "text".into(),
            chars: 2,
            min: min.map(str::to_owned),
            max: max.map(str::to_owned),
        };
        vec![
            access.clone(),
            DecisionScan {
                event_type: Some("Événement,1".into()),
                ..access.clone()
            },
            DecisionScan {
                event_type: Some("other".into()),
                ..access.clone()
            },
            DecisionScan {
                payload_contains: vec![vec!["\"n\":3".into(), "ü,:ü,:ü".into()], vec![",".into()]],
                ..access.clone()
            },
            DecisionScan {
                text_field: Some(field(Some("ü,"), None)),
                ..access.clone()
            },
            DecisionScan {
                text_field: Some(field(None, Some("ü"))),
                ..access.clone()
            },
            DecisionScan {
                also: Some(("shipment".into(), "stream,4:é".into())),
                payload_contains: vec![vec!["nowhere".into()]],
                ..access.clone()
            },
            DecisionScan {
                also_types: vec!["shipment".into(), "none".into()],
                event_type: Some("other".into()),
                ..access
            },
        ]
    }

    /// The decision scan stepped answers exactly what sqlx's rows answer, for every shape of
    /// scan, from any position, across statement boundaries and past the end of the log; and
    /// it is stepped, not handed to the rows (on a runtime of several threads).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stepped_decision_scan_reads_what_rows_read() {
        assert!(!on_one_thread(), "read_decisions steps here");
        let (_dir, pool, _writer) = log_of(3_000).await;
        for scan in scans() {
            for range in [
                0..3_000,
                17..2_100,
                1_023..1_025,
                2_990..3_100,
                5_000..6_000,
            ] {
                let stepped = read_decisions(&pool, range.clone(), &scan)
                    .await
                    .expect("stepped");
                let rows = super::super::read_decisions_rows(&pool, range.clone(), &scan)
                    .await
                    .expect("rows");
                assert_eq!(
                    format!("{stepped:?}"),
                    format!("{rows:?}"),
                    "{scan:?} over {range:?}"
                );
                let mut conn = pool.acquire().await.expect("conn");
                assert!(
                    decisions_stepped(&mut conn, range.clone(), &scan)
                        .await
                        .expect("stepped")
                        .is_some(),
                    "{scan:?} over {range:?} is stepped"
                );
            }
        }
        let mut found = Vec::new();
        for scan in scans() {
            found.push(
                read_decisions(&pool, 0..3_000, &scan)
                    .await
                    .expect("scan")
                    .len(),
            );
        }
        assert_eq!(
            found,
            [1_000, 1_000, 0, 859, 982, 109, 1, 2_000],
            "what each scan selects"
        );
    }

    /// On a runtime of one thread (an HTTP worker's) the decision scan is left to sqlx's thread.
    #[tokio::test]
    async fn one_thread_leaves_the_stepping_to_sqlx() {
        assert!(on_one_thread());
        let (_dir, pool, _writer) = log_of(100).await;
        let scan = DecisionScan::of("access");
        let read = read_decisions(&pool, 0..100, &scan).await.expect("scan");
        assert_eq!(read.len(), 34);
    }

    /// A value out of shape in the scanned range sends the scan to sqlx's rows, which name the
    /// damaged event; one outside the scan's selection is not read at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_decision_is_reported_as_rows_report_it() {
        let (_dir, pool, mut writer) = log_of(3_000).await;
        damage(
            &mut writer,
            &[
                "UPDATE events SET recorded_at = 'yesterday' WHERE position = 1500",
                "UPDATE events SET stream_version = -1 WHERE position = 1501",
            ],
        )
        .await;
        let access = &scans()[0];
        let stepped = read_decisions(&pool, 0..3_000, access).await;
        let rows = super::super::read_decisions_rows(&pool, 0..3_000, access).await;
        assert!(
            matches!(stepped, Err(StoreError::Corrupt { position: 1500, .. })),
            "{stepped:?}"
        );
        assert_eq!(format!("{stepped:?}"), format!("{rows:?}"));
        let mut conn = pool.acquire().await.expect("conn");
        assert!(decisions_stepped(&mut conn, 0..3_000, access)
            .await
            .expect("read")
            .is_none());
        // Position 1501 is a shipment's event: the access scan never reads its row.
        let clean = read_decisions(&pool, 1_501..1_502, access)
            .await
            .expect("scan");
        assert!(clean.is_empty());
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
                "UPDATE merkle_leaves SET hash = 'abcdefghijklmnopqrstuvwxyz012345' WHERE idx = 9",
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
            let leaves = read_leaves(&pool, Position::new(from), 100).await;
            assert!(
                matches!(leaves, Err(StoreError::Corrupt { position, .. }) if position == bad),
                "{leaves:?}"
            );
        }
    }
}
