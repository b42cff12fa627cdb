//! HTTP integration tests: the real actix app on a real port over a real store — an SQLite
//! file, or with `CONSENT_LEDGER_TEST_BACKEND=postgres` a PostgreSQL database of its own.

mod audit;
mod authorizations;
mod bad_input;
mod browser;
mod console;
mod console_pages;
mod decisions;
mod disk_full;
mod dpas;
mod dsar;
mod erasure;
mod export;
mod fanout;
mod helpers;
mod http_layer;
mod isolation;
mod lifecycle;
mod log;
mod matrix;
mod nodes;
mod openapi;
mod rate_limit;
mod receiver;
mod smoke;
mod subscriptions;
mod tokens;
mod tracking;
mod webdriver;
mod webhook_delivery;
mod webhooks;
