//! The GDPR projection's SQLite file is written without fsync (docs/adr/0006). It is derived
//! from the log and rebuilt from it, and the fsyncs of its checkpoints — tens of MiB at once —
//! held up the log's own commit fsyncs on the same disk: under load the decisions' p99 was
//! theirs (BENCHMARKS.md, issue 18).
//!
//! A process that crashes loses nothing the kernel already holds; an operating-system crash or
//! a power loss may leave the file torn, in a way SQLite cannot always detect. So a process
//! first records, durably, the boot it writes the file in: a marker beside the file, one per
//! process. A process that finds a marker of another boot discards the file, and catch-up
//! rebuilds it from the log. A process that stops cleanly ([`UnsyncedWrites::finish`]) makes
//! the file durable and removes its marker, so a clean reboot rebuilds nothing. Where the
//! kernel names no boot (not Linux), the file is synced as before (`synchronous=NORMAL`).

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// A marker: `<file>.unsynced-<pid>.<n>` (the n-th open of the file in that process), holding
/// the boot id the file was written in.
const MARKER: &str = ".unsynced-";

/// Opens of a file in this process so far: each has a marker of its own, so that one store's
/// clean stop does not take away the marker of another still writing.
static OPENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes to one file without fsync, recorded by this process's marker.
#[derive(Debug)]
pub(crate) struct UnsyncedWrites {
    db: PathBuf,
    marker: PathBuf,
    boot: String,
}

/// The kernel's identity of this boot, where it gives one.
fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Whether the process `pid` is running (this one always is): what tells a file a stopped
/// process left beside a database or a snapshot from one still in use. Linux's `/proc`; where
/// there is none, every other process counts as stopped.
pub fn process_running(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn directory(db: &Path) -> &Path {
    match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The markers beside `db`: (path, process id, boot id).
fn markers(db: &Path) -> io::Result<Vec<(PathBuf, u32, String)>> {
    let Some(name) = db.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}{MARKER}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory(db))? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .map(|rest| rest.split_once('.').map_or(rest, |(pid, _)| pid))
            .and_then(|pid| pid.parse().ok())
        else {
            continue;
        };
        match std::fs::read_to_string(entry.path()) {
            Ok(boot) => found.push((entry.path(), pid, boot.trim().to_owned())),
            // Removed by a process that stopped meanwhile.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Files beside the database are its owner's only, as the database is.
fn private() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the file at `db`, its `-wal` and `-shm`, and the markers of stopped processes beside
/// it, if no running process writes it (no marker of one): for a rebuild of what it holds from
/// the log, which then starts from an empty file instead of deleting every row. Returns whether
/// it was removed. Taken under the same lock as [`UnsyncedWrites::begin`], so that no process
/// starts writing the file meanwhile.
pub(crate) fn discard_unless_written(db: &Path) -> io::Result<bool> {
    if !db.exists() {
        return Ok(false);
    }
    let _one_at_a_time = lock_beside(db)?;
    let found = markers(db)?;
    if found.iter().any(|(_, pid, _)| process_running(*pid)) {
        return Ok(false);
    }
    remove_with_markers(db, &found)?;
    sync_directory(directory(db))?;
    Ok(true)
}

/// The lock beside the file at `db`, taken: processes that check its markers and may discard
/// it do so one at a time, so that none deletes a file another has just made anew.
fn lock_beside(db: &Path) -> io::Result<File> {
    let lock = private()
        .create(true)
        .truncate(false)
        .write(true)
        .open(with_suffix(db, ".lock"))?;
    lock.lock()?;
    Ok(lock)
}

/// Removes the file at `db`, its `-wal` and `-shm`, and the `markers` given.
fn remove_with_markers(db: &Path, markers: &[(PathBuf, u32, String)]) -> io::Result<()> {
    for file in [
        db.to_owned(),
        with_suffix(db, "-wal"),
        with_suffix(db, "-shm"),
    ] {
        remove_if_there(&file)?;
    }
    for (marker, _, _) in markers {
        remove_if_there(marker)?;
    }
    Ok(())
}

impl UnsyncedWrites {
    /// Called before the file at `db` is opened: discards it if a process of another boot
    /// wrote it without fsync, then records that this one will. `None` where the kernel names
    /// no boot: the file must then be synced.
    pub(crate) fn begin(db: &Path) -> io::Result<Option<Self>> {
        match boot_id() {
            Some(boot) => Self::begin_in_boot(db, boot).map(Some),
            None => Ok(None),
        }
    }

    fn begin_in_boot(db: &Path, boot: String) -> io::Result<Self> {
        let _one_at_a_time = lock_beside(db)?;
        let stale: Vec<_> = markers(db)?
            .into_iter()
            .filter(|(_, _, written_in)| *written_in != boot)
            .collect();
        if !stale.is_empty() {
            tracing::warn!(
                file = %db.display(),
                "the machine restarted since this file was written without fsync; it may be \
                 torn, so it is discarded and the GDPR projection is rebuilt from the log"
            );
            remove_with_markers(db, &stale)?;
        }
        let open = OPENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = with_suffix(db, &format!("{MARKER}{}.{open}", std::process::id()));
        let mut file = private()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&marker)?;
        file.write_all(boot.as_bytes())?;
        file.sync_all()?;
        // The marker is on disk before the first unsynced write is.
        sync_directory(directory(db))?;
        Ok(Self {
            db: db.to_owned(),
            marker,
            boot,
        })
    }

    /// Called once every connection to the file is closed: makes the file durable, then
    /// removes this process's marker and those of stopped processes of this boot (their
    /// writes are made durable by the same fsync).
    pub(crate) fn finish(self) -> io::Result<()> {
        for file in [self.db.clone(), with_suffix(&self.db, "-wal")] {
            match File::open(&file) {
                Ok(f) => f.sync_all()?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        remove_if_there(&self.marker)?;
        for (marker, pid, written_in) in markers(&self.db)? {
            if written_in == self.boot && !process_running(pid) {
                remove_if_there(&marker)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn a_marker_of_another_boot_discards_the_file_and_only_such_markers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("ledger.audit.db");
        for file in [
            "ledger.audit.db",
            "ledger.audit.db-wal",
            "ledger.audit.db-shm",
        ] {
            touch(&dir.path().join(file), "rows");
        }
        let crashed = dir.path().join("ledger.audit.db.unsynced-41");
        touch(&crashed, "boot-before");
        // A process of this boot still running, and the log's own file: both stay.
        let running = dir.path().join("ledger.audit.db.unsynced-42");
        touch(&running, "boot-now");
        touch(&dir.path().join("ledger.db"), "the log");

        let writes = UnsyncedWrites::begin_in_boot(&db, "boot-now".into()).expect("begin");
        for file in [
            "ledger.audit.db",
            "ledger.audit.db-wal",
            "ledger.audit.db-shm",
        ] {
            assert!(!dir.path().join(file).exists(), "{file} discarded");
        }
        assert!(!crashed.exists());
        assert!(running.exists());
        assert!(dir.path().join("ledger.db").exists());
        assert_eq!(
            std::fs::read_to_string(&writes.marker).expect("own marker"),
            "boot-now"
        );
    }

    #[test]
    fn markers_of_this_boot_keep_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("ledger.audit.db");
        touch(&db, "rows");
        touch(&dir.path().join("ledger.audit.db.unsynced-41"), "boot-now");
        let _writes = UnsyncedWrites::begin_in_boot(&db, "boot-now".into()).expect("begin");
        assert_eq!(std::fs::read_to_string(&db).expect("kept"), "rows");
    }

    #[test]
    fn finishing_removes_its_marker_and_those_of_stopped_processes_of_this_boot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("ledger.audit.db");
        touch(&db, "rows");
        let writes = UnsyncedWrites::begin_in_boot(&db, "boot-now".into()).expect("begin");
        let own = writes.marker.clone();
        assert!(own.exists());
        // No process has this id (above Linux's pid_max); this process's parent is running.
        let stopped = dir.path().join("ledger.audit.db.unsynced-4294967295");
        touch(&stopped, "boot-now");
        let parent = dir.path().join(format!(
            "ledger.audit.db.unsynced-{}",
            std::os::unix::process::parent_id()
        ));
        touch(&parent, "boot-now");
        writes.finish().expect("finish");
        assert!(!own.exists());
        assert!(!stopped.exists());
        assert!(parent.exists());
        // Once the running one stops cleanly too, a reboot finds nothing to take for a crash.
        std::fs::remove_file(&parent).expect("its clean stop");
        let _after = UnsyncedWrites::begin_in_boot(&db, "boot-after-a-clean-reboot".into())
            .expect("begin after the reboot");
        assert_eq!(std::fs::read_to_string(&db).expect("kept"), "rows");
    }

    #[test]
    fn a_file_is_discarded_for_a_rebuild_only_while_no_running_process_writes_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("ledger.audit.db");
        assert!(!discard_unless_written(&db).expect("nothing there"));
        for file in [
            "ledger.audit.db",
            "ledger.audit.db-wal",
            "ledger.audit.db-shm",
        ] {
            touch(&dir.path().join(file), "rows");
        }
        touch(&dir.path().join("ledger.db"), "the log");
        // The parent process (running) writes it: kept.
        let running = dir.path().join(format!(
            "ledger.audit.db.unsynced-{}.0",
            std::os::unix::process::parent_id()
        ));
        touch(&running, "boot-now");
        assert!(!discard_unless_written(&db).expect("kept"));
        assert_eq!(std::fs::read_to_string(&db).expect("kept"), "rows");
        // Only stopped processes left their markers: discarded, with them.
        std::fs::remove_file(&running).expect("its clean stop");
        let stopped = dir.path().join("ledger.audit.db.unsynced-4294967295.0");
        touch(&stopped, "boot-now");
        assert!(discard_unless_written(&db).expect("discarded"));
        for file in [
            "ledger.audit.db",
            "ledger.audit.db-wal",
            "ledger.audit.db-shm",
        ] {
            assert!(!dir.path().join(file).exists(), "{file} discarded");
        }
        assert!(!stopped.exists());
        assert!(dir.path().join("ledger.db").exists(), "the log stays");
    }

    #[test]
    fn two_opens_in_one_process_keep_a_marker_each() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("ledger.audit.db");
        let first = UnsyncedWrites::begin_in_boot(&db, "boot-now".into()).expect("begin");
        let second = UnsyncedWrites::begin_in_boot(&db, "boot-now".into()).expect("begin");
        assert_ne!(first.marker, second.marker);
        let kept = second.marker.clone();
        first.finish().expect("finish");
        assert!(kept.exists(), "the other store still writes without fsync");
    }

    #[test]
    fn this_boot_has_an_id_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(boot_id().is_some_and(|id| id.len() >= 32));
        }
    }
}
