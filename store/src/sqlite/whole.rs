//! A plain batch committed in one call on SQLite (issue 18, docs/adr/0005).
//!
//! sqlx hands every statement to SQLite's worker thread and waits for its answer: a batch of
//! the general path is four such round trips (the head, the keys and claims, the events, the
//! nodes with the COMMIT), each a wake-up of the worker and one of the writer, and under
//! single decisions, whose batches are small, those switches were a fifth of the group commit's
//! CPU (BENCHMARKS.md, "The group commit in one call"). Here the writer locks the connection
//! out of sqlx's worker once ([`sqlx::SqliteConnection::lock_handle`], as the bulk reads of
//! `pages` do) and runs the whole transaction on its own thread: `BEGIN IMMEDIATE`, the head
//! checked against the one its last commit left, one single-row INSERT stepped per key, claim,
//! event, sealed field's opening, tracking update, webhook message, leaf hash and subtree hash,
//! the fence moved, `COMMIT` — the one fsync of the batch.
//!
//! Its statements are prepared the first time a batch needs them and kept with the writer's
//! connection ([`Kept`]): prepared per batch, the parsing was 6–7% of the group commit's
//! thread under single decisions (BENCHMARKS.md, "The one call's statements kept").
//!
//! Every value is bound, never written into SQL text. An error rolls the transaction back
//! before it is returned, as a `sqlx::Error::Database` carrying SQLite's extended code, so that
//! a unique violation sends the batch to the general path (which refuses the offending append
//! alone) and any other error fails the batch as the general path's would.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::ffi::{c_char, c_int, CStr};
use std::fmt;
use std::ptr::NonNull;

use libsqlite3_sys as ffi;
use sqlx::error::{DatabaseError, ErrorKind};

use consent_ledger_audit::tree::{Hash, NodeId};

use super::pages::Statement;
use crate::event::StoredEvent;
use crate::write_path::{sql_index, Stamped};

/// The log's next position and its restriction fence, read under the write lock.
const HEAD: &CStr = c"SELECT (SELECT COALESCE(MAX(position) + 1, 0) FROM events), \
    (SELECT position FROM fences WHERE name = 'restriction')";

const KEY: &CStr = c"INSERT OR FAIL INTO idempotency_keys \
    (scope, key, fingerprint, first_position, last_position, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const CLAIM: &CStr = c"INSERT OR FAIL INTO unique_claims (claim, position) VALUES (?1, ?2)";

const EVENT: &CStr = match CStr::from_bytes_with_nul(
    concat!(
        "INSERT OR FAIL INTO events (",
        event_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)\0"
    )
    .as_bytes(),
) {
    Ok(sql) => sql,
    Err(_) => panic!("the events' INSERT is one NUL-terminated string"),
};

const LEAF: &CStr = c"INSERT OR FAIL INTO merkle_leaves (idx, hash) VALUES (?1, ?2)";

const SUBTREE: &CStr = c"INSERT OR FAIL INTO merkle_subtrees (band, tile, level, idx, hash) \
    VALUES (?1, ?2, ?3, ?4, ?5)";

const OPENING: &CStr = c"INSERT OR FAIL INTO openings \
    (position, pointer, value, salt, stream_type, stream_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const TRACKING: &CStr = c"INSERT OR FAIL INTO tracking_updates \
    (update_id, shipment_id, status, occurred_at, received_at, details) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const OUTBOX: &CStr = c"INSERT OR FAIL INTO webhook_outbox \
    (message_id, endpoint_id, event_type, occurred_at, position, data, shipment_id) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const FENCE: &CStr = c"UPDATE fences SET position = ?1 WHERE name = 'restriction'";

/// What one call writes: the batch stamped from the head it expects, its subtree hashes, and
/// the fence it moves (`None`: unmoved).
pub(super) struct Whole<'a, 'b> {
    pub(super) head: (i64, i64),
    pub(super) stamped: &'a Stamped<'b>,
    pub(super) time: &'a str,
    pub(super) kept: &'a [&'a (NodeId, Hash)],
    pub(super) fence: Option<i64>,
}

/// Runs `whole` as one transaction on `db`; `Ok(false)` when the log's head is not the one
/// expected (another process wrote), and nothing was written.
///
/// `db` must be an open connection that no other thread uses until this returns (the caller
/// holds its `LockedSqliteHandle`), in autocommit mode.
pub(super) fn append(
    db: NonNull<ffi::sqlite3>,
    kept: &mut Kept,
    whole: &Whole<'_, '_>,
) -> Result<bool, RawError> {
    exec(db, c"BEGIN IMMEDIATE")?;
    let written = write(&mut kept.on(db), whole);
    match written {
        Ok(true) => match exec(db, c"COMMIT") {
            Ok(()) => Ok(true),
            Err(err) => Err(roll_back(db, err)),
        },
        Ok(false) => {
            exec(db, c"ROLLBACK")?;
            Ok(false)
        }
        Err(err) => Err(roll_back(db, err)),
    }
}

/// Rolls back whatever is still open after `err`, and returns `err`.
pub(super) fn roll_back(db: NonNull<ffi::sqlite3>, err: RawError) -> RawError {
    // SAFETY: `db` is the open connection `append` was given, used by this thread alone.
    if unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) } == 0 {
        // A ROLLBACK that fails leaves the transaction to the writer's `abort`.
        let _ = exec(db, c"ROLLBACK");
    }
    err
}

/// Everything of `whole` inside the open transaction; `false` if the head moved.
fn write(db: &mut On<'_>, whole: &Whole<'_, '_>) -> Result<bool, RawError> {
    if db.statement(Sql::Head)?.row(&[])? != Some(whole.head) {
        return Ok(false);
    }
    let time = whole.time;
    insert_each(db, Sql::Key, &whole.stamped.keys(), |(claim, events)| {
        [
            Value::Text(&claim.scope),
            Value::Text(&claim.key),
            Value::Text(&claim.fingerprint),
            Value::Int(events.first().map_or(0, |e| e.position.as_i64())),
            Value::Int(events.last().map_or(0, |e| e.position.as_i64())),
            Value::Text(time),
        ]
    })?;
    insert_each(
        db,
        Sql::Claim,
        &whole.stamped.claims(),
        |(claim, position)| [Value::Text(claim), Value::Int(*position)],
    )?;
    let events = whole.stamped.events();
    insert_each(db, Sql::Event, &events, |event| event_row(event, time))?;
    rows_beside(db, whole.stamped)?;
    let (leaves, subtrees) = super::leaves_and_subtrees(whole.kept);
    insert_each(db, Sql::Leaf, &leaves, |(node, hash)| {
        [
            Value::Int(sql_index(node.index())),
            Value::Blob(hash.as_slice()),
        ]
    })?;
    insert_each(db, Sql::Subtree, &subtrees, |(node, hash)| {
        let (band, tile) = super::subtree_tile(*node);
        [
            Value::Int(band),
            Value::Int(tile),
            Value::Int(i64::from(node.level())),
            Value::Int(sql_index(node.index())),
            Value::Blob(hash.as_slice()),
        ]
    })?;
    if let Some(fence) = whole.fence {
        db.statement(Sql::Fence)?.run(&[Value::Int(fence)])?;
    }
    Ok(true)
}

/// What a batch keeps beside its events: the openings of sealed fields (SPEC §12), tracking
/// updates (SPEC §14; one already held is a unique violation, which sends the batch the
/// general way to refuse its append alone) and webhook messages (SPEC §13), as the general
/// path writes them.
fn rows_beside(db: &mut On<'_>, stamped: &Stamped<'_>) -> Result<(), RawError> {
    insert_each(db, Sql::Opening, &stamped.openings(), |(event, opening)| {
        [
            Value::Int(event.position.as_i64()),
            Value::Text(&opening.pointer),
            Value::Text(&opening.value),
            Value::Text(&opening.salt),
            Value::Text(&event.stream_type),
            Value::Text(&event.stream_id),
        ]
    })?;
    insert_each(db, Sql::Tracking, &stamped.tracking(), |update| {
        [
            Value::Text(&update.update_id),
            Value::Text(&update.shipment_id),
            Value::Text(&update.status),
            Value::Text(&update.occurred_at),
            Value::Int(update.received_at),
            Value::Text(&update.details),
        ]
    })?;
    insert_each(db, Sql::Outbox, &stamped.outbox(), |(message, position)| {
        [
            Value::Text(&message.message_id),
            Value::Text(&message.endpoint_id),
            Value::Text(&message.event_type),
            Value::Text(&message.occurred_at),
            Value::Int(position.as_i64()),
            Value::Text(&message.data),
            message
                .shipment_id
                .as_deref()
                .map_or(Value::Null, Value::Text),
        ]
    })
}

/// Steps `sql` once for each of `rows`, bound with the values `bind` takes from it; prepares
/// nothing when there are no rows.
fn insert_each<'a, T, const N: usize>(
    db: &mut On<'_>,
    sql: Sql,
    rows: &'a [T],
    bind: impl Fn(&'a T) -> [Value<'a>; N],
) -> Result<(), RawError> {
    if rows.is_empty() {
        return Ok(());
    }
    let insert = db.statement(sql)?;
    for row in rows {
        insert.run(&bind(row))?;
    }
    Ok(())
}

/// An event's ten columns, in the order of `event_columns!`.
fn event_row<'a>(e: &'a StoredEvent, time: &'a str) -> [Value<'a>; 10] {
    [
        Value::Int(e.position.as_i64()),
        Value::Text(&e.stream_type),
        Value::Text(&e.stream_id),
        Value::Int(i64::try_from(e.stream_version).unwrap_or(i64::MAX)),
        Value::Text(&e.event_type),
        Value::Int(i64::from(e.schema_version)),
        Value::Text(&e.actor),
        Value::Text(&e.request_id),
        Value::Text(time),
        Value::Text(e.payload.as_str()),
    ]
}

/// A value bound to a statement's parameter.
pub(super) enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// The one call's statements.
#[derive(Clone, Copy)]
enum Sql {
    Head,
    Key,
    Claim,
    Event,
    Leaf,
    Subtree,
    Opening,
    Tracking,
    Outbox,
    Fence,
}

impl Sql {
    const COUNT: usize = 10;

    fn text(self) -> &'static CStr {
        match self {
            Sql::Head => HEAD,
            Sql::Key => KEY,
            Sql::Claim => CLAIM,
            Sql::Event => EVENT,
            Sql::Leaf => LEAF,
            Sql::Subtree => SUBTREE,
            Sql::Opening => OPENING,
            Sql::Tracking => TRACKING,
            Sql::Outbox => OUTBOX,
            Sql::Fence => FENCE,
        }
    }
}

/// The one call's statements, each prepared on the writer's connection the first time a batch
/// needs it and kept until the writer goes, finalized then before the connection closes (the
/// writer holds this before its connection, and Rust drops fields in order).
///
/// A statement is used only inside [`append`], while the caller holds the connection's
/// `LockedSqliteHandle`; between batches it sits reset, with no bindings, and SQLite prepares
/// it again by itself if the schema changed meanwhile.
#[derive(Default)]
pub(crate) struct Kept {
    db: Option<NonNull<ffi::sqlite3>>,
    statements: [Option<Prepared>; Sql::COUNT],
}

// SAFETY: the statements belong to the writer's connection and are stepped only by the thread
// that holds its handle locked ([`append`]); moving them with the writer to another thread
// moves no use of them. They are finalized in `Drop`, when nothing else runs on the connection
// (the writer, which owns it, is being dropped and has no statement in flight).
unsafe impl Send for Kept {}

impl Kept {
    /// The statements for `db`; any kept for another connection are finalized first.
    fn on(&mut self, db: NonNull<ffi::sqlite3>) -> On<'_> {
        if self.db != Some(db) {
            self.statements = Default::default();
            self.db = Some(db);
        }
        On { db, kept: self }
    }
}

/// [`Kept`] on the connection a batch runs on.
struct On<'k> {
    db: NonNull<ffi::sqlite3>,
    kept: &'k mut Kept,
}

impl On<'_> {
    /// `sql`, prepared now if it never was.
    fn statement(&mut self, sql: Sql) -> Result<&mut Prepared, RawError> {
        let slot = &mut self.kept.statements[sql as usize];
        let prepared = match slot.take() {
            Some(prepared) => prepared,
            None => Prepared {
                db: self.db,
                statement: Statement::prepare(self.db, sql.text())
                    .map_err(|code| RawError::of(self.db, code))?,
            },
        };
        Ok(slot.insert(prepared))
    }
}

/// A statement prepared on the writer's connection, finalized when dropped.
pub(super) struct Prepared {
    pub(super) db: NonNull<ffi::sqlite3>,
    pub(super) statement: Statement,
}

impl Prepared {
    /// Binds `values`, steps the statement to its end, and resets it.
    pub(super) fn run(&mut self, values: &[Value<'_>]) -> Result<(), RawError> {
        self.row(values).map(drop)
    }

    /// Binds `values`, steps the statement, and returns its first row's first two columns as
    /// integers (`None`: no row, or a NULL), then resets it. The bound values are let go before
    /// this returns: SQLite reads them only while the statement runs.
    fn row(&mut self, values: &[Value<'_>]) -> Result<Option<(i64, i64)>, RawError> {
        let stmt = self.statement.0.as_ptr();
        let stepped = self.bind(values).and_then(|()| {
            // SAFETY: `stmt` is prepared on `db`, which this thread alone uses; its bound
            // values outlive this call.
            match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_DONE => Ok(None),
                ffi::SQLITE_ROW => Ok(unsafe { two_ints(stmt) }),
                code => Err(RawError::of(self.db, code)),
            }
        });
        // SAFETY: as above. Resetting a statement whose step failed returns that failure
        // again, which `stepped` already holds; the bindings are cleared so that no pointer
        // into the caller's values outlives this call.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        stepped
    }

    fn bind(&mut self, values: &[Value<'_>]) -> Result<(), RawError> {
        let stmt = self.statement.0.as_ptr();
        for (i, value) in values.iter().enumerate() {
            let at = c_int::try_from(i + 1).map_err(|_| RawError::too_big())?;
            // SAFETY: `stmt` is prepared on `db`, which this thread alone uses. Texts and blobs
            // are bound as SQLITE_STATIC: SQLite reads them without copying, and `row` clears
            // the bindings before the borrowed values can go.
            let code = unsafe {
                match value {
                    Value::Null => ffi::sqlite3_bind_null(stmt, at),
                    Value::Int(v) => ffi::sqlite3_bind_int64(stmt, at, *v),
                    Value::Text(s) => ffi::sqlite3_bind_text(
                        stmt,
                        at,
                        s.as_ptr().cast::<c_char>(),
                        length(s.len())?,
                        ffi::SQLITE_STATIC(),
                    ),
                    Value::Blob(b) => ffi::sqlite3_bind_blob(
                        stmt,
                        at,
                        b.as_ptr().cast(),
                        length(b.len())?,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if code != ffi::SQLITE_OK {
                return Err(RawError::of(self.db, code));
            }
        }
        Ok(())
    }
}

/// A text's or blob's length as SQLite takes it.
fn length(len: usize) -> Result<c_int, RawError> {
    c_int::try_from(len).map_err(|_| RawError::too_big())
}

/// The current row's first two columns, if both hold integers.
///
/// # Safety
/// `stmt` has a current row (its last step returned `SQLITE_ROW`) of at least two columns.
unsafe fn two_ints(stmt: *mut ffi::sqlite3_stmt) -> Option<(i64, i64)> {
    unsafe {
        let int = |i| {
            (ffi::sqlite3_column_type(stmt, i) == ffi::SQLITE_INTEGER)
                .then(|| ffi::sqlite3_column_int64(stmt, i))
        };
        Some((int(0)?, int(1)?))
    }
}

/// Runs `sql` (no parameters, no rows).
pub(super) fn exec(db: NonNull<ffi::sqlite3>, sql: &CStr) -> Result<(), RawError> {
    // SAFETY: `db` is open and used by this thread alone; no callback, no error string asked.
    let code = unsafe {
        ffi::sqlite3_exec(
            db.as_ptr(),
            sql.as_ptr(),
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if code == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(RawError::of(db, code))
    }
}

/// An error SQLite returned to the one-call commit: its extended result code and message,
/// which name a constraint's table and columns but never a bound value.
#[derive(Debug)]
pub(crate) struct RawError {
    code: c_int,
    message: String,
}

impl RawError {
    pub(super) fn of(db: NonNull<ffi::sqlite3>, code: c_int) -> Self {
        // SAFETY: `db` is open; the message is copied before anything else runs on it.
        let message = unsafe {
            let text = ffi::sqlite3_errmsg(db.as_ptr());
            if text.is_null() {
                String::new()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        // The step's own code is the extended one (sqlx turns extended codes on); a bare
        // primary code from elsewhere is taken from the connection.
        let code = if code & 0xff == code {
            // SAFETY: as above.
            unsafe { ffi::sqlite3_extended_errcode(db.as_ptr()) }
        } else {
            code
        };
        Self { code, message }
    }

    fn too_big() -> Self {
        Self {
            code: ffi::SQLITE_TOOBIG,
            message: "a value is too large to bind".to_owned(),
        }
    }
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl StdError for RawError {}

impl DatabaseError for RawError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
