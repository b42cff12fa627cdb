//! `consent-ledger`: the service and its operator commands (SPEC §8), in [`cli`]. The HTTP API
//! is `consent_ledger_api`, the use cases `consent_ledger_app`; this binary wires them.

mod cli;
mod telemetry;

/// glibc's malloc spent a quarter of the decision path's CPU in page faults and arena
/// consolidation under many threads (BENCHMARKS.md); mimalloc keeps freed pages per thread.
/// It also replaces malloc for SQLite's own allocations ("override").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match cli::main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
