//! HTTP integration tests: the real actix app on a real port over a real SQLite file.

mod audit;
mod bad_input;
mod decisions;
mod disk_full;
mod export;
mod helpers;
mod lifecycle;
mod log;
mod smoke;
