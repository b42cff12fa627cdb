//! HTTP integration tests: the real actix app on a real port over a real SQLite file.

mod helpers;
mod smoke;
mod bad_input;
mod lifecycle;
