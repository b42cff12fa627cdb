//! `consent-ledger`: see `consent_ledger_api::cli` for the commands.

/// glibc's malloc spent a quarter of the decision path's CPU in page faults and arena
/// consolidation under many threads (BENCHMARKS.md); mimalloc keeps freed pages per thread.
/// It also replaces malloc for SQLite's own allocations ("override").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match consent_ledger_api::cli::main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
