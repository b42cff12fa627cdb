//! `consent-ledger audit-log` (SPEC §5.4, §8): recomputes every leaf from the stored events
//! and the tree root at every kept checkpoint, and compares them with the stored leaves and the
//! signed checkpoints. Changing, deleting, reordering or inserting any stored event is reported
//! with the first bad position.

use std::collections::HashMap;

use anyhow::{bail, Context};
use consent_ledger_audit::leaf::event_leaf_hash;
use consent_ledger_audit::note::VerifierKey;
use consent_ledger_audit::tree::{empty_root, hashes_equal, Frontier};
use consent_ledger_audit::LogKey;
use consent_ledger_store::{Position, Store};
use serde_json::json;

use crate::state::StoreOptions;

const PAGE: u32 = 10_000;

fn tampered(position: u64, what: &str) -> anyhow::Error {
    anyhow::anyhow!("tampering detected: first bad position {position}: {what}")
}

pub async fn run(options: &StoreOptions) -> anyhow::Result<()> {
    let store = Store::open(&options.location()?)
        .await
        .context("opening the event store")?;
    let key = LogKey::load(&options.data_dir.join("log.key"))
        .context("loading the log key, to check checkpoints")?;
    let vkey: VerifierKey = key.vkey().parse().context("the log key's vkey")?;
    let checkpoints = store.checkpoints().await?;
    let size = store.next_position().await?.get();
    let bar = crate::cli::progress_bar(size, "auditing");
    let started = std::time::Instant::now();
    let mut pending = checkpoints.iter().peekable();
    let mut checked = 0usize;
    let mut frontier = Frontier::new();
    let mut check_checkpoints = |frontier: &Frontier,
                                 pending: &mut std::iter::Peekable<
        std::slice::Iter<'_, (u64, String)>,
    >| {
        while let Some((cp_size, note)) = pending.peek() {
            if *cp_size != frontier.size() {
                break;
            }
            let signed = vkey.open_checkpoint(note).map_err(|e| {
                anyhow::anyhow!(
                    "checkpoint of size {cp_size} does not verify with the log key: {e}"
                )
            })?;
            let root = if frontier.size() == 0 {
                empty_root()
            } else {
                frontier.root()
            };
            if signed.size() != *cp_size || !hashes_equal(signed.root(), &root) {
                return Err(tampered(
                    frontier.size().saturating_sub(1),
                    &format!("the events up to here do not hash to the signed checkpoint of size {cp_size}"),
                ));
            }
            checked += 1;
            pending.next();
        }
        Ok::<_, anyhow::Error>(())
    };
    check_checkpoints(&frontier, &mut pending)?;
    loop {
        let from = frontier.size();
        let events = store.read_range(Position::new(from), PAGE).await?;
        if events.is_empty() {
            break;
        }
        let stored: HashMap<u64, Vec<u8>> =
            store.leaf_hashes(from, PAGE).await?.into_iter().collect();
        for event in &events {
            let expected = frontier.size();
            if event.position.get() != expected {
                return Err(tampered(
                    expected,
                    "the event at this position is missing (deleted?)",
                ));
            }
            let leaf = event_leaf_hash(&event.leaf());
            match stored.get(&expected) {
                None => {
                    return Err(tampered(
                        expected,
                        "no leaf was ever stored for this event (inserted?)",
                    ))
                }
                Some(h) if h.as_slice() != leaf.as_slice() => {
                    return Err(tampered(
                        expected,
                        "the event does not match its leaf hash (changed, swapped or moved)",
                    ))
                }
                Some(_) => {}
            }
            frontier.push(leaf);
            check_checkpoints(&frontier, &mut pending)?;
        }
        bar.set_position(frontier.size());
    }
    bar.finish_and_clear();
    let audited = frontier.size();
    if !store.leaf_hashes(audited, 1).await?.is_empty() {
        return Err(tampered(
            audited,
            "a leaf is stored for an event that is gone (deleted?)",
        ));
    }
    if let Some((cp_size, _)) = pending.next() {
        return Err(tampered(
            audited,
            &format!(
                "a signed checkpoint covers {cp_size} events, the log holds {audited} (deleted?)"
            ),
        ));
    }
    if audited != size {
        bail!("the log changed while it was audited ({size} → {audited}); run again");
    }
    let seconds = started.elapsed().as_secs_f64();
    let root = if audited == 0 {
        empty_root()
    } else {
        frontier.root()
    };
    use base64::Engine;
    println!(
        "{}",
        json!({
            "events": audited,
            "checkpoints_checked": checked,
            "root_hash": base64::engine::general_purpose::STANDARD.encode(root),
            "seconds": seconds,
            "leaves_per_second": (audited as f64 / seconds.max(1e-9)).round(),
        })
    );
    Ok(())
}
