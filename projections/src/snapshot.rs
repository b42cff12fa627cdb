//! Snapshots of the read model, so that a restart is ready from persisted state and the
//! position it had reached, not from a full replay (SPEC §11: ready ≤ 10 s at 10M events).
//!
//! Layout: `CLSNAP01`, then the length and JSON of the views (principals with their token
//! digests, consents, requests) and of the last applied event's identity, then the decider's
//! shipment index in compact binary. The identity of the last applied event is checked against
//! the log on load, so a snapshot of another database, or of a log that was cut, is ignored.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::model::{ReadModel, SnapshotViews};

/// `02`: credentials beside the views (the token digests left the log). A snapshot of another
/// version is not read; the log is replayed instead.
const MAGIC: &[u8; 8] = b"CLSNAP02";

/// The last event a snapshot includes, to check it belongs to this log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastEvent {
    pub position: u64,
    pub stream_type: String,
    pub stream_id: String,
    pub event_type: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    last: Option<LastEvent>,
    views: SnapshotViews,
}

/// The model serialised: taken under the read lock, written to disk outside it.
pub struct Frozen {
    pub next: u64,
    views: SnapshotViews,
    shipments: Vec<u8>,
}

pub(crate) fn freeze(model: &ReadModel) -> io::Result<Frozen> {
    let mut shipments = Vec::new();
    model.access.write_shipments(&mut shipments)?;
    Ok(Frozen {
        next: model.next_position().get(),
        views: model.views(),
        shipments,
    })
}

/// Writes the snapshot atomically: a temporary file, fsynced, renamed over the old one. The
/// file is its owner's alone (mode 0600): it holds the read model, principals and consents.
///
/// The temporary file is this writer's own (process id and a counter): two writers at once —
/// a node's clean-up after an erasure and its periodic snapshot, or `replay` beside a running
/// node — each rename a whole file, and the last one wins; sharing one name, one of them found
/// its file renamed away by the other.
pub(crate) fn write(path: &Path, frozen: Frozen, last: Option<LastEvent>) -> io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let written = write_to(&tmp, path, frozen, last);
    if written.is_err() {
        // Never leave a partial copy of the model (it may hold what an erasure removed).
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_to(tmp: &Path, path: &Path, frozen: Frozen, last: Option<LastEvent>) -> io::Result<()> {
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(tmp)?;
        // A temporary file left by an older version keeps its mode through `open`.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        let mut w = BufWriter::new(file);
        w.write_all(MAGIC)?;
        let header = serde_json::to_vec(&Header {
            last,
            views: frozen.views,
        })?;
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        w.write_all(&frozen.shipments)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes the temporary copies of the snapshot at `path` that a writer killed mid-write left
/// beside it (`<name>.tmp.<pid>.<n>`, of a process no longer running): they hold a model as it
/// was, perhaps with what an erasure removed since (SPEC §12). A live writer's copy — another
/// process on the same directory — is left alone. Returns how many were removed.
pub(crate) fn remove_stale_temporaries(path: &Path) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_stem().and_then(|n| n.to_str())) else {
        return 0;
    };
    let prefix = format!("{name}.tmp.");
    let Ok(entries) = fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !consent_ledger_store::process_running(pid) && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Reads a snapshot; `None` when there is none. Stale temporary copies beside it are removed
/// first ([`remove_stale_temporaries`]).
pub(crate) fn read(path: &Path) -> io::Result<Option<(ReadModel, Option<LastEvent>)>> {
    let stale = remove_stale_temporaries(path);
    if stale > 0 {
        tracing::info!(stale, "removed snapshot copies a killed writer left");
    }
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a consent-ledger snapshot",
        ));
    }
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = usize::try_from(u64::from_le_bytes(len))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "length"))?;
    let mut header = vec![0u8; len];
    r.read_exact(&mut header)?;
    let header: Header = serde_json::from_slice(&header)?;
    let access = Decider::read_shipments(&mut r)?;
    Ok(Some((
        ReadModel::from_views(header.views, access),
        header.last,
    )))
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    #[test]
    fn a_dead_writers_temporary_copy_is_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("projections.snapshot");
        // No process has pid 4,000,000,000 (Linux pids stay below 2^22).
        let dead = dir.path().join("projections.tmp.4000000000.3");
        let live = dir
            .path()
            .join(format!("projections.tmp.{}.1", std::process::id()));
        let other = dir.path().join("ledger.db");
        for f in [&dead, &live, &other] {
            fs::write(f, b"x").expect("write");
        }
        assert_eq!(remove_stale_temporaries(&path), 1);
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }
}
