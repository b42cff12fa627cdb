//! `consent-ledger audit-log` (SPEC §5.4, §8): recomputes every leaf from the stored events
//! and the tree root at every kept checkpoint, and compares them with the stored leaves and the
//! signed checkpoints. Changing, deleting, reordering or inserting any stored event is reported
//! with the first bad position.

use anyhow::{bail, Context};
use consent_ledger_audit::note::VerifierKey;
use consent_ledger_audit::tree::{empty_root, hashes_equal, Frontier, Hash};
use consent_ledger_audit::LogKey;
use consent_ledger_store::{Position, Store, StoreError, StoredEvent};
use tokio::task::JoinHandle;

use crate::state::StoreOptions;

const PAGE: u32 = 16_384;

/// Pages read ahead of the one being hashed.
const READ_AHEAD: u64 = 3;

/// One event of a page, checked as far as it can be alone: its position, the leaf hash its
/// stored content gives, and its kept openings checked against that content.
struct Checked {
    position: u64,
    leaf: Hash,
    openings: anyhow::Result<u64>,
}

/// The events of a page, checked, and their stored leaves.
type Page = (Vec<Checked>, Vec<(u64, Vec<u8>)>);

/// Reads the events of a page, hashed as they are read ([`Store::read_leaves`]), and their
/// stored leaves, and checks the openings, on a task of its own: the pages ahead are read and
/// hashed on the runtime's workers while this thread compares and builds the tree (it alone
/// bounded the audit while it hashed every leaf too).
fn read_page(store: &Store, from: u64) -> JoinHandle<Result<Page, StoreError>> {
    let store = store.clone();
    tokio::spawn(async move {
        let (rows, leaves) = tokio::join!(
            store.read_leaves(Position::new(from), PAGE),
            store.leaf_hashes(from, PAGE)
        );
        let checked = rows?
            .into_iter()
            .map(|row| Checked {
                position: row.position.get(),
                leaf: row.leaf,
                openings: row.sealed.as_deref().map_or(Ok(0), check_openings),
            })
            .collect();
        Ok((checked, leaves?))
    })
}

/// Checks each opening kept beside the log against the commitment in the event's leaf
/// (SPEC §12): an opening changed in the store is tampering as much as a changed event. The
/// payload is read as text for each opening, down to its commitment alone (no JSON tree built).
fn check_openings(row: &StoredEvent) -> anyhow::Result<u64> {
    if row.openings.is_empty() {
        return Ok(0);
    }
    let position = row.position.get();
    for opened in &row.openings {
        let opening = consent_ledger_audit::commitment::Opening {
            value: opened.value.clone(),
            salt: opened.salt.clone(),
        };
        consent_ledger_audit::commitment::check_opening_in_payload(
            row.payload.as_str(),
            &opened.pointer,
            &opening,
        )
        .map_err(|_| tampered(position, "the event's payload is not JSON"))?
        .map_err(|e| tampered(position, &format!("a kept opening does not match: {e}")))?;
    }
    Ok(row.openings.len() as u64)
}

fn tampered(position: u64, what: &str) -> anyhow::Error {
    anyhow::anyhow!("tampering detected: first bad position {position}: {what}")
}

/// What an audit found: a log whose every event and kept checkpoint agree.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditReport {
    pub events: u64,
    pub checkpoints_checked: usize,
    /// Openings of personal fields checked against their leaves' commitments.
    pub openings_checked: u64,
    pub root: consent_ledger_audit::tree::Hash,
    pub seconds: f64,
}

/// Recomputes every leaf from the stored events and the root at every kept checkpoint; fails
/// naming the first bad position. `progress` is told (events checked, log size) after each page.
#[tracing::instrument(skip_all)]
pub async fn audit(
    options: &StoreOptions,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<AuditReport> {
    let store = Store::open(&options.location()?)
        .await
        .context("opening the event store")?;
    let report = audit_store(&store, options, progress).await;
    store.close().await;
    report
}

async fn audit_store(
    store: &Store,
    options: &StoreOptions,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<AuditReport> {
    let key = LogKey::load(&options.data_dir.join("log.key"))
        .context("loading the log key, to check checkpoints")?;
    let vkey: VerifierKey = key.vkey().parse().context("the log key's vkey")?;
    let checkpoints = store.checkpoints().await?;
    let size = store.next_position().await?.get();
    let started = std::time::Instant::now();
    let mut pending = checkpoints.iter().peekable();
    let mut checked = 0usize;
    let mut openings_checked = 0u64;
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
    // The next pages are read (on other connections, other threads) while this one is hashed.
    // Pages are fixed runs of positions; a missing event shows as a position out of place.
    let mut reading: std::collections::VecDeque<_> = (0..READ_AHEAD)
        .map(|k| read_page(store, k * u64::from(PAGE)))
        .collect();
    let mut next_page = READ_AHEAD * u64::from(PAGE);
    while let Some(page) = reading.pop_front() {
        let (rows, stored) = page.await.context("reading the log")??;
        if rows.is_empty() {
            break;
        }
        reading.push_back(read_page(store, next_page));
        next_page += u64::from(PAGE);
        let from = frontier.size();
        // The stored leaves of the page's positions, by offset (both are in position order).
        let mut leaves: Vec<Option<Hash>> = vec![None; rows.len()];
        for (idx, hash) in stored {
            let slot = idx
                .checked_sub(from)
                .and_then(|o| usize::try_from(o).ok())
                .and_then(|o| leaves.get_mut(o));
            if let (Some(slot), Ok(hash)) = (slot, Hash::try_from(hash.as_slice())) {
                *slot = Some(hash);
            }
        }
        for (row, stored) in rows.into_iter().zip(leaves) {
            let expected = frontier.size();
            if row.position != expected {
                return Err(tampered(
                    expected,
                    "the event at this position is missing (deleted?)",
                ));
            }
            let Some(stored) = stored else {
                return Err(tampered(
                    expected,
                    "no leaf was ever stored for this event (inserted?)",
                ));
            };
            if !hashes_equal(&row.leaf, &stored) {
                return Err(tampered(
                    expected,
                    "the event does not match its leaf hash (changed, swapped or moved)",
                ));
            }
            openings_checked += row.openings?;
            frontier.append(stored);
            check_checkpoints(&frontier, &mut pending)?;
        }
        progress(frontier.size(), size);
    }
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
    Ok(AuditReport {
        events: audited,
        checkpoints_checked: checked,
        openings_checked,
        root,
        seconds,
    })
}
