//! The GDPR projection's tables on PostgreSQL: the shared statements of [`super`].
//!
//! PostgreSQL plans from the statistics autovacuum keeps. A crash of the server loses at
//! most the last applied pages (never their consistency: asynchronous commit), and
//! catch-up writes them again from the position stored with them.
gdpr_backend!(
    sqlx::Postgres,
    "",
    "audit_access",
    Some("SET LOCAL synchronous_commit = off"),
    "INSERT INTO"
);
