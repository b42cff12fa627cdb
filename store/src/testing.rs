//! Fresh, throw-away PostgreSQL databases for the test suites (the store's contract suite and
//! the HTTP suite), so that every test runs on an empty database of its own, and for the
//! benchmark harness, whose every measured part starts on an empty database too.
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

/// Every test scratch database's name starts so.
const PREFIX: &str = "cl_test_";

/// Every benchmark scratch database's name starts so; tests never sweep these.
const BENCH_PREFIX: &str = "bench_";

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
        Self::create_named(server, PREFIX).await
    }

    /// Creates database `bench_<uuid>` on `server`, for one measured part of a benchmark.
    /// Call [`ScratchDatabase::remove`] when done: a process that exits right after dropping
    /// the guard may leave the database behind.
    pub async fn create_for_bench(server: &PostgresUrl) -> Result<Self, StoreError> {
        Self::create_named(server, BENCH_PREFIX).await
    }

    async fn create_named(server: &PostgresUrl, prefix: &str) -> Result<Self, StoreError> {
        let name = format!("{prefix}{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect_with(&connect_options(server)?)
            .await
            .map_err(StoreError::unavailable)?;
        static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if prefix == PREFIX && !SWEPT.swap(true, std::sync::atomic::Ordering::Relaxed) {
            sweep_stale(&mut conn, server).await;
        }
        // INVARIANT: `name` is one of the prefixes above and hex digits, so it needs no quoting
        // beyond this.
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

    /// Drops the database now (with whatever connections are still open on it) and waits
    /// for it.
    pub async fn remove(mut self) -> Result<(), StoreError> {
        let name = std::mem::take(&mut self.name);
        drop_database(&self.server, &name).await
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if self.name.is_empty() {
            // Removed already.
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on, and DROP DATABASE
        // waits for a checkpoint (about a second while other tests write): a thread with a
        // runtime of its own sends it and is not waited for. Should the test binary exit
        // before the statement went out, the next run's first `create` sweeps the leftover.
        let server = self.server.clone();
        let name = std::mem::take(&mut self.name);
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if let Err(e) = runtime.block_on(drop_database(&server, &name)) {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "could not drop test database {name}: {e}"
                );
            }
        });
    }
}

async fn drop_database(server: &PostgresUrl, name: &str) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect_with(&connect_options(server)?)
        .await
        .map_err(StoreError::unavailable)?;
    // INVARIANT: callers pass names `create_named` made or `is_scratch_name` accepted.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .map_err(StoreError::unavailable)?;
    let _ = conn.close().await;
    Ok(())
}

/// `cl_test_` and 32 hex digits: a name [`ScratchDatabase::create`] makes.
fn is_scratch_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Drops scratch databases created over an hour ago (UUIDv7 names carry their creation time),
/// left behind by test binaries that exited before their drops went out. Best effort.
async fn sweep_stale(conn: &mut PgConnection, server: &PostgresUrl) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'cl_test_')",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for name in names.into_iter().filter(|n| is_scratch_name(n)) {
        let created = uuid::Uuid::try_parse(&name[PREFIX.len()..])
            .ok()
            .and_then(|id| id.get_timestamp())
            .map(|t| t.to_unix().0);
        if created.is_some_and(|secs| secs + 3600 < now) {
            let _ = drop_database(server, &name).await;
        }
    }
}
