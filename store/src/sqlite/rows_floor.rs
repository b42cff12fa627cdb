//! The floor of a durable answer written into SQLite: a benchmark baseline (issue 18).
//!
//! SPEC §9 keeps the log in SQLite (WAL, `synchronous=FULL`). What the least such an answer
//! costs on this machine is measured by committing each request's body as one row of a table
//! with nothing else in it — no index, no leaf, no decision — on a connection opened as the
//! log's is ([`super::options`]: the same journal, sync and `secure_delete`), by the same one
//! call the log's group commit makes ([`super::whole`]): the connection locked out of sqlx's
//! worker once, `BEGIN IMMEDIATE`, a prepared single-row INSERT stepped a body, `COMMIT` — the
//! one fsync of the group.

use std::path::Path;

use sqlx::{Connection, SqliteConnection};

use super::whole::{exec, roll_back, Prepared, RawError, Value};
use crate::error::StoreError;

/// Bodies committed as rows, a group a transaction.
pub struct RowsFloor {
    // Finalized before the connection closes: fields drop in order.
    insert: Prepared,
    conn: SqliteConnection,
}

// SAFETY: the prepared statement belongs to the connection beside it and is stepped only by
// `commit`, while the connection's handle is locked out of sqlx's worker; moving the two
// together to another thread moves no use of either.
unsafe impl Send for RowsFloor {}

impl RowsFloor {
    /// Opens (creating) the SQLite file at `path` as the log's is, with its table of bodies.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = SqliteConnection::connect_with(&super::options(path))
            .await
            .map_err(StoreError::unavailable)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bodies (position INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .map_err(StoreError::unavailable)?;
        let mut handle = conn.lock_handle().await.map_err(StoreError::unavailable)?;
        let db = handle.as_raw_handle();
        let statement =
            super::pages::Statement::prepare(db, c"INSERT INTO bodies (body) VALUES (?1)")
                .map_err(|code| unavailable(RawError::of(db, code)))?;
        drop(handle);
        Ok(Self {
            insert: Prepared { db, statement },
            conn,
        })
    }

    /// Commits `bodies` as rows in one transaction, in their order; durable once this returns.
    pub async fn commit(&mut self, bodies: &[&[u8]]) -> Result<(), StoreError> {
        let mut handle = self
            .conn
            .lock_handle()
            .await
            .map_err(StoreError::unavailable)?;
        let db = handle.as_raw_handle();
        exec(db, c"BEGIN IMMEDIATE").map_err(unavailable)?;
        let written = bodies
            .iter()
            .try_for_each(|body| self.insert.run(&[Value::Blob(body)]))
            .and_then(|()| exec(db, c"COMMIT"));
        written.map_err(|err| unavailable(roll_back(db, err)))
    }
}

fn unavailable(err: RawError) -> StoreError {
    StoreError::unavailable(sqlx::Error::Database(Box::new(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each group is one transaction of rows in the bodies' order, there after a reopen.
    #[tokio::test]
    async fn commits_each_group_as_rows_in_order() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("floor.db");
        let mut floor = RowsFloor::open(&path).await.expect("opened");
        floor.commit(&[b"a", b"bb"]).await.expect("committed");
        floor.commit(&[b"ccc"]).await.expect("committed");
        drop(floor);
        let mut floor = RowsFloor::open(&path).await.expect("reopened");
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT position, body FROM bodies ORDER BY position")
                .fetch_all(&mut floor.conn)
                .await
                .expect("read back");
        assert_eq!(
            rows,
            [
                (1, b"a".to_vec()),
                (2, b"bb".to_vec()),
                (3, b"ccc".to_vec())
            ]
        );
    }
}
