//! Signed checkpoints of the verifiable log (SPEC §6): the tree's size and root now, as a C2SP
//! tlog-checkpoint in a signed note, kept so later proofs and bundles can name it.

use consent_ledger_audit::note::Checkpoint;

use crate::error::AppError;
use crate::state::AppState;

/// The log's size now: a tree size may not exceed it.
pub async fn log_size(state: &AppState) -> Result<u64, AppError> {
    Ok(state.store.next_position().await?.get())
}

/// Signs a checkpoint of the whole log as it is now and keeps it; returns its size and note.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn sign_checkpoint(state: &AppState) -> Result<(u64, String), AppError> {
    let size = log_size(state).await?;
    let root = state.store.tree_root(size).await?;
    let statement =
        Checkpoint::new(state.log_key.name(), size, root).map_err(AppError::internal)?;
    let note = statement.sign(&state.log_key);
    state.store.save_checkpoint(size, &root, &note).await?;
    Ok((size, note))
}

/// The newest kept checkpoint; on a log that has none yet, one signed now.
pub async fn latest_checkpoint(state: &AppState) -> Result<String, AppError> {
    match state.store.latest_checkpoint().await? {
        Some((_, note)) => Ok(note),
        None => Ok(sign_checkpoint(state).await?.1),
    }
}
