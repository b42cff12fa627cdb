//! # consent-ledger api
//!
//! Glue: HTTP (actix-web), the command line (clap), configuration and telemetry. No SQL here
//! (that is `store/`), no rules (that is `domain/`).
//!
//! # Layout
//! - [`cli`]: `serve`, `migrate`, `principal create`, `keygen`, `replay`, `audit-log`, `bench`.
//! - [`server`]: the actix app, request ids, graceful stop.
//! - [`routes`]: one module per resource of SPEC §7.
//! - [`write`]: the shape of every write: idempotency → command → durable commit → answer.
//! - [`auth`]: bearer tokens (stored hashed) and roles; [`problem`]: RFC 9457 errors;
//!   [`rejections`]: domain refusals → HTTP; [`body`]: size-limited parsing naming bad fields.
//! - [`state`]: the store, the read model and the command buses, built once.
//!
//! Write path: `POST /v1/consents → Caller (token → principal) → parse_json → write() →
//! CommandBus::execute (cqrs-es handle) → Store::append → GroupCommit (one fsync per batch)
//! → Projector::catch_up → {"id","position"}`.

pub mod access_filter;
pub mod audit_log;
pub mod auth;
pub mod bench;
pub mod bench_audit;
pub mod bench_decisions;
pub mod bench_log;
pub mod body;
pub mod cli;
pub mod export;
pub mod openapi;
pub mod problem;
pub mod rejections;
pub mod routes;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod verify;
pub mod write;
