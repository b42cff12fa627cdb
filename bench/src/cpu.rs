//! Where the CPU goes under a load: each thread of the server by the stage it serves (Linux's
//! `/proc/PID/task/*/stat`, `serve` names its threads) and the whole machine (`/proc/stat`),
//! read before and after the load and reported per request. A row that misses its goal is
//! then shown beside what each stage of it costs, measured in the same run. What each stage
//! wrote (`/proc/PID/task/*/io`) is read with it: a page of SQLite written whole, to a WAL and
//! again by a checkpoint, is CPU spent copying and bytes the log's syncs wait behind.

use std::collections::BTreeMap;
use std::path::Path;

/// Clock ticks a second in `/proc`'s times: `USER_HZ`, 100 on every Linux architecture's ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// The stages of `serve` a thread works for, named by its threads' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// actix-web's workers: HTTP, authentication, the decision itself, the answer.
    Http,
    /// The Tokio runtime's workers: the group commit's task, background tasks.
    Runtime,
    /// The group commit: its task (`log-commit`, SQLite's own thread) and SQLite's side of it
    /// (`log-writer`).
    LogWriter,
    /// The log's read connections (`log-reader-N`), checkpoints behind the writer among them.
    LogReads,
    /// The GDPR audit projection: its follower, its log reader and its writer (`gdpr-*`).
    GdprProjection,
    /// Anything else (webhook delivery, the audit views' reads, the main thread).
    Other,
}

impl Stage {
    pub(crate) const ALL: [Stage; 6] = [
        Stage::Http,
        Stage::Runtime,
        Stage::LogWriter,
        Stage::LogReads,
        Stage::GdprProjection,
        Stage::Other,
    ];

    /// The stage of a thread named `comm` (as the kernel keeps it: at most 15 bytes).
    pub(crate) fn of(comm: &str) -> Self {
        if comm.starts_with("actix-") {
            Stage::Http
        } else if comm.starts_with("tokio-runtime") || comm.starts_with("tokio-rt") {
            Stage::Runtime
        } else if comm == "log-writer" || comm == "log-commit" {
            Stage::LogWriter
        } else if comm.starts_with("log-reader") {
            Stage::LogReads
        } else if comm.starts_with("gdpr-") {
            Stage::GdprProjection
        } else {
            Stage::Other
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Stage::Http => "HTTP workers",
            Stage::Runtime => "runtime workers",
            Stage::LogWriter => "group commit (log-commit, log-writer)",
            Stage::LogReads => "log reads",
            Stage::GdprProjection => "GDPR projection",
            Stage::Other => "other threads",
        }
    }
}

/// Bytes a thread has written so far, from its `/proc/PID/task/TID/io`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Written {
    /// Handed to `write` and its kin (`wchar`): what the kernel copied into the page cache.
    pub(crate) calls: u64,
    /// Pages dirtied for the disk (`write_bytes`): what the disk will be sent, counted once
    /// however often a page is written again before it goes.
    pub(crate) disk: u64,
}

/// CPU ticks spent so far: by the server's threads, by stage, and by the whole machine.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    stages: BTreeMap<Stage, u64>,
    /// Bytes written by stage; `None` when a thread's counters could not be read (another
    /// user's process without the right to trace it, or a kernel without task I/O accounting).
    written: Option<BTreeMap<Stage, Written>>,
    /// Every CPU's ticks running anything (user, nice, system, interrupts).
    machine_busy: u64,
    machine_idle: u64,
    /// Ticks the hypervisor gave another guest while this one wanted to run.
    machine_steal: u64,
}

impl Sample {
    /// Reads the threads of process `pid` and the machine's counters now.
    pub(crate) fn take(pid: u32) -> std::io::Result<Self> {
        let mut sample = Sample {
            written: Some(BTreeMap::new()),
            ..Sample::default()
        };
        for task in std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("task"))? {
            let task = task?.path();
            // A thread that ended between the listing and the read has nothing left to count.
            let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
                continue;
            };
            let Some((comm, ticks)) = thread_ticks(&stat) else {
                continue;
            };
            let stage = Stage::of(comm);
            *sample.stages.entry(stage).or_default() += ticks;
            let written = match std::fs::read_to_string(task.join("io")) {
                Ok(io) => thread_written(&io),
                // Ended since its `stat` was read: nothing left to count, as above.
                Err(_) if !task.exists() => continue,
                Err(_) => None,
            };
            match (written, &mut sample.written) {
                (Some(w), Some(sum)) => {
                    let sum = sum.entry(stage).or_default();
                    sum.calls += w.calls;
                    sum.disk += w.disk;
                }
                _ => sample.written = None,
            }
        }
        let stat = std::fs::read_to_string("/proc/stat")?;
        let (busy, idle, steal) = machine_ticks(&stat).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no cpu line in /proc/stat")
        })?;
        sample.machine_busy = busy;
        sample.machine_idle = idle;
        sample.machine_steal = steal;
        Ok(sample)
    }

    /// What was spent between this sample and `later`, per request of `requests`.
    pub(crate) fn per_request(&self, later: &Sample, requests: f64) -> PerRequest {
        let micros = |before: u64, after: u64| {
            after.saturating_sub(before) as f64 / TICKS_PER_SECOND * 1e6 / requests.max(1.0)
        };
        let stages = Stage::ALL
            .iter()
            .map(|s| {
                let at = |x: &Sample| x.stages.get(s).copied().unwrap_or(0);
                (*s, micros(at(self), at(later)))
            })
            .collect();
        let written = match (&self.written, &later.written) {
            (Some(before), Some(after)) => Some(
                Stage::ALL
                    .iter()
                    .map(|s| {
                        let at =
                            |x: &BTreeMap<Stage, Written>| x.get(s).copied().unwrap_or_default();
                        let (b, a) = (at(before), at(after));
                        let each = |x: u64, y: u64| y.saturating_sub(x) as f64 / requests.max(1.0);
                        (*s, each(b.calls, a.calls), each(b.disk, a.disk))
                    })
                    .collect(),
            ),
            _ => None,
        };
        PerRequest {
            stages,
            written,
            machine_busy: micros(self.machine_busy, later.machine_busy),
            machine_idle: micros(self.machine_idle, later.machine_idle),
            machine_steal: micros(self.machine_steal, later.machine_steal),
        }
    }
}

/// CPU microseconds per request of one load.
#[derive(Debug, Clone)]
pub(crate) struct PerRequest {
    pub(crate) stages: Vec<(Stage, f64)>,
    /// Bytes a request by stage: (handed to `write`, dirtied for the disk); `None` when not read.
    pub(crate) written: Option<Vec<(Stage, f64, f64)>>,
    pub(crate) machine_busy: f64,
    pub(crate) machine_idle: f64,
    pub(crate) machine_steal: f64,
}

impl PerRequest {
    /// The same spent on each of `n` items of one request (a batch's decisions).
    pub(crate) fn each_of(&self, n: f64) -> PerRequest {
        let n = n.max(1.0);
        PerRequest {
            stages: self.stages.iter().map(|(s, us)| (*s, us / n)).collect(),
            written: self.written.as_ref().map(|w| {
                w.iter()
                    .map(|(s, calls, disk)| (*s, calls / n, disk / n))
                    .collect()
            }),
            machine_busy: self.machine_busy / n,
            machine_idle: self.machine_idle / n,
            machine_steal: self.machine_steal / n,
        }
    }

    /// The server's threads together.
    pub(crate) fn server(&self) -> f64 {
        self.stages.iter().map(|(_, us)| us).sum()
    }

    /// The machine's busy time outside the server: the load generator, the kernel's network
    /// and disk work done outside the server's threads, anything else running.
    pub(crate) fn outside(&self) -> f64 {
        (self.machine_busy - self.server()).max(0.0)
    }

    /// Bytes a request one stage wrote: (handed to `write`, dirtied for the disk).
    pub(crate) fn written_by(&self, stage: Stage) -> Option<(f64, f64)> {
        let written = self.written.as_ref()?;
        written
            .iter()
            .find(|(s, _, _)| *s == stage)
            .map(|(_, calls, disk)| (*calls, *disk))
    }

    /// Microseconds a request of one stage.
    pub(crate) fn of(&self, stage: Stage) -> f64 {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(0.0, |(_, us)| *us)
    }
}

/// A thread's name and its user + system ticks, from its `stat` line. The name sits between the
/// first `(` and the last `)` and may hold spaces or parentheses itself; `utime` and `stime`
/// are the 12th and 13th fields after it.
fn thread_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((comm, utime + stime))
}

/// A thread's bytes written, from its `io` file (`wchar: N` and `write_bytes: N` lines).
fn thread_written(io: &str) -> Option<Written> {
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(Written {
        calls: field("wchar")?,
        disk: field("write_bytes")?,
    })
}

/// The machine's (busy, idle, steal) ticks from `/proc/stat`'s first line: `cpu  user nice
/// system idle iowait irq softirq steal …`; waiting for I/O counts as idle.
fn machine_ticks(stat: &str) -> Option<(u64, u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Some((busy, at(3) + at(4), at(7)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_threads_name_and_ticks() {
        let stat = "4242 (actix-server wo) S 1 4240 4240 0 -1 4194368 10 0 0 0 \
                    1234 567 0 0 20 0 12 0 100 0 0";
        assert_eq!(thread_ticks(stat), Some(("actix-server wo", 1801)));
        // A name holding a parenthesis and a space: the last `)` ends it.
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0";
        assert_eq!(thread_ticks(odd), Some(("a) b", 11)));
        assert_eq!(thread_ticks("7 (short) R 1"), None);
    }

    #[test]
    fn reads_the_machines_counters() {
        let stat = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\n";
        assert_eq!(machine_ticks(stat), Some((160, 1020, 7)));
        assert_eq!(machine_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn names_each_stage_by_its_threads() {
        for (comm, stage) in [
            ("actix-server wo", Stage::Http),
            ("actix-rt|system", Stage::Http),
            ("tokio-runtime-w", Stage::Runtime),
            ("tokio-rt-worker", Stage::Runtime),
            ("log-writer", Stage::LogWriter),
            ("log-commit", Stage::LogWriter),
            ("log-reader-3", Stage::LogReads),
            ("gdpr-writer", Stage::GdprProjection),
            ("gdpr-follower", Stage::GdprProjection),
            ("gdpr-reader", Stage::GdprProjection),
            ("webhook-deliver", Stage::Other),
            ("consent-ledger", Stage::Other),
        ] {
            assert_eq!(Stage::of(comm), stage, "{comm}");
        }
    }

    #[test]
    fn spends_per_request_what_each_stage_took_between_two_samples() {
        let written = |calls, disk| Written { calls, disk };
        let before = Sample {
            stages: BTreeMap::from([(Stage::Http, 100), (Stage::LogWriter, 50)]),
            written: Some(BTreeMap::from([(Stage::LogWriter, written(1_000, 0))])),
            machine_busy: 1_000,
            machine_idle: 500,
            machine_steal: 0,
        };
        let after = Sample {
            stages: BTreeMap::from([
                (Stage::Http, 300),
                (Stage::LogWriter, 150),
                (Stage::Other, 10),
            ]),
            written: Some(BTreeMap::from([
                (Stage::LogWriter, written(201_000, 100_000)),
                (Stage::GdprProjection, written(50_000, 30_000)),
            ])),
            machine_busy: 1_400,
            machine_idle: 600,
            machine_steal: 20,
        };
        // 4 s of machine time for 100,000 requests: 40 µs each.
        let spent = before.per_request(&after, 100_000.0);
        assert_eq!(spent.of(Stage::Http), 20.0);
        assert_eq!(spent.of(Stage::LogWriter), 10.0);
        assert_eq!(spent.of(Stage::Other), 1.0);
        assert_eq!(spent.of(Stage::GdprProjection), 0.0);
        assert_eq!(spent.machine_busy, 40.0);
        assert_eq!(spent.machine_idle, 10.0);
        assert_eq!(spent.machine_steal, 2.0);
        assert!((spent.server() - 31.0).abs() < 1e-9);
        assert!((spent.outside() - 9.0).abs() < 1e-9);
        assert_eq!(spent.written_by(Stage::LogWriter), Some((2.0, 1.0)));
        assert_eq!(spent.written_by(Stage::GdprProjection), Some((0.5, 0.3)));
        assert_eq!(spent.written_by(Stage::Http), Some((0.0, 0.0)));
        let each = spent.each_of(1_000.0);
        assert!((each.machine_busy - 0.04).abs() < 1e-12);
        assert!((each.server() - 0.031).abs() < 1e-12);
        assert_eq!(each.written_by(Stage::LogWriter), Some((0.002, 0.001)));
        // A sample whose threads' bytes could not be read reports none, rather than nothing.
        let unread = Sample {
            written: None,
            ..after.clone()
        };
        assert_eq!(
            before
                .per_request(&unread, 1.0)
                .written_by(Stage::LogWriter),
            None
        );
    }

    #[test]
    fn reads_a_threads_bytes_written() {
        let io = "rchar: 1595978457\nwchar: 1007219413\nsyscr: 389534\nsyscw: 361551\n\
                  read_bytes: 385024\nwrite_bytes: 1169604608\ncancelled_write_bytes: 91136000\n";
        assert_eq!(
            thread_written(io),
            Some(Written {
                calls: 1_007_219_413,
                disk: 1_169_604_608
            })
        );
        assert_eq!(thread_written("rchar: 1\nwchar: 2\n"), None);
    }

    #[test]
    fn counts_what_a_thread_writes_to_its_stage() {
        // A thread named as the projection's writer, alive across both samples, so that no
        // other test's thread (which ends when it likes) is summed with it.
        let dir = tempfile::tempdir().expect("a scratch directory");
        let path = dir.path().join("bytes");
        let (go, wait_go) = std::sync::mpsc::channel::<()>();
        let (wrote, wait_wrote) = std::sync::mpsc::channel::<()>();
        let (end, wait_end) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::Builder::new()
            .name("gdpr-writer".into())
            .spawn(move || {
                wait_go.recv().expect("told to write");
                std::fs::write(path, vec![7u8; 1 << 20]).expect("written");
                wrote.send(()).expect("told");
                wait_end.recv().expect("told to end");
            })
            .expect("a thread");
        let before = Sample::take(std::process::id()).expect("this process's threads");
        go.send(()).expect("told");
        wait_wrote.recv().expect("the thread wrote");
        let after = Sample::take(std::process::id()).expect("this process's threads");
        end.send(()).expect("told");
        writer.join().expect("the thread ended");
        let (calls, _) = before
            .per_request(&after, 1.0)
            .written_by(Stage::GdprProjection)
            .expect("Linux keeps every thread's I/O counters in /proc/PID/task/TID/io");
        assert_eq!(calls, f64::from(1 << 20));
    }
}
