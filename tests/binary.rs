//! The real `consent-ledger` binary, as a newcomer runs it: first start creates the store and
//! the signing key, `/healthz` answers, a principal made offline while it serves can call it,
//! and SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_consent-ledger");

/// Runs the binary on `dir` with nothing from the environment choosing another store.
fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .arg("--data-dir")
        .arg(dir);
    cmd
}

/// Starts `serve` on a free port; returns the child and its base URL.
fn serve(dir: &Path) -> (Child, String) {
    serve_with(dir, &[])
}

/// Starts `serve` on a free port with more flags; returns the child and its base URL.
fn serve_with(dir: &Path, flags: &[&str]) -> (Child, String) {
    serve_logging_to(dir, flags, Stdio::inherit())
}

/// Starts `serve` on a free port with more flags and its log going to `log`; returns the
/// child and its base URL.
fn serve_logging_to(dir: &Path, flags: &[&str], log: Stdio) -> (Child, String) {
    let mut child = command(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn consent-ledger serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("consent-ledger listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (child, url)
}

fn principal(dir: &Path, role: &str, name: &str) -> serde_json::Value {
    let out = command(dir)
        .args(["principal", "create", "--role", role, "--name", name])
        .output()
        .expect("run principal create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("principal create prints JSON")
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

#[actix_web::test]
async fn first_start_creates_the_store_and_key_and_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let admin = principal(&data, "admin", "First admin");
    assert!(
        admin["id"].is_string() && admin["token"].as_str().is_some_and(|t| t.len() > 32),
        "{admin}"
    );

    let (mut child, url) = serve(&data);
    assert!(
        data.join("ledger.db").is_file(),
        "ledger.db created on first start"
    );
    let key = data.join("log.key");
    assert!(key.is_file(), "signing key created on first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key)
                .expect("key metadata")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    let client = awc::Client::default();
    let mut health = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.expect("json")["status"],
        "ok"
    );

    // A principal made offline while the server runs authenticates at once.
    let shipper = principal(&data, "shipper", "Late shipper");
    let token = shipper["token"].as_str().expect("token");
    let mut me = client
        .get(format!("{url}/v1/me"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.json::<serde_json::Value>().await.expect("json")["id"],
        shipper["id"]
    );

    // A token rotated offline (an operator who lost or leaked it) is refused by the running
    // server at once; the new one works.
    let out = command(&data)
        .args(["principal", "rotate-token", "--id"])
        .arg(shipper["id"].as_str().expect("id"))
        .output()
        .expect("run principal rotate-token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("rotate-token prints JSON");
    assert_eq!(rotated["id"], shipper["id"]);
    for (token, status) in [(token, 401), (rotated["token"].as_str().expect("new"), 200)] {
        let me = client
            .get(format!("{url}/v1/me"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .expect("me");
        assert_eq!(me.status(), status);
    }
    let unknown = command(&data)
        .args(["principal", "rotate-token", "--id", "nope"])
        .output()
        .expect("run principal rotate-token");
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("--id"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    // The GDPR projection follows the log by itself, on a thread of its own at a lower CPU
    // priority than the decision path's (SCHED_IDLE at nice 10), as do its connections reading
    // the log and writing its file.
    #[cfg(target_os = "linux")]
    {
        let priority_of = |comm: &str| -> Vec<String> {
            std::fs::read_dir(format!("/proc/{}/task", child.id()))
                .expect("the server's threads")
                .filter_map(|task| {
                    let task = task.ok()?;
                    let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
                    let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                    // Nice value and scheduling policy (fields 19 and 41; 5 is SCHED_IDLE).
                    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
                    let priority = format!("{} {}", fields.get(16)?, fields.get(38)?);
                    (name.trim_end() == comm).then_some(priority)
                })
                .collect()
        };
        let location = consent_ledger_store::StoreLocation::in_data_dir(&data);
        // Up to 30 s: the projection runs only on CPU no other thread wants (SCHED_IDLE), and
        // the rest of the test suite may keep both cores busy meanwhile.
        let mut caught_up = false;
        for _ in 0..300 {
            let store = consent_ledger_store::Store::open(&location)
                .await
                .expect("open the store beside the server");
            let (applied, size) = (
                store.gdpr_position().await.expect("gdpr position"),
                store.next_position().await.expect("log size"),
            );
            store.close().await;
            if applied == size {
                caught_up = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(caught_up, "the GDPR projection follows the log unasked");
        assert_eq!(priority_of("gdpr-follower"), vec!["10 5"]);
        assert_eq!(priority_of("gdpr-reader"), vec!["10 5"]);
        assert_eq!(priority_of("gdpr-writer"), vec!["10 5"]);
        assert_eq!(priority_of("log-commit"), vec!["0 0"]);
        // Every read connection of the log and of the audit file is opened at the start, at
        // the decisions' priority, so the follower's reads never make one of its own priority.
        let readers: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .expect("the server's threads")
            .filter_map(|task| {
                let name = std::fs::read_to_string(task.ok()?.path().join("comm")).ok()?;
                let name = name.trim_end();
                (name.starts_with("log-reader-") || name.starts_with("audit-reader-"))
                    .then(|| name.to_owned())
            })
            .collect();
        assert_eq!(readers.len(), 12, "{readers:?}");
        for reader in &readers {
            assert_eq!(priority_of(reader), vec!["0 0"], "{reader}");
        }
    }

    sigterm(&child);
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful stop exits 0, got {status}");

    // The same key is used on the next start. A SIGTERM sent the moment the listening line
    // is printed is already handled: a graceful stop, exit 0.
    let vkey = command(&data).arg("keygen").output().expect("keygen");
    let first = String::from_utf8_lossy(&vkey.stdout).to_string();
    // The clean-up every start runs (SPEC §12) is under way then, and is finished, not cut
    // off with an error, before the store closes.
    for _ in 0..3 {
        let (child, _) = serve_logging_to(&data, &[], Stdio::piped());
        sigterm(&child);
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "a SIGTERM at once stops gracefully, got {}",
            out.status
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            !log.contains(" ERROR ") && !log.contains(" WARN "),
            "a graceful stop logs no error or warning:\n{log}"
        );
    }
    let again = command(&data).arg("keygen").output().expect("keygen");
    assert_eq!(first, String::from_utf8_lossy(&again.stdout));
    assert!(first.starts_with("consent-ledger.local/log+"), "{first}");
    // Every process above stopped cleanly (serve, the principal commands): the GDPR file they
    // wrote without fsync was made durable, and no marker is left that would make the next
    // boot rebuild it.
    let markers: Vec<_> = std::fs::read_dir(&data)
        .expect("list the data dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains(".unsynced-"))
        .collect();
    assert!(markers.is_empty(), "{markers:?}");
}

/// `replay --audit` rebuilds the GDPR projection from the whole log into a new file when no
/// running process has the projection's file open (instead of deleting every row of it), and
/// beside a running `serve` in the same file, in place.
#[actix_web::test]
async fn replay_audit_rebuilds_into_a_new_file_unless_a_running_server_has_it_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    principal(dir.path(), "admin", "Admin");
    principal(dir.path(), "regulator", "DPA");
    let audit = dir.path().join("ledger.audit.db");
    // A table of the test's own in the file: a rebuild in place keeps it, a new file has none.
    let marked = |mark: bool| {
        let audit = audit.clone();
        async move {
            let file = sqlx::SqlitePool::connect_with(
                sqlx::sqlite::SqliteConnectOptions::new().filename(&audit),
            )
            .await
            .expect("open the audit file");
            if mark {
                sqlx::query("CREATE TABLE this_file (here INTEGER)")
                    .execute(&file)
                    .await
                    .expect("mark the file");
            }
            let found: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'this_file'")
                    .fetch_one(&file)
                    .await
                    .expect("look for the mark");
            file.close().await;
            found == 1
        }
    };
    let replay = || {
        let out = command(dir.path())
            .args(["replay", "--audit"])
            .output()
            .expect("run replay --audit");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("replay prints JSON");
        let size = report["summary"]["log_size"].as_u64().expect("log size");
        assert!(size >= 2, "{report}");
        assert!(
            report["audit"]["position"].as_u64().expect("position") >= size,
            "the whole log: {report}"
        );
    };

    assert!(marked(true).await);
    replay();
    assert!(!marked(false).await, "a new file");

    let (mut child, _url) = serve(dir.path());
    assert!(marked(true).await);
    replay();
    assert!(
        marked(false).await,
        "the file the server has open, rebuilt in place"
    );
    sigterm(&child);
    assert!(child.wait().expect("wait").success());
}

#[test]
fn migrate_creates_a_database_and_is_repeatable() {
    let dir = tempfile::tempdir().expect("temp dir");
    for _ in 0..2 {
        let out = command(dir.path())
            .arg("migrate")
            .output()
            .expect("migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("ledger.db").is_file());
}

#[test]
fn bad_command_line_input_fails_with_a_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = command(dir.path())
        .args([
            "principal",
            "create",
            "--role",
            "partner",
            "--name",
            "No profile",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kind"));
    let out = command(dir.path())
        .args(["principal", "create", "--role", "overlord", "--name", "X"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlord"));
}

/// Security issue: `serve --request-ttl-days 1000000` started, then panicked on every consent
/// request (the clock plus the TTL overflowed); counts near `u64::MAX` overflowed the
/// background tasks' arithmetic. Such flags are refused when the command line is read, naming
/// the flag, before anything is opened or created.
#[test]
fn out_of_range_serve_flags_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // An address that cannot be bound: a flag accepted by mistake ends the run there instead
    // of serving forever.
    let serve = |flag: &str, value: &str| {
        command(&data)
            .args(["serve", "--listen", "not-an-address"])
            .arg(format!("{flag}={value}"))
            .output()
            .expect("run consent-ledger serve")
    };
    for (flag, value) in [
        ("--request-ttl-days", "0"),
        ("--request-ttl-days", "-1"),
        ("--request-ttl-days", "3651"),
        ("--request-ttl-days", "106751991167300"),
        ("--snapshot-every", "18446744073709551615"),
        ("--checkpoint-every-events", "18446744073709551615"),
        ("--checkpoint-every-seconds", "18446744073709551615"),
        ("--rate-limit", "-1"),
        ("--rate-limit", "abc"),
        ("--rate-limit", "1.5"),
        ("--rate-limit", "1000001"),
    ] {
        let out = serve(flag, value);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}={value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "{flag}={value}: {stderr}"
        );
        assert!(!data.exists(), "{flag}={value} created the data directory");
    }
    // The bounds are where the help says: these pass the command line and fail only at the
    // address.
    for (flag, value) in [
        ("--request-ttl-days", "1"),
        ("--request-ttl-days", "3650"),
        ("--snapshot-every", "0"),
        ("--rate-limit", "0"),
        ("--rate-limit", "1000000"),
    ] {
        let out = serve(flag, value);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}={value}: {stderr}");
        assert!(
            stderr.contains("binding not-an-address"),
            "{flag}={value}: {stderr}"
        );
    }
}

/// `--rate-limit -1` as two words, as an operator types it: read as the flag's value (not as
/// an unknown option) and refused naming both, before anything is created.
#[test]
fn a_negative_rate_limit_is_refused_as_the_flags_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    for value in ["-1", "abc"] {
        let out = command(&data)
            .args(["serve", "--listen", "not-an-address", "--rate-limit", value])
            .output()
            .expect("run consent-ledger serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{value}' for '--rate-limit <N>'")),
            "{value}: {stderr}"
        );
        assert!(
            !data.exists(),
            "--rate-limit {value} created the data directory"
        );
    }
}

/// `count` concurrent `GET /v1/me` with `token`: each answer's status and `Retry-After`.
async fn burst(url: &str, token: &str, count: usize) -> Vec<(u16, Option<String>)> {
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .finish();
    let calls: Vec<_> = (0..count)
        .map(|_| {
            let call = client
                .get(format!("{url}/v1/me"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send();
            actix_web::rt::spawn(async move {
                let res = call.await.expect("GET /v1/me");
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                (res.status().as_u16(), retry_after)
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(count);
    for call in calls {
        answers.push(call.await.expect("join"));
    }
    answers
}

/// `serve --rate-limit 5` limits a principal: 30 calls at once, far more than 5 a second,
/// meet 429 with a `Retry-After` of whole seconds once the burst of 5 is spent; with
/// `--rate-limit 0` the same calls all pass.
#[actix_web::test]
async fn serve_rate_limit_limits_each_principal_and_zero_is_no_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let admin = principal(&data, "admin", "First admin");
    let token = admin["token"].as_str().expect("token");
    for limit in ["5", "0"] {
        let (mut child, url) = serve_with(&data, &["--rate-limit", limit]);
        // The first call reads the token from the store; the burst then finds it known.
        let first = burst(&url, token, 1).await;
        assert_eq!(first[0].0, 200, "--rate-limit {limit}: {first:?}");
        let answers = burst(&url, token, 30).await;
        let passed = answers.iter().filter(|(status, _)| *status == 200).count();
        let limited: Vec<&Option<String>> = answers
            .iter()
            .filter(|(status, _)| *status == 429)
            .map(|(_, retry_after)| retry_after)
            .collect();
        assert_eq!(
            passed + limited.len(),
            answers.len(),
            "--rate-limit {limit}: {answers:?}"
        );
        if limit == "0" {
            assert!(limited.is_empty(), "--rate-limit 0: {answers:?}");
        } else {
            assert!(passed >= 4, "the rest of the burst passes: {answers:?}");
            assert!(!limited.is_empty(), "--rate-limit {limit}: {answers:?}");
            for retry_after in limited {
                let seconds: u64 = retry_after
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("Retry-After {retry_after:?}"));
                assert!(seconds >= 1, "Retry-After {seconds}");
            }
        }
        sigterm(&child);
        let status = child.wait().expect("wait");
        assert!(
            status.success(),
            "--rate-limit {limit}: stopped with {status}"
        );
    }
}

/// The mode bits of `path` that say who may read, write or enter it.
#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Asserts that `dir` is 0700 and every file in it 0600, and that it holds at least `names`.
#[cfg(unix)]
fn assert_private(dir: &Path, names: &[&str]) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the data directory") {
        let path = entry.expect("entry").path();
        // A running `serve` writes its snapshot beside the old one and renames it into place:
        // a file listed may be gone when looked at, and has no mode left to check then.
        let meta = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        };
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{}",
                path.display()
            );
        }
        found.push(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    for name in names {
        assert!(found.iter().any(|f| f == name), "no {name} in {found:?}");
    }
}

/// Security issue: the data directory and the SQLite files (the log, the GDPR projection,
/// their WAL and shared memory), the snapshot and the key were created with the umask's modes
/// (0755/0644): every local user could read every consent and decision. Each command makes
/// them its owner's alone, and narrows what an older version left wider.
#[cfg(unix)]
#[actix_web::test]
async fn the_data_directory_and_every_store_file_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out = command(&data).arg("migrate").output().expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_private(&data, &["ledger.db", "ledger.audit.db"]);

    // As an older version left them.
    let widen = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    widen(&data, 0o755);
    widen(&data.join("ledger.db"), 0o644);
    widen(&data.join("ledger.audit.db"), 0o644);

    let (mut child, url) = serve(&data);
    // Answering a request, it has also installed its SIGTERM handler.
    let health = awc::Client::default()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let serving = [
        "ledger.db",
        "ledger.db-wal",
        "ledger.db-shm",
        "ledger.audit.db",
        "ledger.audit.db-wal",
        "ledger.audit.db-shm",
        "log.key",
    ];
    assert_private(&data, &serving);
    sigterm(&child);
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful stop exits 0, got {status}");
    assert_private(&data, &["ledger.db", "log.key", "projections.snapshot"]);
}
