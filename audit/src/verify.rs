//! The streaming core of `consent-ledger verify BUNDLE --vkey VKEY [--since OLD_CHECKPOINT]`
//! (SPEC §6, §8): a bundle checked offline, read as a stream (a bundle may be larger than memory) in blocks of whole
//! lines that every core checks at once; the runs are joined in bundle order, so the verdict
//! and the first bad line named are those of checking line by line
//! ([`BundleVerifier::join`]).
//!
//! No line is held whole beyond [`MAX_LINE_BYTES`]: the header is read through a limit, and a
//! line still open at the end of a block is carried into the next block only while it is
//! within the limit, so memory stays under a block plus the limit whatever the input.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use crate::bundle::{
    check_length, BundleError, BundleErrorKind, BundleVerifier, LineRun, VerifiedBundle,
    MAX_LINE_BYTES,
};
use crate::note::{Checkpoint, VerifierKey};

/// Bytes read per block (cut after its last newline).
const BLOCK: usize = 4 << 20;

/// Why a bundle was not verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The bundle is not a valid bundle under this key; the error names the first bad line.
    #[error("bundle refused: {0}")]
    Refused(#[from] BundleError),
    /// Reading the bundle failed (not a verdict on its content).
    #[error("reading the bundle at line {line}: {source}")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    /// A checking thread panicked (a bug, not a verdict).
    #[error("the bundle reader panicked")]
    Panicked,
}

fn refused(e: BundleError) -> VerifyError {
    VerifyError::Refused(e)
}

/// One block of whole lines: its index, the number of its first line, its bytes.
type Job = (usize, usize, Vec<u8>);

/// Verifies the bundle read from `input` against `vkey` (and, given one, its consistency with
/// the `trusted` older checkpoint). `progress` is told the bytes checked so far. The error
/// names the first bad line.
pub fn verify_reader(
    input: impl Read + Send,
    vkey: &VerifierKey,
    trusted: Option<&Checkpoint>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifiedBundle, VerifyError> {
    verify_in_blocks(input, vkey, trusted, BLOCK, progress)
}

fn verify_in_blocks(
    input: impl Read + Send,
    vkey: &VerifierKey,
    trusted: Option<&Checkpoint>,
    block_size: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifiedBundle, VerifyError> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, input);

    // The header: the first line that is not blank. Read through a limit of the longest line
    // and its line end, so a header without end is not buffered whole.
    let mut n = 0;
    let mut line = Vec::new();
    let mut verifier = loop {
        line.clear();
        let got = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(|source| VerifyError::Read {
                line: n + 1,
                source,
            })?;
        if got == 0 {
            return Err(refused(BundleError {
                line: 1,
                kind: BundleErrorKind::Empty,
            }));
        }
        n += 1;
        let raw = line.strip_suffix(b"\n").unwrap_or(&line[..]);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // A line cut by the limit is longer than the limit, whatever its last bytes were.
        let cut = !line.ends_with(b"\n") && got as u64 == MAX_LINE_BYTES as u64 + 2;
        check_length(n, if cut { got } else { raw.len() }).map_err(refused)?;
        let text = std::str::from_utf8(raw).map_err(|e| {
            refused(BundleError {
                line: n,
                kind: BundleErrorKind::Malformed(format!("not UTF-8: {e}")),
            })
        })?;
        if !text.trim().is_empty() {
            break BundleVerifier::from_header(n, text, vkey, trusted).map_err(refused)?;
        }
    };
    let template = verifier.run();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let stop = AtomicBool::new(false);
    let (jobs, queue) = mpsc::sync_channel::<Job>(workers * 2);
    let queue = Mutex::new(queue);
    let (done, results) = mpsc::channel::<(usize, LineRun, usize)>();

    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, done, template, stop) = (&queue, done.clone(), &template, &stop);
            scope.spawn(move || loop {
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                let Ok((index, first, bytes)) = job else {
                    return;
                };
                // After a verdict the rest is drained unchecked, so the reader never blocks.
                if stop.load(Ordering::Relaxed) {
                    continue;
                }
                let mut run = template.clone();
                for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
                    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                    if run.line_bytes(first + i, raw).is_err() {
                        break;
                    }
                }
                let _ = done.send((index, run, bytes.len()));
            });
        }
        drop(done);

        let stop = &stop;
        let reading = scope.spawn(move || -> Result<(), VerifyError> {
            let mut index = 0;
            let mut first = n + 1;
            let mut carry = Vec::new();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let mut block = std::mem::take(&mut carry);
                let start = block.len();
                block.resize(start + block_size, 0);
                let got = read_up_to(&mut reader, &mut block[start..]).map_err(|source| {
                    VerifyError::Read {
                        line: first,
                        source,
                    }
                })?;
                block.truncate(start + got);
                let at_end = got == 0;
                if !at_end {
                    // Whole lines only; a line longer than a block waits for more, up to the
                    // limit of a line. The carried bytes hold no line end: look in the new
                    // ones only, so a long line read in small blocks is not scanned again.
                    match block[start..].iter().rposition(|&b| b == b'\n') {
                        Some(i) => carry = block.split_off(start + i + 1),
                        None => {
                            carry = block;
                            open_line_within_limit(first, &carry)?;
                            continue;
                        }
                    }
                }
                if block.is_empty() {
                    return Ok(());
                }
                let lines = block.iter().filter(|&&b| b == b'\n').count();
                if jobs.send((index, first, block)).is_err() {
                    return Ok(());
                }
                index += 1;
                first += lines;
                if at_end {
                    return Ok(());
                }
                // Refused only after the lines before it were sent: a bad line among them is
                // named first, as line by line.
                open_line_within_limit(first, &carry)?;
            }
        });

        // Join the runs in bundle order as they come back.
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        let mut verdict = Ok(());
        let mut bytes_done = 0u64;
        for (index, run, bytes) in results {
            if verdict.is_err() {
                continue;
            }
            waiting.insert(index, (run, bytes));
            while let Some((run, bytes)) = waiting.remove(&next) {
                next += 1;
                bytes_done += bytes as u64;
                if let Err(e) = verifier.join(run) {
                    stop.store(true, Ordering::Relaxed);
                    verdict = Err(refused(e));
                    break;
                }
            }
            progress(bytes_done);
        }
        let read = reading.join().map_err(|_| VerifyError::Panicked)?;
        verdict?;
        read?;
        // INVARIANT: every block sent was joined, unless a verdict stopped the join early.
        if !waiting.is_empty() {
            return Err(VerifyError::Panicked);
        }
        Ok(())
    })?;
    Ok(verifier.finish())
}

/// Refuses the line numbered `n` whose first bytes, `open`, were read without its end, once
/// they are more than a line may hold (a `\r` at the end may still be its line end's).
fn open_line_within_limit(n: usize, open: &[u8]) -> Result<(), VerifyError> {
    let length = open.strip_suffix(b"\r").unwrap_or(open).len();
    check_length(n, length).map_err(refused)
}

/// Fills `buf` as far as the reader allows; fewer bytes only at the end of the input.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(got) => filled += got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use crate::bundle::{verify_bundle, BundleHeader, BundleLine, BUNDLE_FORMAT};
    use crate::tree::{leaf_hash, MemoryTree};
    use crate::{Checkpoint, LogKey};

    use super::*;

    /// A bundle of every event of a 40-event log, as its lines.
    fn bundle(key: &LogKey) -> Vec<String> {
        let leaves: Vec<String> = (0..40)
            .map(|p| {
                format!(
                    r#"{{"actor":"a","payload":{{"text":"{}"}},"position":{p}}}"#,
                    "x".repeat(p * 3)
                )
            })
            .collect();
        let tree = MemoryTree::new(leaves.iter().map(|l| leaf_hash(l.as_bytes())).collect());
        let header = BundleHeader {
            format: BUNDLE_FORMAT.into(),
            origin: key.name().into(),
            vkey: key.vkey(),
            checkpoint: Checkpoint::new(key.name(), 40, tree.root())
                .unwrap()
                .sign(key),
            consistency: None,
        };
        let mut lines = vec![serde_json::to_string(&header).unwrap()];
        for (p, leaf) in leaves.iter().enumerate() {
            let proof = tree.inclusion_path(p as u64).unwrap();
            lines.push(
                serde_json::to_string(&BundleLine::new(p as u64, leaf.clone(), &proof)).unwrap(),
            );
        }
        lines
    }

    /// Counts the bytes read through it.
    struct Counting<'a, R> {
        inner: R,
        read: &'a std::sync::atomic::AtomicUsize,
    }

    impl<R: Read> Read for Counting<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let got = self.inner.read(buf)?;
            self.read.fetch_add(got, Ordering::Relaxed);
            Ok(got)
        }
    }

    /// Security issue: a bundle line of 512 MiB cost the verifier 26 s and 1.6 GB, buffered
    /// whole before it was parsed. A line over `MAX_LINE_BYTES` is refused naming it, wherever
    /// the blocks cut it, as the header too, and the reader stops there.
    #[test]
    fn a_line_over_the_limit_is_refused_naming_it_without_reading_it_whole() {
        let key = LogKey::generate("example.org/log").unwrap();
        let vkey: VerifierKey = key.vkey().parse().unwrap();
        let good = bundle(&key);
        let too_long = |position: usize| {
            format!(
                r#"{{"position":{position},"leaf":"{}","inclusion_proof":[]}}"#,
                "x".repeat(2 << 20)
            )
        };
        let refusal = |line: usize| {
            format!(
                "bundle refused: line {line}: the line is longer than {MAX_LINE_BYTES} bytes; \
                 no bundle line is"
            )
        };
        let mut event = good.clone();
        event[3] = too_long(2);
        let mut last = good.clone();
        last.push(too_long(40));
        let mut header = good.clone();
        header[0] = too_long(0);
        let just_fits = format!("{}{}", good[5], " ".repeat(MAX_LINE_BYTES - good[5].len()));
        let mut padded = good.clone();
        padded[5] = just_fits;
        let cases = [
            (event.join("\n"), Err(refusal(4))),
            (event.join("\r\n"), Err(refusal(4))),
            (last.join("\n"), Err(refusal(42))),
            (format!("\n{}", header.join("\n")), Err(refusal(2))),
            (padded.join("\r\n"), Ok(40)),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            let line_by_line = verify_bundle(text, &vkey)
                .map(|v| v.events)
                .map_err(|e| format!("bundle refused: {e}"));
            assert_eq!(&line_by_line, expected, "case {i}, line by line");
            for block in [700, 1 << 20, 3 << 20, BLOCK] {
                let got = verify_in_blocks(text.as_bytes(), &vkey, None, block, &|_| {})
                    .map(|v| v.events)
                    .map_err(|e| e.to_string());
                assert_eq!(&got, expected, "case {i}, blocks of {block} bytes");
            }
        }

        // A line that never ends: refused after a block and the reader's buffer, not 512 MiB.
        let read = std::sync::atomic::AtomicUsize::new(0);
        let endless = std::io::Cursor::new(format!("{}\n{}\n", good[0], good[1]))
            .chain(std::io::repeat(b'x').take(512 << 20));
        let input = Counting {
            inner: endless,
            read: &read,
        };
        let err = verify_reader(input, &vkey, None, &|_| {})
            .unwrap_err()
            .to_string();
        assert_eq!(err, refusal(3));
        let read = read.load(Ordering::Relaxed);
        assert!(read <= BLOCK + (2 << 20), "read {read} bytes");
    }

    #[test]
    fn blocks_of_any_size_give_the_line_by_line_verdict() {
        let key = LogKey::generate("example.org/log").unwrap();
        let vkey: VerifierKey = key.vkey().parse().unwrap();
        let good = bundle(&key);
        let mut cases = vec![good.join("\n"), format!("\n\n{}\n", good.join("\r\n"))];
        for at in [1, 2, 17, 39, 40] {
            let mut changed = good.clone();
            changed[at] = changed[at].replacen("\"a\"", "\"b\"", 1);
            cases.push(changed.join("\n"));
            let mut swapped = good.clone();
            swapped.swap(at - 1, at);
            cases.push(swapped.join("\n"));
            let mut cut = good.clone();
            cut[at].truncate(10);
            cases.push(cut.join("\n"));
        }
        for (i, text) in cases.iter().enumerate() {
            let expected = verify_bundle(text, &vkey).map_err(|e| format!("bundle refused: {e}"));
            // Blocks shorter than a line, of a few lines, and of the whole file.
            for block in [50, 700, 3000, 1 << 20] {
                let got = verify_in_blocks(text.as_bytes(), &vkey, None, block, &|_| {})
                    .map_err(|e| e.to_string());
                assert_eq!(got, expected, "case {i}, blocks of {block} bytes");
            }
        }
        // Bytes that are not UTF-8 name their line.
        let mut bytes = good.join("\n").into_bytes();
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(2)
            .unwrap()
            .0;
        bytes[third + 5] = 0xff;
        for block in [50, 1 << 20] {
            let err = verify_in_blocks(&bytes[..], &vkey, None, block, &|_| {})
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("bundle refused: line 4: not a bundle line: not UTF-8"),
                "{err}"
            );
        }
    }
}
