//! The least a durable answer costs on this machine and this HTTP stack: a baseline for `bench
//! http`, measured in the same run as the real server.
//!
//! `consent-ledger-bench durable-floor` is an actix-web server (the same version, workers and
//! allocator as `serve`) that answers `GET` with nothing, as `GET /healthz` does, and answers
//! every `POST` by handing its body to one commit thread, which writes whatever bodies are
//! waiting into a file preallocated on disk (overwritten in turn, as SQLite's WAL is once it
//! restarts, so that no write grows the file), calls `fdatasync` once for them all, and only
//! then lets their answers go: a group commit of the bytes, and nothing else — no JSON read,
//! no token, no decision, no log, no Merkle tree, no projection. With `--no-sync` the thread
//! answers without writing: what the hand-off between threads costs alone.
//!
//! With `--sqlite` the thread commits the bodies instead as rows of an SQLite table opened as
//! the log's is, a group a transaction, by the log's own one-call commit
//! ([`consent_ledger_store::baseline::RowsFloor`]): the least a durable answer costs with the
//! log in SQLite, as SPEC §9 keeps it.
//!
//! A decision must do at least all of this, so the floor's rate over the same server's
//! `GET` rate bounds the ratio SPEC §11 and issue 18 ask of decisions over the healthz
//! ceiling, whatever the decision path does.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use clap::Args;
use consent_ledger_store::baseline::RowsFloor;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// A directory for the file written (created).
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Answer after the hand-off alone, without writing or syncing.
    #[arg(long, conflicts_with = "sqlite")]
    pub no_sync: bool,
    /// Commit the bodies as rows of an SQLite table opened as the log's is, not into a file.
    #[arg(long)]
    pub sqlite: bool,
}

/// Where the commit thread puts the bodies.
enum Sink {
    /// Nowhere: the hand-off alone.
    Nothing,
    /// Written into a preallocated file and synced.
    File(File),
    /// Committed as rows of an SQLite table, on a runtime of the commit thread's own.
    Sqlite(tokio::runtime::Runtime, RowsFloor),
}

/// The file's size: written whole once before the server listens, then overwritten in turn.
const FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A body waiting for its commit, and where its answer goes.
type Job = (web::Bytes, oneshot::Sender<u64>);

/// Serves until killed; prints `consent-ledger listening on URL` once it listens, as `serve`
/// does.
pub fn run(args: FloorArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let sink = if args.no_sync {
        Sink::Nothing
    } else if args.sqlite {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let rows = runtime.block_on(RowsFloor::open(&args.dir.join("durable-floor.db")))?;
        Sink::Sqlite(runtime, rows)
    } else {
        Sink::File(preallocated(&args.dir.join("durable-floor.tmp"))?)
    };
    let (jobs, waiting) = mpsc::channel::<Job>();
    // Named as the real server's group commit, so that `bench http`'s table puts it in the
    // same column.
    std::thread::Builder::new()
        .name("log-commit".into())
        .spawn(move || commit(sink, &waiting))?;
    let listener = std::net::TcpListener::bind(&args.listen)?;
    let url = format!("http://{}", listener.local_addr()?);
    actix_web::rt::System::new().block_on(async move {
        let jobs = web::Data::new(jobs);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(jobs.clone())
                .default_service(web::to(answer))
        })
        .tcp_nodelay(true)
        .disable_signals()
        .listen(listener)?
        .run();
        println!("consent-ledger listening on {url}");
        std::io::stdout().flush()?;
        server.await?;
        anyhow::Ok(())
    })
}

/// `GET`: nothing. `POST`: the body committed, then `{"position":N}`.
async fn answer(
    req: HttpRequest,
    body: web::Bytes,
    jobs: web::Data<mpsc::Sender<Job>>,
) -> HttpResponse {
    if req.method() == actix_web::http::Method::GET {
        return HttpResponse::Ok().finish();
    }
    let (done, committed) = oneshot::channel();
    let sent = jobs.send((body, done));
    match (sent, committed.await) {
        (Ok(()), Ok(position)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(format!("{{\"position\":{position}}}")),
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// A file of [`FILE_BYTES`] written and synced whole, so that writes into it allocate nothing.
fn preallocated(path: &std::path::Path) -> anyhow::Result<File> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let chunk = vec![0_u8; 1 << 20];
    for _ in 0..FILE_BYTES / chunk.len() as u64 {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    Ok(file)
}

/// The commit thread: takes every body waiting, commits them to `sink` at once — into a file
/// at its next offset in one call (wrapping at its end) and one sync, or as rows in one SQLite
/// transaction —, then answers them, until the server is gone.
fn commit(mut sink: Sink, waiting: &mpsc::Receiver<Job>) -> anyhow::Result<()> {
    let mut offset = 0_u64;
    let mut position = 0_u64;
    let mut buffer = Vec::with_capacity(1 << 20);
    let mut batch = Vec::new();
    while let Ok(first) = waiting.recv() {
        batch.push(first);
        batch.extend(waiting.try_iter());
        match &mut sink {
            Sink::Nothing => {}
            Sink::File(file) => {
                buffer.clear();
                for (body, _) in &batch {
                    buffer.extend_from_slice(body);
                    buffer.push(b'\n');
                }
                if offset + buffer.len() as u64 > FILE_BYTES {
                    offset = 0;
                }
                file.write_all_at(&buffer, offset)?;
                file.sync_data()?;
                offset += buffer.len() as u64;
            }
            Sink::Sqlite(runtime, rows) => {
                let bodies: Vec<&[u8]> = batch.iter().map(|(body, _)| &body[..]).collect();
                runtime.block_on(rows.commit(&bodies))?;
            }
        }
        for (_, done) in batch.drain(..) {
            position += 1;
            // A connection closed meanwhile: nobody to answer.
            let _ = done.send(position);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commit thread writes the bodies waiting, in the order they came, one line each,
    /// answers each with its position only then, and stops once no sender is left.
    #[test]
    fn commits_the_bodies_in_order_then_answers_them() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("floor");
        let file = File::create(&path).expect("the file");
        let (jobs, waiting) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || commit(Sink::File(file), &waiting));
        let answers: Vec<oneshot::Receiver<u64>> = ["a", "bb", "ccc"]
            .into_iter()
            .map(|body| {
                let (done, answer) = oneshot::channel();
                jobs.send((web::Bytes::from_static(body.as_bytes()), done))
                    .expect("the commit thread is running");
                answer
            })
            .collect();
        let positions: Vec<u64> = answers
            .into_iter()
            .map(|answer| answer.blocking_recv().expect("answered"))
            .collect();
        assert_eq!(positions, [1, 2, 3]);
        assert_eq!(std::fs::read(&path).expect("read back"), b"a\nbb\nccc\n");
        drop(jobs);
        thread
            .join()
            .expect("the commit thread did not panic")
            .expect("the commit thread stopped cleanly");
    }
}
