//! The authorization matrix (SPEC §2, §10) as one table: every route of the API × every kind
//! of caller × (where the route names an object) tenant A's object, tenant B's object and an
//! object that does not exist — and the status SPEC says each gets.
//!
//! The rule the table encodes: a missing or invalid token is 401; a role that may never do
//! the operation is 403; an object the caller does not see (another tenant's, or none at all)
//! is 404, with the very answer a missing one gets, so existence does not leak; a caller who
//! sees the object but is not the party that may act on it (the partner of a consent revoking
//! it, an auditor approving a request) is 403, which tells it nothing it could not read.
//!
//! One test builds one world — two tenants, A (shipper A, partner P) and B (shipper B,
//! partner Q), each with a shipment, a consent, a pending request and a decision, and a
//! gateway, a privacy officer and a regulator — then sends every cell of the table as a real
//! HTTP request to the real app, and collects every disagreement into one list. A cell that
//! consumes what it acts on (a revocation, an approval, a token rotation, a suspension) acts
//! on an object made for it alone, so the order of the rows changes no answer. A refusal and a
//! read must leave the log as it was; a write that succeeds must add to it.
//!
//! The test also fails when an operation of `/openapi.json` has no row here, so that a new
//! route cannot be added without deciding who may call it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{consent_for, shipment_body, spawn_app, Reply, TestApp, PROBLEMS};

/// Who calls: the table's columns, in [`CALLERS`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    /// No `Authorization` header.
    Anonymous,
    /// A bearer token of the right shape that no principal holds.
    BadToken,
    Admin,
    /// Shipper A: the owner of tenant A's objects.
    ShipperA,
    /// Shipper B: tenant A's objects are another tenant's to it.
    ShipperB,
    /// Partner P: the partner tenant A's consent and request concern.
    PartnerP,
    /// Partner Q: the partner of tenant B's objects.
    PartnerQ,
    Gateway,
    PrivacyOfficer,
    Regulator,
}

const CALLERS: [Who; 10] = [
    Who::Anonymous,
    Who::BadToken,
    Who::Admin,
    Who::ShipperA,
    Who::ShipperB,
    Who::PartnerP,
    Who::PartnerQ,
    Who::Gateway,
    Who::PrivacyOfficer,
    Who::Regulator,
];

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::BadToken => "bad token",
            Who::Admin => "admin",
            Who::ShipperA => "shipper A",
            Who::ShipperB => "shipper B",
            Who::PartnerP => "partner P",
            Who::PartnerQ => "partner Q",
            Who::Gateway => "gateway",
            Who::PrivacyOfficer => "privacy officer",
            Who::Regulator => "regulator",
        }
    }

    /// The role of a principal like this caller; none for the unauthenticated columns.
    fn role(self) -> Option<&'static str> {
        match self {
            Who::Anonymous | Who::BadToken => None,
            Who::Admin => Some("admin"),
            Who::ShipperA | Who::ShipperB => Some("shipper"),
            Who::PartnerP | Who::PartnerQ => Some("partner"),
            Who::Gateway => Some("gateway"),
            Who::PrivacyOfficer => Some("privacy_officer"),
            Who::Regulator => Some("regulator"),
        }
    }
}

/// The object a row's request names (in its path, query or body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Obj {
    /// The route names no object.
    None,
    /// Tenant A's: shipper A's shipment, its consent to partner P, P's request to A.
    A,
    /// Tenant B's: shipper B's shipment, its consent to partner Q, Q's request to B.
    B,
    /// An id (or tracking number) that nothing has.
    Missing,
    /// A principal route on the caller itself (a principal of the caller's role made for the
    /// row, so that rotating or suspending it changes nothing else).
    Me,
    /// A principal route on another principal (a shipper made for the row).
    Other,
}

impl Obj {
    fn label(self) -> &'static str {
        match self {
            Obj::None => "",
            Obj::A => " [A's]",
            Obj::B => " [B's]",
            Obj::Missing => " [missing]",
            Obj::Me => " [itself]",
            Obj::Other => " [another principal]",
        }
    }
}

/// Every operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    LogVkey,
    LogCheckpoint,
    LogSignCheckpoint,
    LogEntries,
    LogInclusion,
    LogConsistency,
    AuditExport,
    AuditAccess,
    AuditDsar,
    AuditRopa,
    CreatePrincipal,
    RotateToken,
    Suspend,
    Reactivate,
    Me,
    Partners,
    Decide,
    DecideBatch,
    RegisterShipment,
    GetShipment,
    AuthorizedParties,
    EraseShipment,
    EraseSubject,
    IngestTracking,
    RegisterDpa,
    ListDpas,
    GetDpa,
    TerminateDpa,
    GrantAuthorization,
    ListAuthorizations,
    GetAuthorization,
    RevokeAuthorization,
    ObjectToAuthorization,
    WithdrawObjection,
    CreateSubscription,
    ListSubscriptions,
    GetSubscription,
    DeleteSubscription,
    PullTracking,
    PullTrackingByNumber,
    RegisterWebhook,
    ListWebhooks,
    GetWebhook,
    DisableWebhook,
    EnableWebhook,
    RotateWebhookKey,
    TestWebhook,
    WebhookDeliveries,
    RedeliverWebhook,
    GrantConsent,
    ListConsents,
    GetConsent,
    ConsentReceipt,
    RevokeConsent,
    SubmitRequest,
    ListRequests,
    GetRequest,
    ApproveRequest,
    DenyRequest,
    WithdrawRequest,
}

const OPS: [Op; 64] = [
    Op::Healthz,
    Op::Readyz,
    Op::Metrics,
    Op::OpenApi,
    Op::LogVkey,
    Op::LogCheckpoint,
    Op::LogSignCheckpoint,
    Op::LogEntries,
    Op::LogInclusion,
    Op::LogConsistency,
    Op::AuditExport,
    Op::AuditAccess,
    Op::AuditDsar,
    Op::AuditRopa,
    Op::CreatePrincipal,
    Op::RotateToken,
    Op::Suspend,
    Op::Reactivate,
    Op::Me,
    Op::Partners,
    Op::Decide,
    Op::DecideBatch,
    Op::RegisterShipment,
    Op::GetShipment,
    Op::AuthorizedParties,
    Op::EraseShipment,
    Op::EraseSubject,
    Op::IngestTracking,
    Op::RegisterDpa,
    Op::ListDpas,
    Op::GetDpa,
    Op::TerminateDpa,
    Op::GrantAuthorization,
    Op::ListAuthorizations,
    Op::GetAuthorization,
    Op::RevokeAuthorization,
    Op::ObjectToAuthorization,
    Op::WithdrawObjection,
    Op::CreateSubscription,
    Op::ListSubscriptions,
    Op::GetSubscription,
    Op::DeleteSubscription,
    Op::PullTracking,
    Op::PullTrackingByNumber,
    Op::RegisterWebhook,
    Op::ListWebhooks,
    Op::GetWebhook,
    Op::DisableWebhook,
    Op::EnableWebhook,
    Op::RotateWebhookKey,
    Op::TestWebhook,
    Op::WebhookDeliveries,
    Op::RedeliverWebhook,
    Op::GrantConsent,
    Op::ListConsents,
    Op::GetConsent,
    Op::ConsentReceipt,
    Op::RevokeConsent,
    Op::SubmitRequest,
    Op::ListRequests,
    Op::GetRequest,
    Op::ApproveRequest,
    Op::DenyRequest,
    Op::WithdrawRequest,
];

impl Op {
    /// The method and the path as `/openapi.json` names them.
    fn route(self) -> (&'static str, &'static str) {
        match self {
            Op::Healthz => ("GET", "/healthz"),
            Op::Readyz => ("GET", "/readyz"),
            Op::Metrics => ("GET", "/metrics"),
            Op::OpenApi => ("GET", "/openapi.json"),
            Op::LogVkey => ("GET", "/v1/log/vkey"),
            Op::LogCheckpoint => ("GET", "/v1/log/checkpoint"),
            Op::LogSignCheckpoint => ("POST", "/v1/log/checkpoint"),
            Op::LogEntries => ("GET", "/v1/log/entries"),
            Op::LogInclusion => ("GET", "/v1/log/proof/inclusion"),
            Op::LogConsistency => ("GET", "/v1/log/proof/consistency"),
            Op::AuditExport => ("GET", "/v1/audit/export"),
            Op::AuditAccess => ("GET", "/v1/audit/access"),
            Op::AuditDsar => ("GET", "/v1/audit/dsar"),
            Op::AuditRopa => ("GET", "/v1/audit/ropa"),
            Op::CreatePrincipal => ("POST", "/v1/principals"),
            Op::RotateToken => ("POST", "/v1/principals/{id}/rotate-token"),
            Op::Suspend => ("POST", "/v1/principals/{id}/suspend"),
            Op::Reactivate => ("POST", "/v1/principals/{id}/reactivate"),
            Op::Me => ("GET", "/v1/me"),
            Op::Partners => ("GET", "/v1/partners"),
            Op::Decide => ("POST", "/v1/decisions"),
            Op::DecideBatch => ("POST", "/v1/decisions/batch"),
            Op::RegisterShipment => ("POST", "/v1/shipments"),
            Op::GetShipment => ("GET", "/v1/shipments/{id}"),
            Op::AuthorizedParties => ("GET", "/v1/shipments/{id}/authorized-parties"),
            Op::EraseShipment => ("POST", "/v1/shipments/{id}/erase"),
            Op::EraseSubject => ("POST", "/v1/subjects/erase"),
            Op::IngestTracking => ("POST", "/v1/tracking-events"),
            Op::RegisterDpa => ("POST", "/v1/dpas"),
            Op::ListDpas => ("GET", "/v1/dpas"),
            Op::GetDpa => ("GET", "/v1/dpas/{id}"),
            Op::TerminateDpa => ("POST", "/v1/dpas/{id}/terminate"),
            Op::GrantAuthorization => ("POST", "/v1/authorizations"),
            Op::ListAuthorizations => ("GET", "/v1/authorizations"),
            Op::GetAuthorization => ("GET", "/v1/authorizations/{id}"),
            Op::RevokeAuthorization => ("POST", "/v1/authorizations/{id}/revoke"),
            Op::ObjectToAuthorization => ("POST", "/v1/authorizations/{id}/objection"),
            Op::WithdrawObjection => ("DELETE", "/v1/authorizations/{id}/objection"),
            Op::CreateSubscription => ("POST", "/v1/subscriptions"),
            Op::ListSubscriptions => ("GET", "/v1/subscriptions"),
            Op::GetSubscription => ("GET", "/v1/subscriptions/{id}"),
            Op::DeleteSubscription => ("DELETE", "/v1/subscriptions/{id}"),
            Op::PullTracking => ("GET", "/v1/shipments/{id}/tracking"),
            Op::PullTrackingByNumber => ("GET", "/v1/tracking"),
            Op::RegisterWebhook => ("POST", "/v1/webhook-endpoints"),
            Op::ListWebhooks => ("GET", "/v1/webhook-endpoints"),
            Op::GetWebhook => ("GET", "/v1/webhook-endpoints/{id}"),
            Op::DisableWebhook => ("POST", "/v1/webhook-endpoints/{id}/disable"),
            Op::EnableWebhook => ("POST", "/v1/webhook-endpoints/{id}/enable"),
            Op::RotateWebhookKey => ("POST", "/v1/webhook-endpoints/{id}/rotate-key"),
            Op::TestWebhook => ("POST", "/v1/webhook-endpoints/{id}/test"),
            Op::WebhookDeliveries => ("GET", "/v1/webhook-endpoints/{id}/deliveries"),
            Op::RedeliverWebhook => ("POST", "/v1/webhook-deliveries/{message_id}/redeliver"),
            Op::GrantConsent => ("POST", "/v1/consents"),
            Op::ListConsents => ("GET", "/v1/consents"),
            Op::GetConsent => ("GET", "/v1/consents/{id}"),
            Op::ConsentReceipt => ("GET", "/v1/consents/{id}/receipt"),
            Op::RevokeConsent => ("POST", "/v1/consents/{id}/revoke"),
            Op::SubmitRequest => ("POST", "/v1/consent-requests"),
            Op::ListRequests => ("GET", "/v1/consent-requests"),
            Op::GetRequest => ("GET", "/v1/consent-requests/{id}"),
            Op::ApproveRequest => ("POST", "/v1/consent-requests/{id}/approve"),
            Op::DenyRequest => ("POST", "/v1/consent-requests/{id}/deny"),
            Op::WithdrawRequest => ("POST", "/v1/consent-requests/{id}/withdraw"),
        }
    }

    /// Whether a success records events in the log. Every other answer — a read, a refusal,
    /// signing a checkpoint (kept beside the log, not in it) — must leave the log as it was.
    fn records(self) -> bool {
        matches!(
            self,
            Op::CreatePrincipal
                | Op::RotateToken
                | Op::Suspend
                | Op::Reactivate
                | Op::Decide
                | Op::DecideBatch
                | Op::PullTracking
                | Op::PullTrackingByNumber
                | Op::RegisterDpa
                | Op::TerminateDpa
                | Op::GrantAuthorization
                | Op::RevokeAuthorization
                | Op::ObjectToAuthorization
                | Op::WithdrawObjection
                | Op::CreateSubscription
                | Op::DeleteSubscription
                | Op::RegisterShipment
                | Op::EraseShipment
                | Op::EraseSubject
                | Op::RegisterWebhook
                | Op::DisableWebhook
                | Op::EnableWebhook
                | Op::RotateWebhookKey
                | Op::TestWebhook
                | Op::GrantConsent
                | Op::RevokeConsent
                | Op::SubmitRequest
                | Op::ApproveRequest
                | Op::DenyRequest
                | Op::WithdrawRequest
        )
    }
}

/// One line of the table: an operation on an object, and the status each caller in
/// [`CALLERS`] order must get.
struct Row {
    op: Op,
    obj: Obj,
    expect: [u16; 10],
}

const fn row(op: Op, obj: Obj, expect: [u16; 10]) -> Row {
    Row { op, obj, expect }
}

/// A public address written as a literal: registration checks it without name resolution.
const WEBHOOK_URL: &str = "https://93.184.215.14/hooks/matrix";

use Obj::{Me as ME, Missing as MISSING, None as NONE, Other as OTHER, A, B};

/// The matrix. Columns:
/// anonymous, bad token, admin, shipper A, shipper B, partner P, partner Q, gateway,
/// privacy officer, regulator.
#[rustfmt::skip]
static TABLE: &[Row] = &[
    //                                   anon bad  adm  shA  shB  P    Q    gw   po   reg
    // Operations: public probes and the document; metrics are the operator's.
    row(Op::Healthz, NONE,              [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::Readyz, NONE,               [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::OpenApi, NONE,              [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::Metrics, NONE,              [401, 401, 200, 403, 403, 403, 403, 403, 403, 403]),

    // The verifiable log: the key is public; checkpoints and proofs (hashes only) for every
    // principal; signing is the operator's; the entries name every tenant, so auditors only.
    row(Op::LogVkey, NONE,              [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::LogCheckpoint, NONE,        [401, 401, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::LogSignCheckpoint, NONE,    [401, 401, 200, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::LogEntries, NONE,           [401, 401, 403, 403, 403, 403, 403, 403, 200, 200]),
    row(Op::LogInclusion, NONE,         [401, 401, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::LogConsistency, NONE,       [401, 401, 200, 200, 200, 200, 200, 200, 200, 200]),
    // The §6 bundle (by shipment_id): privacy officers and regulators (SPEC §2 "exports").
    row(Op::AuditExport, NONE,          [401, 401, 403, 403, 403, 200, 200, 403, 200, 200]),
    row(Op::AuditExport, A,             [401, 401, 403, 403, 403, 200, 200, 403, 200, 200]),
    row(Op::AuditExport, B,             [401, 401, 403, 403, 403, 200, 200, 403, 200, 200]),
    row(Op::AuditExport, MISSING,       [401, 401, 403, 403, 403, 200, 200, 403, 200, 200]),

    // Audit views (by shipment_id; DSAR by carrier + tracking number): auditors everything, a
    // shipper its own shipments' records, a partner its own decisions, the gateway nothing.
    row(Op::AuditAccess, NONE,          [401, 401, 403, 200, 200, 200, 200, 403, 200, 200]),
    row(Op::AuditAccess, A,             [401, 401, 403, 200, 404, 200, 200, 403, 200, 200]),
    row(Op::AuditAccess, B,             [401, 401, 403, 404, 200, 200, 200, 403, 200, 200]),
    row(Op::AuditAccess, MISSING,       [401, 401, 403, 404, 404, 200, 200, 403, 200, 200]),
    // Art. 15 is answered by the controller: auditors and the shipper of the parcel.
    row(Op::AuditDsar, A,               [401, 401, 403, 200, 404, 403, 403, 403, 200, 200]),
    row(Op::AuditDsar, B,               [401, 401, 403, 404, 200, 403, 403, 403, 200, 200]),
    row(Op::AuditDsar, MISSING,         [401, 401, 403, 404, 404, 403, 403, 403, 200, 200]),
    // Art. 30: privacy officers and regulators.
    row(Op::AuditRopa, NONE,            [401, 401, 403, 403, 403, 403, 403, 403, 200, 200]),

    // Principals: the admin registers, suspends and reactivates; anyone rotates its own token,
    // the admin anyone's; another's id is 404 to a non-admin, as if it did not exist.
    row(Op::CreatePrincipal, NONE,      [401, 401, 201, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::RotateToken, ME,            [401, 401, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::RotateToken, OTHER,         [401, 401, 200, 404, 404, 404, 404, 404, 404, 404]),
    row(Op::RotateToken, MISSING,       [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
    // An admin cannot suspend itself (422 naming `id`); reactivating an active one is 409.
    row(Op::Suspend, ME,                [401, 401, 422, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::Suspend, OTHER,             [401, 401, 200, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::Suspend, MISSING,           [401, 401, 404, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::Reactivate, ME,             [401, 401, 409, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::Reactivate, OTHER,          [401, 401, 200, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::Reactivate, MISSING,        [401, 401, 404, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::Me, NONE,                   [401, 401, 200, 200, 200, 200, 200, 200, 200, 200]),
    // Partners do not see each other.
    row(Op::Partners, NONE,             [401, 401, 200, 200, 200, 403, 403, 200, 200, 200]),

    // Decisions (about A's / B's / no shipment; the gateway names that tenant's partner): a
    // partner for itself, the gateway for any partner; every question is answered and recorded,
    // an unknown or foreign shipment as a deny (SPEC §10), never as 404.
    row(Op::Decide, A,                  [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::Decide, B,                  [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::Decide, MISSING,            [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::DecideBatch, A,             [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::DecideBatch, B,             [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::DecideBatch, MISSING,       [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),

    // Shipments: the carrier's gateway or the admin registers one for a shipper (a fresh
    // tracking number each time; an unknown shipper_id is 422); its shipper, the gateway and
    // auditors read it, anyone else as if it did not exist.
    row(Op::RegisterShipment, A,        [401, 401, 201, 403, 403, 403, 403, 201, 403, 403]),
    row(Op::RegisterShipment, B,        [401, 401, 201, 403, 403, 403, 403, 201, 403, 403]),
    row(Op::RegisterShipment, MISSING,  [401, 401, 422, 403, 403, 403, 403, 422, 403, 403]),
    row(Op::GetShipment, A,             [401, 401, 404, 200, 404, 404, 404, 200, 200, 200]),
    row(Op::GetShipment, B,             [401, 401, 404, 404, 200, 404, 404, 200, 200, 200]),
    row(Op::GetShipment, MISSING,       [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
    // Erasure (SPEC §12): the carrier's privacy officer and the admin; a fresh shipment per
    // cell, so the tenants' own stay.
    row(Op::EraseShipment, A,           [401, 401, 200, 403, 403, 403, 403, 403, 200, 403]),
    row(Op::EraseShipment, B,           [401, 401, 200, 403, 403, 403, 403, 403, 200, 403]),
    row(Op::EraseShipment, MISSING,     [401, 401, 404, 403, 403, 403, 403, 403, 404, 403]),
    row(Op::EraseSubject, NONE,         [401, 401, 200, 403, 403, 403, 403, 403, 200, 403]),
    // Tracking updates (SPEC §14): the carrier's gateway and the admin send them; they are
    // kept beside the log, which does not grow.
    row(Op::IngestTracking, NONE,       [401, 401, 200, 403, 403, 403, 403, 200, 403, 403]),
    // Subscriptions (SPEC §14): a partner subscribes for itself (each shipment decided and
    // recorded: tenant A's partner is allowed on A's shipment and gets 201, B's is not and gets
    // 200 with nothing made), the gateway for a partner it names; a fresh subscription of
    // tenant A's partner per cell for reads and deletions.
    // The DPA register (SPEC §16): the admin registers and terminates; a partner reads its own
    // (another's is missing), privacy officers and regulators all. A fresh DPA of tenant A's
    // partner per cell.
    row(Op::RegisterDpa, NONE,          [401, 401, 201, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::ListDpas, NONE,             [401, 401, 200, 403, 403, 200, 200, 403, 200, 200]),
    row(Op::GetDpa, A,                  [401, 401, 200, 403, 403, 200, 404, 403, 200, 200]),
    row(Op::GetDpa, MISSING,            [401, 401, 404, 403, 403, 404, 404, 403, 404, 404]),
    row(Op::TerminateDpa, A,            [401, 401, 200, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::TerminateDpa, MISSING,      [401, 401, 404, 403, 403, 403, 403, 403, 403, 403]),
    // Carrier authorizations (SPEC §16): the admin authorizes and revokes; a partner reads its
    // own (another's is missing), a shipper those that can cover its shipments (tenant A's
    // names shipper A alone: missing to shipper B), privacy officers and regulators all, the
    // gateway none. Only a shipper it covers objects and withdraws its objection; anyone else
    // who sees it is refused. A fresh authorization of tenant A's partner per cell (under a
    // fresh DPA), with shipper A's objection for a withdrawal.
    row(Op::GrantAuthorization, NONE,   [401, 401, 201, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::ListAuthorizations, NONE,   [401, 401, 200, 200, 200, 200, 200, 403, 200, 200]),
    row(Op::GetAuthorization, A,        [401, 401, 200, 200, 404, 200, 404, 403, 200, 200]),
    row(Op::GetAuthorization, MISSING,  [401, 401, 404, 404, 404, 404, 404, 403, 404, 404]),
    row(Op::RevokeAuthorization, A,     [401, 401, 200, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::RevokeAuthorization, MISSING, [401, 401, 404, 403, 403, 403, 403, 403, 403, 403]),
    row(Op::ObjectToAuthorization, A,   [401, 401, 403, 200, 404, 403, 404, 403, 403, 403]),
    row(Op::ObjectToAuthorization, MISSING, [401, 401, 404, 404, 404, 404, 404, 403, 404, 404]),
    row(Op::WithdrawObjection, A,       [401, 401, 403, 200, 404, 403, 404, 403, 403, 403]),
    row(Op::WithdrawObjection, MISSING, [401, 401, 404, 404, 404, 404, 404, 403, 404, 404]),
    row(Op::CreateSubscription, NONE,   [401, 401, 403, 403, 403, 201, 200, 201, 403, 403]),
    row(Op::ListSubscriptions, NONE,    [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::GetSubscription, A,         [401, 401, 403, 403, 403, 200, 404, 200, 403, 403]),
    row(Op::GetSubscription, MISSING,   [401, 401, 403, 403, 403, 404, 404, 404, 403, 403]),
    row(Op::DeleteSubscription, A,      [401, 401, 403, 403, 403, 200, 404, 200, 403, 403]),
    row(Op::DeleteSubscription, MISSING, [401, 401, 403, 403, 403, 404, 404, 404, 403, 403]),
    // Pulling tracking is a read decided and recorded like a decision (allowed or denied).
    row(Op::PullTracking, A,            [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::PullTracking, B,            [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::PullTracking, MISSING,      [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::PullTrackingByNumber, A,    [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::PullTrackingByNumber, B,    [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    row(Op::PullTrackingByNumber, MISSING, [401, 401, 403, 403, 403, 200, 200, 200, 403, 403]),
    // Webhook endpoints (SPEC §13): a partner manages its own, an admin any partner's; another
    // partner's endpoint is missing to it. A fresh endpoint of tenant A's partner per cell.
    row(Op::RegisterWebhook, NONE,      [401, 401, 201, 403, 403, 201, 201, 403, 403, 403]),
    row(Op::ListWebhooks, NONE,         [401, 401, 200, 403, 403, 200, 200, 403, 403, 403]),
    row(Op::GetWebhook, A,              [401, 401, 200, 403, 403, 200, 404, 403, 403, 403]),
    row(Op::GetWebhook, MISSING,        [401, 401, 404, 403, 403, 404, 404, 403, 403, 403]),
    row(Op::DisableWebhook, A,          [401, 401, 200, 403, 403, 200, 404, 403, 403, 403]),
    row(Op::DisableWebhook, MISSING,    [401, 401, 404, 403, 403, 404, 404, 403, 403, 403]),
    row(Op::EnableWebhook, A,           [401, 401, 200, 403, 403, 200, 404, 403, 403, 403]),
    row(Op::EnableWebhook, MISSING,     [401, 401, 404, 403, 403, 404, 404, 403, 403, 403]),
    row(Op::RotateWebhookKey, A,        [401, 401, 200, 403, 403, 200, 404, 403, 403, 403]),
    row(Op::RotateWebhookKey, MISSING,  [401, 401, 404, 403, 403, 404, 404, 403, 403, 403]),
    row(Op::TestWebhook, A,             [401, 401, 202, 403, 403, 202, 404, 403, 403, 403]),
    row(Op::TestWebhook, MISSING,       [401, 401, 404, 403, 403, 404, 404, 403, 403, 403]),
    row(Op::WebhookDeliveries, A,       [401, 401, 200, 403, 403, 200, 404, 403, 403, 403]),
    row(Op::WebhookDeliveries, MISSING, [401, 401, 404, 403, 403, 404, 404, 403, 403, 403]),
    // A message of a fresh endpoint of tenant A's partner (its test message).
    row(Op::RedeliverWebhook, A,        [401, 401, 202, 403, 403, 202, 404, 403, 403, 403]),
    row(Op::RedeliverWebhook, MISSING,  [401, 401, 404, 403, 403, 404, 404, 403, 403, 403]),
    row(Op::AuthorizedParties, A,       [401, 401, 404, 200, 404, 404, 404, 200, 200, 200]),
    row(Op::AuthorizedParties, B,       [401, 401, 404, 404, 200, 404, 404, 200, 200, 200]),
    row(Op::AuthorizedParties, MISSING, [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),

    // Consents: a shipper grants for its own shipments (naming any other shipment, another
    // tenant's or none, is the same 422 on `scope.shipment_ids`); its shipper, its partner and
    // auditors read it; only its shipper revokes (a fresh consent per cell).
    row(Op::GrantConsent, A,            [401, 401, 403, 201, 422, 403, 403, 403, 403, 403]),
    row(Op::GrantConsent, B,            [401, 401, 403, 422, 201, 403, 403, 403, 403, 403]),
    row(Op::GrantConsent, MISSING,      [401, 401, 403, 422, 422, 403, 403, 403, 403, 403]),
    row(Op::ListConsents, NONE,         [401, 401, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::GetConsent, A,              [401, 401, 404, 200, 404, 200, 404, 404, 200, 200]),
    row(Op::GetConsent, B,              [401, 401, 404, 404, 200, 404, 200, 404, 200, 200]),
    row(Op::GetConsent, MISSING,        [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
    row(Op::ConsentReceipt, A,          [401, 401, 404, 200, 404, 200, 404, 404, 200, 200]),
    row(Op::ConsentReceipt, B,          [401, 401, 404, 404, 200, 404, 200, 404, 200, 200]),
    row(Op::ConsentReceipt, MISSING,    [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
    row(Op::RevokeConsent, A,           [401, 401, 404, 200, 404, 403, 404, 404, 403, 403]),
    row(Op::RevokeConsent, B,           [401, 401, 404, 404, 200, 404, 403, 404, 403, 403]),
    row(Op::RevokeConsent, MISSING,     [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),

    // Consent requests: any partner asks any shipper about that shipper's shipment; the
    // partner who asked, the shipper asked and auditors read it; the shipper asked approves or
    // denies, the partner who asked withdraws (a fresh pending request per cell).
    row(Op::SubmitRequest, A,           [401, 401, 403, 403, 403, 201, 201, 403, 403, 403]),
    row(Op::SubmitRequest, B,           [401, 401, 403, 403, 403, 201, 201, 403, 403, 403]),
    row(Op::ListRequests, NONE,         [401, 401, 200, 200, 200, 200, 200, 200, 200, 200]),
    row(Op::GetRequest, A,              [401, 401, 404, 200, 404, 200, 404, 404, 200, 200]),
    row(Op::GetRequest, B,              [401, 401, 404, 404, 200, 404, 200, 404, 200, 200]),
    row(Op::GetRequest, MISSING,        [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
    row(Op::ApproveRequest, A,          [401, 401, 404, 200, 404, 403, 404, 404, 403, 403]),
    row(Op::ApproveRequest, B,          [401, 401, 404, 404, 200, 404, 403, 404, 403, 403]),
    row(Op::ApproveRequest, MISSING,    [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
    row(Op::DenyRequest, A,             [401, 401, 404, 200, 404, 403, 404, 404, 403, 403]),
    row(Op::DenyRequest, B,             [401, 401, 404, 404, 200, 404, 403, 404, 403, 403]),
    row(Op::DenyRequest, MISSING,       [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
    row(Op::WithdrawRequest, A,         [401, 401, 404, 403, 404, 200, 404, 404, 403, 403]),
    row(Op::WithdrawRequest, B,         [401, 401, 404, 404, 403, 404, 200, 404, 403, 403]),
    row(Op::WithdrawRequest, MISSING,   [401, 401, 404, 404, 404, 404, 404, 404, 404, 404]),
];

/// A cell of [`TABLE`] that asserts today's answer where SPEC says otherwise: the fix is
/// outside what this test may change. Each is marked `// known:` in the table. When the code
/// is fixed the cell fails; then write SPEC's answer in the table and drop the entry here.
struct KnownGap {
    op: Op,
    obj: Obj,
    who: Who,
    /// What SPEC says the cell should answer.
    spec: u16,
    why: &'static str,
}

#[rustfmt::skip]
const KNOWN_GAPS: &[KnownGap] = &[
];

/// The status the table expects of `who` calling `op` on `obj`.
fn expected(op: Op, obj: Obj, who: Who) -> Option<u16> {
    let column = CALLERS.iter().position(|c| *c == who)?;
    TABLE
        .iter()
        .find(|r| r.op == op && r.obj == obj)
        .map(|r| r.expect[column])
}

/// An id nothing has (a well-formed UUIDv7).
const MISSING_ID: &str = "00000000-0000-7000-8000-000000000000";
/// A bearer token of the shape the service issues, held by no principal.
const BAD_TOKEN: &str = "cl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const CARRIER: &str = "DHL";

/// One tenant's objects.
struct Tenant {
    shipper_id: String,
    shipper: String,
    partner_id: String,
    partner: String,
    shipment: String,
    tracking: String,
    consent: String,
    request: String,
}

struct World {
    app: TestApp,
    a: Tenant,
    b: Tenant,
    gateway: String,
    privacy_officer: String,
    regulator: String,
    serial: AtomicU32,
}

/// A consent-request body from a partner to `shipper` about `shipment`.
fn request_for(shipper: &str, shipment: &str) -> Value {
    json!({
        "shipper_id": shipper,
        "scope": { "type": "shipments", "shipment_ids": [shipment] },
        "purposes": ["insurance_claim"],
        "data_categories": ["status_events"],
        "legal_basis": "contract",
        "justification": "we settle this parcel's claims"
    })
}

fn decision_for(partner: Option<&str>, shipment: &str) -> Value {
    let mut body = json!({
        "shipment_id": shipment,
        "purpose": "insurance_claim",
        "data_categories": ["status_events"]
    });
    if let Some(p) = partner {
        body["partner_id"] = json!(p);
    }
    body
}

async fn created(app: &TestApp, path: &str, token: &str, body: Value) -> String {
    let r = app.post(path, token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
    r.id()
}

impl World {
    async fn build() -> World {
        let app = spawn_app().await;
        let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
        let (_, privacy_officer) = app.principal("privacy_officer", "DPO").await;
        let (_, regulator) = app.principal("regulator", "Authority").await;
        let a = Self::tenant(&app, &gateway, "A").await;
        let b = Self::tenant(&app, &gateway, "B").await;
        World {
            app,
            a,
            b,
            gateway,
            privacy_officer,
            regulator,
            serial: AtomicU32::new(0),
        }
    }

    /// A shipper and a partner, a shipment of the shipper, its consent to the partner, the
    /// partner's pending request, and an allowed decision on the shipment.
    async fn tenant(app: &TestApp, gateway: &str, name: &str) -> Tenant {
        let (shipper_id, shipper) = app.principal("shipper", &format!("Shop {name}")).await;
        let (partner_id, partner) = app.partner(&format!("Insurer {name}")).await;
        let tracking = format!("MTX-{name}-0001");
        let shipment = created(
            app,
            "/v1/shipments",
            gateway,
            shipment_body(&shipper_id, CARRIER, &tracking, "DE"),
        )
        .await;
        let consent = created(
            app,
            "/v1/consents",
            &shipper,
            consent_for(&partner_id, &shipment),
        )
        .await;
        let request = created(
            app,
            "/v1/consent-requests",
            &partner,
            request_for(&shipper_id, &shipment),
        )
        .await;
        let decided = app
            .post("/v1/decisions", &partner, decision_for(None, &shipment))
            .await;
        assert_eq!(decided.body["allowed"], true, "{}", decided.body);
        Tenant {
            shipper_id,
            shipper,
            partner_id,
            partner,
            shipment,
            tracking,
            consent,
            request,
        }
    }

    fn token(&self, who: Who) -> Option<&str> {
        Some(match who {
            Who::Anonymous => return None,
            Who::BadToken => BAD_TOKEN,
            Who::Admin => &self.app.admin,
            Who::ShipperA => &self.a.shipper,
            Who::ShipperB => &self.b.shipper,
            Who::PartnerP => &self.a.partner,
            Who::PartnerQ => &self.b.partner,
            Who::Gateway => &self.gateway,
            Who::PrivacyOfficer => &self.privacy_officer,
            Who::Regulator => &self.regulator,
        })
    }

    fn tenant_of(&self, obj: Obj) -> Option<&Tenant> {
        match obj {
            A => Some(&self.a),
            B => Some(&self.b),
            _ => None,
        }
    }

    fn next(&self) -> u32 {
        self.serial.fetch_add(1, Ordering::Relaxed)
    }

    /// A principal of `role` made for one cell: (id, token).
    async fn fresh_principal(&self, role: &str) -> (String, String) {
        let name = format!("Matrix {role} {}", self.next());
        match role {
            "partner" => self.app.partner(&name).await,
            _ => self.app.principal(role, &name).await,
        }
    }

    /// A consent of `t`'s shipper to `t`'s partner, made for one cell.
    async fn fresh_consent(&self, t: &Tenant) -> String {
        created(
            &self.app,
            "/v1/consents",
            &t.shipper,
            consent_for(&t.partner_id, &t.shipment),
        )
        .await
    }

    /// A pending request of `t`'s partner to `t`'s shipper, made for one cell.
    async fn fresh_request(&self, t: &Tenant) -> String {
        created(
            &self.app,
            "/v1/consent-requests",
            &t.partner,
            request_for(&t.shipper_id, &t.shipment),
        )
        .await
    }

    /// A DPA of `t`'s partner in the register, made for one cell.
    async fn fresh_dpa(&self, t: &Tenant) -> String {
        created(
            &self.app,
            "/v1/dpas",
            &self.app.admin,
            dpa_for(&t.partner_id),
        )
        .await
    }

    /// The id `obj` names for a route on shipments.
    fn shipment(&self, obj: Obj) -> &str {
        self.tenant_of(obj).map_or(MISSING_ID, |t| &t.shipment)
    }

    /// The request a cell sends, with the token it sends (a cell acting on itself sends the
    /// token of the principal made for it).
    async fn prepare(&self, op: Op, obj: Obj, who: Who) -> Call {
        let mut token = self.token(who).map(str::to_owned);
        let tenant = self.tenant_of(obj);
        let shipment = self.shipment(obj).to_owned();
        // The partner a decision or a grant names: the object's tenant's (P for a missing one).
        let partner_id = tenant.unwrap_or(&self.a).partner_id.clone();
        let (_, template) = op.route();
        let mut path = template.to_owned();
        let mut body = None;
        let mut id = MISSING_ID.to_owned();
        match op {
            Op::Healthz
            | Op::Readyz
            | Op::Metrics
            | Op::OpenApi
            | Op::LogVkey
            | Op::LogCheckpoint
            | Op::LogSignCheckpoint
            | Op::Me
            | Op::Partners
            | Op::ListConsents
            | Op::ListRequests => {}
            Op::LogEntries => path.push_str("?start=0&end=1"),
            Op::LogInclusion => path.push_str("?position=0&tree_size=1"),
            Op::LogConsistency => path.push_str("?from=1&to=2"),
            Op::AuditExport | Op::AuditAccess => {
                if obj != NONE {
                    path.push_str(&format!("?shipment_id={shipment}"));
                }
            }
            Op::AuditDsar => {
                let tracking = tenant.map_or("MTX-NONE-0001", |t| &t.tracking);
                path.push_str(&format!("?carrier={CARRIER}&tracking_number={tracking}"));
            }
            Op::AuditRopa => path.push_str("?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"),
            Op::CreatePrincipal => {
                body = Some(json!({ "role": "shipper", "name": format!("Shop {}", self.next()) }));
            }
            Op::RotateToken | Op::Suspend | Op::Reactivate => {
                match (obj, who.role()) {
                    (ME, Some(role)) => {
                        let (me, my_token) = self.fresh_principal(role).await;
                        id = me;
                        token = Some(my_token);
                    }
                    (ME | OTHER, _) => {
                        let (victim, _) = self.fresh_principal("shipper").await;
                        if op == Op::Reactivate {
                            let r = self.app.suspend(&victim, "to reactivate").await;
                            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                        }
                        id = victim;
                    }
                    _ => {}
                }
                body = Some(match op {
                    Op::Suspend => json!({ "reason": "matrix" }),
                    _ => json!({}),
                });
            }
            Op::CreateSubscription => {
                let mut b = json!({ "purpose": "insurance_claim",
                    "data_categories": ["status_events"],
                    "shipments": [{ "shipment_id": self.a.shipment }] });
                if who == Who::Gateway {
                    b["partner_id"] = json!(self.a.partner_id);
                }
                body = Some(b);
            }
            Op::RegisterDpa => body = Some(dpa_for(&self.a.partner_id)),
            Op::ListDpas => {}
            Op::GetDpa | Op::TerminateDpa => {
                if let Some(t) = tenant {
                    let r = self
                        .app
                        .post("/v1/dpas", &self.app.admin, dpa_for(&t.partner_id))
                        .await;
                    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                    id = r.id();
                }
                if op == Op::TerminateDpa {
                    body = Some(json!({ "reason": "the agreement ended" }));
                }
            }
            Op::GrantAuthorization => {
                let dpa = self.fresh_dpa(&self.a).await;
                body = Some(authorization_for(&self.a, &dpa));
            }
            Op::ListAuthorizations => {}
            Op::GetAuthorization
            | Op::RevokeAuthorization
            | Op::ObjectToAuthorization
            | Op::WithdrawObjection => {
                if let Some(t) = tenant {
                    let dpa = self.fresh_dpa(t).await;
                    id = created(
                        &self.app,
                        "/v1/authorizations",
                        &self.app.admin,
                        authorization_for(t, &dpa),
                    )
                    .await;
                    if op == Op::WithdrawObjection {
                        let path = format!("/v1/authorizations/{id}/objection");
                        let r = self
                            .app
                            .post(&path, &t.shipper, json!({ "reason": "matrix" }))
                            .await;
                        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                    }
                }
                if matches!(op, Op::RevokeAuthorization | Op::ObjectToAuthorization) {
                    body = Some(json!({ "reason": "matrix" }));
                }
            }
            Op::ListSubscriptions => {}
            Op::GetSubscription | Op::DeleteSubscription => {
                if let Some(t) = tenant {
                    let r = self
                        .app
                        .post(
                            "/v1/subscriptions",
                            &t.partner,
                            json!({ "purpose": "insurance_claim",
                                "data_categories": ["status_events"],
                                "shipments": [{ "shipment_id": t.shipment }] }),
                        )
                        .await;
                    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                    id = r.id();
                }
            }
            Op::PullTracking | Op::PullTrackingByNumber => {
                if op == Op::PullTracking {
                    id = shipment.clone();
                    path.push('?');
                } else {
                    let tracking = tenant.map_or("MTX-NONE-0001", |t| &t.tracking);
                    path.push_str(&format!("?carrier={CARRIER}&tracking_number={tracking}&"));
                }
                path.push_str("purpose=insurance_claim&data_categories=status_events");
                if who == Who::Gateway {
                    path.push_str(&format!("&partner_id={partner_id}"));
                }
            }
            Op::Decide => {
                let named = (who == Who::Gateway).then_some(partner_id.as_str());
                body = Some(decision_for(named, &shipment));
            }
            Op::DecideBatch => {
                let named = (who == Who::Gateway).then_some(partner_id.as_str());
                body = Some(json!({ "items": [decision_for(named, &shipment)] }));
            }
            Op::RegisterShipment => {
                let shipper = tenant.map_or(MISSING_ID, |t| &t.shipper_id);
                let tracking = format!("MTX-NEW-{:04}", self.next());
                body = Some(shipment_body(shipper, CARRIER, &tracking, "DE"));
            }
            Op::GetShipment | Op::AuthorizedParties => id = shipment,
            Op::EraseShipment => {
                if let Some(t) = tenant {
                    let tracking = format!("MTX-ERASE-{:04}", self.next());
                    id = created(
                        &self.app,
                        "/v1/shipments",
                        &self.app.admin,
                        shipment_body(&t.shipper_id, CARRIER, &tracking, "DE"),
                    )
                    .await;
                }
                body = Some(json!({ "reason": "matrix" }));
            }
            Op::EraseSubject => {
                let subject = format!("mtx-subject-{}", self.next());
                body = Some(json!({ "recipient_ref": subject, "reason": "matrix" }));
            }
            Op::IngestTracking => {
                body = Some(json!({ "events": [{
                    "shipment_id": self.a.shipment,
                    "status": "in_transit",
                    "occurred_at": format!("2026-03-01T10:{:02}:00Z", self.next() % 60),
                }] }));
            }
            Op::RegisterWebhook => {
                body = Some(match who {
                    Who::Admin => json!({ "url": WEBHOOK_URL, "partner_id": self.a.partner_id }),
                    _ => json!({ "url": WEBHOOK_URL }),
                });
            }
            Op::ListWebhooks => {}
            Op::RedeliverWebhook => {
                id = "msg_00000000000000000000000000000000".to_owned();
                if let Some(t) = tenant {
                    let endpoint = created(
                        &self.app,
                        "/v1/webhook-endpoints",
                        &t.partner,
                        json!({ "url": WEBHOOK_URL }),
                    )
                    .await;
                    let path = format!("/v1/webhook-endpoints/{endpoint}/test");
                    let r = self.app.post(&path, &t.partner, json!({})).await;
                    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
                    id = r.body["message_id"]
                        .as_str()
                        .expect("message_id")
                        .to_owned();
                }
                body = Some(json!({}));
            }
            Op::GetWebhook
            | Op::DisableWebhook
            | Op::EnableWebhook
            | Op::RotateWebhookKey
            | Op::TestWebhook
            | Op::WebhookDeliveries => {
                if let Some(t) = tenant {
                    id = created(
                        &self.app,
                        "/v1/webhook-endpoints",
                        &t.partner,
                        json!({ "url": WEBHOOK_URL }),
                    )
                    .await;
                    if op == Op::EnableWebhook {
                        let path = format!("/v1/webhook-endpoints/{id}/disable");
                        let r = self.app.post(&path, &t.partner, json!({})).await;
                        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                    }
                }
                if !matches!(op, Op::GetWebhook | Op::WebhookDeliveries) {
                    body = Some(json!({}));
                }
            }
            Op::GrantConsent => body = Some(consent_for(&partner_id, &shipment)),
            Op::GetConsent | Op::ConsentReceipt => {
                id = tenant.map_or(MISSING_ID, |t| &t.consent).to_owned();
            }
            Op::RevokeConsent => {
                if let Some(t) = tenant {
                    id = self.fresh_consent(t).await;
                }
                body = Some(json!({ "reason": "matrix" }));
            }
            Op::SubmitRequest => {
                let t = tenant.expect("a request names a tenant");
                body = Some(request_for(&t.shipper_id, &t.shipment));
            }
            Op::GetRequest => id = tenant.map_or(MISSING_ID, |t| &t.request).to_owned(),
            Op::ApproveRequest | Op::DenyRequest | Op::WithdrawRequest => {
                if let Some(t) = tenant {
                    id = self.fresh_request(t).await;
                }
                body = Some(match op {
                    Op::DenyRequest => json!({ "reason": "matrix" }),
                    _ => json!({}),
                });
            }
        }
        Call {
            path: path.replace("{id}", &id).replace("{message_id}", &id),
            token,
            body: body.map(|b| b.to_string().into_bytes()),
        }
    }
}

/// What one cell sends.
struct Call {
    path: String,
    token: Option<String>,
    body: Option<Vec<u8>>,
}

/// The slug a refusal of this status carries.
fn slug(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("unauthorized"),
        403 => Some("forbidden"),
        404 => Some("not-found"),
        _ => None,
    }
}

fn short(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Every (method, path) of the OpenAPI document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete", "head", "options"] {
            if item.get(method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_table_is_well_formed() {
    let mut seen = BTreeSet::new();
    for r in TABLE {
        assert!(
            seen.insert(format!("{:?}{:?}", r.op, r.obj)),
            "{:?}{} has two rows",
            r.op,
            r.obj.label()
        );
        // A route that names an object has no object-less row, and the other way round.
        let route = r.op.route().1;
        let takes_id = route.contains("{id}") || route.contains("{message_id}");
        assert!(
            !takes_id || matches!(r.obj, A | B | MISSING | ME | OTHER),
            "{:?} takes an id: its rows name an object",
            r.op
        );
        // Nobody gets past a missing or invalid token, on any route that asks for one.
        let public = matches!(r.op, Op::Healthz | Op::Readyz | Op::OpenApi | Op::LogVkey);
        if !public {
            assert_eq!(r.expect[..2], [401, 401], "{:?}{}", r.op, r.obj.label());
        }
    }
    for op in OPS {
        assert!(
            TABLE.iter().any(|r| r.op == op),
            "{op:?} has no row in the matrix"
        );
    }
    for gap in KNOWN_GAPS {
        let got = expected(gap.op, gap.obj, gap.who)
            .unwrap_or_else(|| panic!("known gap {:?}{} has no row", gap.op, gap.obj.label()));
        assert_ne!(
            got,
            gap.spec,
            "{:?}{} as {}: the table already asserts SPEC's answer; drop the known gap",
            gap.op,
            gap.obj.label(),
            gap.who.label()
        );
        assert!(!gap.why.is_empty());
    }
}

/// SPEC §2 and §10 for every route, caller and object, against the running app.
#[actix_web::test]
async fn every_route_answers_every_caller_as_spec_section_2_says() {
    let w = World::build().await;
    let mut failures: Vec<String> = Vec::new();

    // Coverage: every operation the API documents has rows, and every row is a real route.
    let doc = w.app.get_anonymous("/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.body);
    let documented = documented(&doc.body);
    let tabled: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|r| {
            let (method, path) = r.op.route();
            (method.to_owned(), path.to_owned())
        })
        .collect();
    for (method, path) in documented.difference(&tabled) {
        failures.push(format!(
            "{method} {path} is in /openapi.json but has no row in the matrix"
        ));
    }
    for (method, path) in tabled.difference(&documented) {
        // The document does not describe itself.
        if path != "/openapi.json" {
            failures.push(format!(
                "{method} {path} has rows but is not in /openapi.json"
            ));
        }
    }

    let mut replies: HashMap<(Op, Obj, Who), Reply> = HashMap::new();
    let mut cells = 0;
    for r in TABLE {
        let (method, _) = r.op.route();
        for (who, want) in CALLERS.into_iter().zip(r.expect) {
            cells += 1;
            let call = w.prepare(r.op, r.obj, who).await;
            let before = w.app.log_size().await;
            let reply = match &call.body {
                Some(body) if method == "POST" => {
                    w.app
                        .post_raw(&call.path, call.token.as_deref(), body, &[])
                        .await
                }
                _ => {
                    w.app
                        .request_with(method, &call.path, call.token.as_deref(), None)
                        .await
                }
            };
            let after = w.app.log_size().await;
            let cell = format!(
                "{method} {}{} as {}",
                r.op.route().1,
                r.obj.label(),
                who.label()
            );
            let got = reply.status.as_u16();
            if got != want {
                let gap = KNOWN_GAPS
                    .iter()
                    .find(|g| (g.op, g.obj, g.who) == (r.op, r.obj, who))
                    .map(|g| format!(" (a known gap, SPEC says {}: {})", g.spec, g.why))
                    .unwrap_or_default();
                failures.push(format!(
                    "{cell}: expected {want}, got {got}{gap}: {}",
                    short(&reply.body)
                ));
            } else if let Some(slug) = slug(got) {
                let problem = reply.content_type.starts_with("application/problem+json")
                    && reply.problem_type() == format!("{PROBLEMS}{slug}");
                if !problem {
                    failures.push(format!(
                        "{cell}: {got} is not a `{slug}` problem: {} {}",
                        reply.content_type,
                        short(&reply.body)
                    ));
                }
            }
            let succeeded = reply.status.is_success();
            if succeeded && r.op.records() {
                if after <= before {
                    failures.push(format!("{cell}: answered {got} but recorded nothing"));
                }
            } else if after != before {
                failures.push(format!(
                    "{cell}: answered {got} but the log grew from {before} to {after} events"
                ));
            }
            replies.insert((r.op, r.obj, who), reply);
        }
    }

    // Existence does not leak: wherever another tenant's object is 404, it is the very answer
    // a missing one gets.
    for r in TABLE.iter().filter(|r| matches!(r.obj, A | B)) {
        for who in CALLERS {
            let (Some(reply), Some(missing)) = (
                replies.get(&(r.op, r.obj, who)),
                replies.get(&(r.op, MISSING, who)),
            ) else {
                continue;
            };
            let both_404 =
                reply.status == StatusCode::NOT_FOUND && missing.status == StatusCode::NOT_FOUND;
            if both_404 && missing.body != reply.body {
                let (method, path) = r.op.route();
                failures.push(format!(
                    "{method} {path}{} as {}: the 404 differs from a missing object's: {} vs {}",
                    r.obj.label(),
                    who.label(),
                    short(&reply.body),
                    short(&missing.body)
                ));
            }
        }
    }

    // A list shows exactly the world's objects its caller may read one by one.
    for (list, get) in [
        (Op::ListConsents, Op::GetConsent),
        (Op::ListRequests, Op::GetRequest),
    ] {
        for who in CALLERS {
            let Some(reply) = replies.get(&(list, NONE, who)) else {
                continue;
            };
            if reply.status != StatusCode::OK {
                continue;
            }
            let text = reply.body.to_string();
            for (obj, t) in [(A, &w.a), (B, &w.b)] {
                let id = if list == Op::ListConsents {
                    &t.consent
                } else {
                    &t.request
                };
                let readable = expected(get, obj, who) == Some(200);
                if text.contains(id.as_str()) != readable {
                    failures.push(format!(
                        "GET {} as {}: {} {id}, which GET {}{} answers {:?}",
                        list.route().1,
                        who.label(),
                        if readable { "omits" } else { "shows" },
                        get.route().1,
                        obj.label(),
                        expected(get, obj, who)
                    ));
                }
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {cells} cells (and checks) disagree with the authorization matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A DPA of `partner` for the register.
fn dpa_for(partner: &str) -> Value {
    json!({
        "partner_id": partner,
        "reference": "DPA-MTX-1",
        "role": "processor",
        "signed_at": "2026-01-01T00:00:00Z",
        "sub_processors": [{ "name": "Relay GmbH", "country": "DE" }],
    })
}

/// A carrier authorization of `t`'s partner under `dpa`, for `t`'s shipper's DHL shipments.
fn authorization_for(t: &Tenant, dpa: &str) -> Value {
    json!({
        "partner_id": t.partner_id,
        "dpa_id": dpa,
        "scope": { "carriers": [CARRIER], "shipper_ids": [t.shipper_id] },
        "purposes": ["supply_chain_visibility"],
        "data_categories": ["status_events"],
        "legal_basis": "legitimate_interests",
    })
}
