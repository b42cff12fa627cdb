//! # consent-ledger api
//!
//! The HTTP transport (actix-web): parse the request, call the use case in
//! `consent_ledger_app`, map its [`consent_ledger_app::AppError`] to RFC 9457 problem+json,
//! render. No SQL here (that is `store/`), no rules (`domain/`), no use case (`app/`).
//!
//! # Layout
//! - [`server`]: the actix app, request ids, problem+json for every error (405 included),
//!   time limits on receiving a request, graceful stop.
//! - [`routes`]: one module per resource of SPEC §7, each a thin layer over its module in
//!   `consent_ledger_app` (`consents`, `requests`, `principals`, `shipments`, `decide`, `gdpr`, …).
//! - [`write`]: a write's `Idempotency-Key` and request id in, `Idempotent-Replayed` out.
//! - [`auth`]: the bearer-token extractor; [`problem`]: RFC 9457 errors; [`body`]:
//!   size- and time-limited JSON bodies parsed naming bad fields.
//! - [`shapes`]: request and answer shapes several resources share.
//! - [`openapi`]: the OpenAPI 3.1 document served at `/openapi.json`; [`annotations`]: the
//!   shared error answers and parameter schemas the routes' annotations name.
//!
//! Hot path: `POST /v1/decisions → Caller (token → principal) → parse_json →
//! app::decide::question → app::decide::decide → {"decision_id","position","allowed",…}`.

pub mod annotations;
pub mod auth;
pub mod body;
pub mod console;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod server;
pub mod shapes;
pub mod write;
