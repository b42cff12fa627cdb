//! # consent-ledger app
//!
//! The use cases, each once, with a typed [`AppError`]. The HTTP API (`api/`), the command line
//! and the benchmarks are transports: they parse, call a function here, and render. Nothing
//! here knows actix, a socket or a terminal; SQL stays in `store/`, rules in `domain/`
//! (docs/adr/0007).
//!
//! # Layout
//! - [`state`]: [`state::AppState`], the store, the read model, the GDPR projector and the
//!   command buses, built once; [`state::ServiceConfig`], [`state::StoreOptions`].
//! - [`auth`]: bearer tokens (kept as SHA-256) and the authenticated [`auth::Caller`].
//! - [`rate_limit`]: the per-principal rate limit, and the per-address one on tokens this node
//!   does not know; off unless `serve --rate-limit` sets it.
//! - [`write`]: the shape of every write: idempotency → command → durable commit → answer,
//!   and the answers writes share ([`write::Created`], [`write::Positioned`]).
//! - [`decide`]: **the hot path**, top to bottom, with the §5 guarantees marked.
//! - [`principals`]: registering a principal and its once-shown token, suspending and
//!   reactivating a partner, who the caller is, the partner directory.
//! - [`consents`]: granting and revoking a consent; listing and reading consents with their
//!   history, and a consent's signed receipt; who may see one ([`consents::can_see`]).
//! - [`shipments`]: registering a parcel, reading it, and who may see it as of any time.
//! - [`requests`]: a partner's consent request: submitting, listing and reading it,
//!   approving it (through [`approvals`]), denying and withdrawing it.
//! - [`approvals`]: a consent request's two-step approval, its completion on start, expiry.
//! - [`background`]: what a serving node does each second besides answering.
//! - [`checkpoint`]: signing and keeping checkpoints of the verifiable log.
//! - [`erasure`]: erasing a shipment's or a data subject's personal data, retention, and
//!   the clean-up that makes the bytes leave every file (SPEC §12).
//! - [`export`]: the §6 bundle of a filtered set of events with proofs, streamed.
//! - [`audit_log`]: recomputing the verifiable log from the events (the `audit-log` command).
//! - [`gdpr`]: the access history, DSAR and RoPA views, and their one typed filter
//!   ([`gdpr::filter`]).
//! - [`webhooks`]: partner webhooks (SPEC §13): delivery targets so far.
//! - [`history`]: an object's history from its stream, and what an approval narrowed.
//! - [`query`]: query strings, ids and paging shared by every transport.
//! - [`error`]: [`AppError`] and the one mapping of each domain refusal to it.
//!
//! Hot path: `decide::question → decide::decide → write::record (idempotency) →
//! decide_and_record: Decider::decide (in memory) → Store::append (group commit, one fsync)
//! → DecisionAnswer`.

pub mod approvals;
pub mod audit_log;
pub mod auth;
pub mod authorizations;
pub mod background;
pub mod bulk;
pub mod caller;
pub mod checkpoint;
pub mod consents;
pub mod decide;
pub mod dpas;
pub mod erasure;
pub mod error;
pub mod export;
pub mod fanout;
pub mod gdpr;
pub mod history;
pub mod principals;
pub mod query;
pub mod rate_limit;
pub mod requests;
pub mod sessions;
pub mod shipments;
pub mod state;
pub mod subscriptions;
pub mod tracking;
pub mod update;
pub mod webhooks;
pub mod write;

pub use error::AppError;
