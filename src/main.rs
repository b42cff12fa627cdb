//! `consent-ledger`: see `consent_ledger_api::cli` for the commands.

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
