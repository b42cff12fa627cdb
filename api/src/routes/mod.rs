//! HTTP handlers, one module per resource of SPEC §7. Handlers are glue: authenticate, parse
//! the path, query and body, call the use case in `consent_ledger_app`, render its answer (or
//! its `AppError` as problem+json). The use case checks roles and tenancy itself; a handler
//! that reads a body asks the same check first (`caller.require(..)`, `may_revoke`, …) so that
//! a caller who may not act hears 403/404 whatever it sent. Shapes several resources share are
//! in [`crate::shapes`].

pub mod authorizations;
pub mod consents;
pub mod decisions;
pub mod dpas;
pub mod erasure;
pub mod gdpr;
pub mod health;
pub mod log;
pub mod principals;
pub mod requests;
pub mod shipments;
pub mod subscriptions;
pub mod tracking;
pub mod webhooks;

use actix_web::web;

/// Registers every route. actix tries them in this order and matches a path with a parameter
/// (`/v1/principals/{id}/suspend`) by running a regular expression, so the decisions, the bulk
/// of the traffic, come first: a decision is matched by comparing strings alone.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(decisions::decide_one)
        .service(decisions::decide_batch)
        .service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(log::inclusion)
        .service(log::consistency)
        .service(log::entries)
        .service(log::vkey)
        .service(log::checkpoint)
        .service(log::sign_now)
        .service(log::export)
        .service(gdpr::access)
        .service(gdpr::dsar)
        .service(gdpr::ropa)
        .service(principals::create)
        .service(principals::rotate_token)
        .service(principals::suspend)
        .service(principals::reactivate)
        .service(principals::me)
        .service(principals::partners)
        .service(shipments::authorized_parties)
        .service(shipments::create)
        .service(shipments::get)
        .service(erasure::erase_shipment)
        .service(erasure::erase_subject)
        .service(tracking::ingest)
        .service(authorizations::grant)
        .service(authorizations::list)
        .service(authorizations::get)
        .service(authorizations::revoke)
        .service(authorizations::object)
        .service(authorizations::withdraw_objection)
        .service(dpas::register)
        .service(dpas::list)
        .service(dpas::get)
        .service(dpas::terminate)
        .service(subscriptions::create)
        .service(subscriptions::list)
        .service(subscriptions::get)
        .service(subscriptions::remove)
        .service(tracking::pull_by_id)
        .service(tracking::pull_by_number)
        .service(webhooks::register)
        .service(webhooks::list)
        .service(webhooks::get)
        .service(webhooks::disable)
        .service(webhooks::enable)
        .service(webhooks::rotate_key)
        .service(webhooks::test)
        .service(webhooks::deliveries)
        .service(webhooks::redeliver)
        .service(consents::grant)
        .service(consents::list)
        .service(consents::receipt)
        .service(consents::get)
        .service(consents::revoke)
        .service(requests::submit)
        .service(requests::list)
        .service(requests::get)
        .service(requests::approve)
        .service(requests::deny)
        .service(requests::withdraw);
}
