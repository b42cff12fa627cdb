//! Fresh, throw-away PostgreSQL databases for the test suites (the store's contract suite and
//! the HTTP suite), so that every test runs on an empty database of its own.
//!
//! The server comes from `DATABASE_URL`. Without it the PostgreSQL tests are skipped with a
//! notice on stderr — unless `CI` is set: CI must never pass by silently skipping them.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::postgres::connect_options;
use crate::{PostgresUrl, StoreError, StoreLocation};

/// The PostgreSQL server the tests use, from `DATABASE_URL`; `None` (after a notice on
/// stderr naming `what`) when it is not set outside CI.
///
/// # Panics
/// When `CI` is set and `DATABASE_URL` is not, or when `DATABASE_URL` is not a `postgres://`
/// URL: a test run that was meant to cover PostgreSQL must fail rather than skip.
pub fn postgres_server(what: &str) -> Option<PostgresUrl> {
    match std::env::var("DATABASE_URL") {
        Ok(url) => match PostgresUrl::parse(&url) {
            Ok(url) => Some(url),
            Err(e) => panic!("DATABASE_URL must name a PostgreSQL server for {what}: {e}"),
        },
        Err(_) if std::env::var_os("CI").is_some() => panic!(
            "CI is set but DATABASE_URL is not: {what} must run on PostgreSQL in CI, never be skipped"
        ),
        Err(_) => {
            // Once per test binary, straight to stderr: the harness captures `eprintln!` of
            // passing tests, and a skip must be seen.
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: the PostgreSQL tests of this binary, e.g. {what}: DATABASE_URL is \
                     not set (set DATABASE_URL=postgres://… to run them; CI does)"
                );
            });
            None
        }
    }
}

/// A database created empty for one test, dropped again when this guard is dropped (even when
/// the test failed), with whatever connections are still open on it.
pub struct ScratchDatabase {
    server: PostgresUrl,
    name: String,
    location: StoreLocation,
}

impl ScratchDatabase {
    /// Creates database `cl_test_<uuid>` on `server`.
    pub async fn create(server: &PostgresUrl) -> Result<Self, StoreError> {
        let name = format!("cl_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect_with(&connect_options(server)?)
            .await
            .map_err(StoreError::unavailable)?;
        // INVARIANT: `name` is `cl_test_` and hex digits, so it needs no quoting beyond this.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .map_err(StoreError::unavailable)?;
        let _ = conn.close().await;
        let location = StoreLocation::Postgres(server.with_database(&name)?);
        Ok(Self {
            server: server.clone(),
            name,
            location,
        })
    }

    /// Where the database is, for `Store::open`.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The database's URL.
    pub fn url(&self) -> &PostgresUrl {
        match &self.location {
            StoreLocation::Postgres(url) => url,
            // INVARIANT: `create` only ever makes a PostgreSQL location.
            StoreLocation::SqliteFile(_) => unreachable!("a scratch database is PostgreSQL"),
        }
    }

    /// The URL text (password included), e.g. for a child process's `DATABASE_URL`.
    pub fn url_text(&self) -> &str {
        self.url().expose()
    }

    async fn drop_database(server: PostgresUrl, name: String) -> Result<(), StoreError> {
        let mut conn = PgConnection::connect_with(&connect_options(&server)?)
            .await
            .map_err(StoreError::unavailable)?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .map_err(StoreError::unavailable)?;
        let _ = conn.close().await;
        Ok(())
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own does the work, and is waited for so no database outlives its test.
        let server = self.server.clone();
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(Self::drop_database(server, name.clone()))
                .map_err(|e| format!("{name}: {e}"))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the test database {e}"),
            Err(_) => eprintln!("dropping a test database panicked"),
        }
    }
}
