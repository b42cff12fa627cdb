//! The Merkle tree's part of a batch (SPEC §6, RFC 9162 §2.1): each committed event's leaf
//! hash and every subtree it completes, stored in the batch's transaction; the frontier a
//! writer resumes from, and its backfill where a log predates the tree.

use consent_ledger_audit::leaf::event_leaf_hash;
use consent_ledger_audit::tree::{root_nodes, Frontier, Hash, NodeId};

use super::LogWriter;
use crate::event::StoredEvent;

/// The leaf hash of a stored event (SPEC §6: SHA-256(0x00 ‖ its RFC 8785 canonical JSON)).
pub(crate) fn leaf_of(e: &StoredEvent) -> Hash {
    event_leaf_hash(&e.leaf())
}

/// Leaves (level 0) and subtrees of 16 leaves or more are stored; the levels between are
/// recomputed from their (at most eight) leaves when a root or proof needs them, which saves
/// nearly half the rows the tree would add to every append (docs/adr/0004).
pub(crate) fn is_kept(node: NodeId) -> bool {
    node.level() == 0 || node.level() >= 4
}

/// Adds the committed events to the Merkle tree in the same transaction: their leaf hashes
/// and every subtree they complete (RFC 9162 §2.1), so proofs never need recomputation.
/// `hashed` holds their leaf hashes, in order, where they were computed already.
#[tracing::instrument(level = "trace", skip_all, fields(leaves = committed.len()))]
pub(super) async fn append_leaves<W: LogWriter>(
    writer: &mut W,
    frontier: &mut Option<Frontier>,
    committed: &[&StoredEvent],
    hashed: Option<Vec<Hash>>,
) -> Result<Vec<(NodeId, Hash)>, sqlx::Error> {
    let Some(first) = committed.first() else {
        return Ok(Vec::new());
    };
    let size = first.position.get();
    let mut edge = match frontier.take() {
        Some(f) if f.size() == size => f,
        // First batch, or another process appended since this one's last batch: read the
        // right edge back (under the write lock, so it cannot move meanwhile).
        _ => load_frontier(writer, size).await?,
    };
    let leaves = match hashed {
        Some(leaves) if leaves.len() == committed.len() => leaves,
        _ => committed.iter().map(|e| leaf_of(e)).collect(),
    };
    let mut nodes = Vec::with_capacity(committed.len() * 2);
    for leaf in leaves {
        nodes.extend(edge.push(leaf));
    }
    // The nodes are inserted by the commit itself ([`LogWriter::finish_with_nodes`]); should
    // that fail, the caller forgets this edge with the rest of the batch.
    *frontier = Some(edge);
    Ok(nodes)
}

/// The nodes of `nodes` that are stored ([`is_kept`]).
pub(super) fn kept_of(nodes: &[(NodeId, Hash)]) -> Vec<&(NodeId, Hash)> {
    nodes.iter().filter(|(n, _)| is_kept(*n)).collect()
}

pub(super) async fn insert_kept<W: LogWriter>(
    writer: &mut W,
    nodes: &[(NodeId, Hash)],
) -> Result<(), sqlx::Error> {
    let kept = kept_of(nodes);
    if kept.is_empty() {
        return Ok(());
    }
    writer.insert_nodes(&kept).await
}

/// The tree's right edge at `size` from the stored subtrees; a log written before the tree
/// existed is hashed now, once.
#[tracing::instrument(level = "debug", skip_all, fields(size = size))]
pub(super) async fn load_frontier<W: LogWriter>(
    writer: &mut W,
    size: u64,
) -> Result<Frontier, sqlx::Error> {
    let mut hashes = Vec::new();
    for hash in writer.fetch_nodes(&root_nodes(size)).await? {
        match hash {
            Some(hash) => hashes.push(hash),
            None => return backfill(writer, size).await,
        }
    }
    Frontier::from_parts(size, hashes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Rebuilds every stored subtree of the first `size` leaves from the events themselves.
#[tracing::instrument(level = "debug", skip_all, fields(size = size))]
async fn backfill<W: LogWriter>(writer: &mut W, size: u64) -> Result<Frontier, sqlx::Error> {
    tracing::warn!(
        size,
        "the Merkle tree is incomplete; hashing the log into it"
    );
    writer.clear_nodes().await?;
    let mut edge = Frontier::new();
    while edge.size() < size {
        let events = writer.events_between(edge.size(), size).await?;
        if events.is_empty() {
            break;
        }
        let mut nodes = Vec::new();
        for event in &events {
            nodes.extend(edge.push(leaf_of(event)));
        }
        insert_kept(writer, &nodes).await?;
    }
    Ok(edge)
}

/// Each of `nodes` from `found`, the stored rows keyed by (level, index): a kept node as
/// stored, any other the MTH (RFC 9162 §2.1.1) of its leaves; None where a row is missing.
pub(crate) fn resolve_nodes(
    nodes: &[NodeId],
    found: &std::collections::HashMap<(u32, u64), Hash>,
) -> Vec<Option<Hash>> {
    nodes
        .iter()
        .map(|node| {
            if is_kept(*node) {
                return found.get(&(node.level(), node.index())).copied();
            }
            let leaves = node
                .leaves()
                .map(|i| found.get(&(0, i)).copied())
                .collect::<Option<Vec<Hash>>>()?;
            Some(consent_ledger_audit::tree::mth(&leaves))
        })
        .collect()
}
