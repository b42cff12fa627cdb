//! Security issue, the HTTP layer: every error answer is RFC 9457 problem+json (SPEC §7), the
//! HTTP layer's own included — a method a path does not take, an unknown route, a bad path id
//! or query, a body over the limit — and a request whose body never arrives whole is answered
//! 408 and dropped after `REQUEST_TIMEOUT` instead of holding its connection and handler.
//! And the server sends what it writes at once (`TCP_NODELAY`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::RawFd;
use std::time::Duration;

use actix_web::http::StatusCode;
use consent_ledger_api::body::REQUEST_TIMEOUT;
use serde_json::Value;

use crate::helpers::{problem, spawn_app, Reply};

/// Asserts a problem+json answer with this status and slug, carrying the four RFC 9457
/// members.
fn full_problem(what: &str, r: &Reply, status: StatusCode, slug: &str) {
    problem(r, status, slug);
    for member in ["type", "title", "detail"] {
        assert!(
            r.body[member].as_str().is_some_and(|v| !v.is_empty()),
            "{what}: no {member} in {}",
            r.body
        );
    }
    assert_eq!(r.body["status"], status.as_u16(), "{what}");
}

#[actix_web::test]
async fn every_error_of_the_http_layer_is_problem_json() {
    let app = spawn_app().await;
    let admin = app.admin.clone();
    let consent = "/v1/consents/0190c6a4-0000-7000-8000-000000000000";

    // A known path asked with a method it does not take: 405 naming the methods it takes
    // (it was a 404, as if the path did not exist).
    for (method, path, allow) in [
        ("DELETE", "/v1/consents", "GET, POST"),
        ("PUT", consent, "GET"),
        ("GET", "/v1/decisions", "POST"),
        ("PATCH", "/v1/shipments", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/openapi.json", "GET"),
    ] {
        let what = format!("{method} {path}");
        let r = app
            .request_with(method, path, Some(&admin), Some(b"{}"))
            .await;
        full_problem(
            &what,
            &r,
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        );
        assert_eq!(
            r.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{what}"
        );
    }

    // An unknown route, whatever the method: 404.
    for method in ["GET", "POST", "DELETE"] {
        let r = app
            .request_with(method, "/v1/nowhere", Some(&admin), None)
            .await;
        full_problem(method, &r, StatusCode::NOT_FOUND, "not-found");
    }

    // A bad path id, a bad query: 422 naming them.
    let r = app.get("/v1/consents/not-a-uuid", &admin).await;
    full_problem(
        "bad id",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
    );
    assert_eq!(r.field(), "id");
    let r = app.get("/v1/consents?limit=ten", &admin).await;
    full_problem(
        "bad query",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
    );
    assert_eq!(r.field(), "limit");

    // Bodies: over the limit 413, not JSON 400.
    let big = vec![b' '; 600 * 1024];
    let r = app
        .post_raw("/v1/principals", Some(&admin), &big, &[])
        .await;
    full_problem(
        "big body",
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    let r = app
        .post_raw("/v1/principals", Some(&admin), b"{\"role\":", &[])
        .await;
    full_problem("cut JSON", &r, StatusCode::BAD_REQUEST, "malformed-json");
}

/// Sends `request` on a fresh connection to `address` and reads until the server closes it
/// (at most `wait`); returns the status, the headers (lower-cased) and the body.
fn raw_exchange(address: &str, request: &[u8], wait: Duration) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the server answers and closes the connection");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head, answer[split + 4..].to_vec())
}

/// Security issue: a client that announced `Content-Length: 100`, sent 10 bytes and went
/// quiet held its connection and the handler for ever. After `REQUEST_TIMEOUT` the request is
/// answered 408 problem+json, nothing is recorded, and the connection is closed; headers that
/// never end are dropped after the same time by actix-http (its 408 has no body).
#[actix_web::test]
async fn a_request_not_received_in_time_is_answered_408_and_dropped() {
    let app = spawn_app().await;
    let before = app.log_size().await;
    let address = app.socket_address().to_owned();
    let half_body = format!(
        "POST /v1/principals HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"role\":\"",
        app.admin
    );
    let half_head = "POST /v1/principals HTTP/1.1\r\nHost: test\r\nContent-Len".to_owned();
    // Both wait out the timeout at once, on threads of their own (the sockets block); an
    // answer later than `wait` fails the read.
    let wait = REQUEST_TIMEOUT + Duration::from_secs(5);
    let (body_answer, head_answer) = {
        let address2 = address.clone();
        let body = actix_web::rt::task::spawn_blocking(move || {
            raw_exchange(&address, half_body.as_bytes(), wait)
        });
        let head = actix_web::rt::task::spawn_blocking(move || {
            raw_exchange(&address2, half_head.as_bytes(), wait)
        });
        (body.await.expect("body"), head.await.expect("head"))
    };

    let (status, head, body) = body_answer;
    assert_eq!(status, 408, "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let problem: Value = serde_json::from_slice(&body).expect("a problem document");
    assert_eq!(
        problem["type"],
        "https://consent-ledger.dev/problems/request-timeout"
    );
    assert_eq!(problem["status"], 408);
    assert!(problem["title"].is_string() && problem["detail"].is_string());
    assert_eq!(app.log_size().await, before, "nothing was recorded");

    let (status, head, _) = head_answer;
    assert_eq!(status, 408, "{head}");
}

/// What actix-http's codec refuses before a request exists is answered by it alone: a
/// `Content-Length` that is not a number is a 400 with an empty body (no problem+json can be
/// given there), the connection is closed, and no handler runs.
#[actix_web::test]
async fn a_malformed_request_head_is_refused_by_the_codec_and_closed() {
    let app = spawn_app().await;
    let before = app.log_size().await;
    let request = format!(
        "POST /v1/principals HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Length: lots\r\n\r\n{{}}",
        app.admin
    );
    let address = app.socket_address().to_owned();
    let (status, head, body) = actix_web::rt::task::spawn_blocking(move || {
        raw_exchange(&address, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .expect("exchange");
    assert_eq!(status, 400, "{head}");
    assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
    assert_eq!(app.log_size().await, before);
}

/// Performance issue: every answer streamed in more than one write (an export, a DSAR, a CSV)
/// took ~44 ms however small, because with Nagle's algorithm on, each write after the first
/// waited for the client's delayed ACK (40 ms on Linux). The server's end of every connection
/// it accepts must have `TCP_NODELAY` set; read here from a duplicate of that very socket.
#[actix_web::test]
async fn the_server_sends_its_writes_without_waiting_for_acks() {
    let app = spawn_app().await;
    let address = app.socket_address().to_owned();
    // Blocking I/O off the runtime that serves the requests.
    let (server_end, client_end) = actix_web::rt::task::spawn_blocking(move || {
        let mut client = TcpStream::connect(&address).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        // An answer read: the server has accepted the connection (and keeps it open).
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: ledger\r\n\r\n")
            .expect("send");
        let mut answer = [0u8; 1024];
        let read = client.read(&mut answer).expect("an answer");
        assert!(
            answer[..read].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&answer[..read])
        );
        let accepted = server_end_of(&client);
        (
            accepted.nodelay().expect("TCP_NODELAY of the server's end"),
            client.nodelay().expect("TCP_NODELAY of the client's end"),
        )
    })
    .await
    .expect("the exchange");
    assert!(
        server_end,
        "the server's end of the connection has Nagle's algorithm on"
    );
    // The client's own end, as any client opens it, has it on: the check tells them apart.
    assert!(!client_end);
}

/// The server's end of `client`'s connection: a duplicate of the socket this process (the
/// server runs in it) holds whose addresses are the client's, crossed.
fn server_end_of(client: &TcpStream) -> TcpStream {
    use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};
    let (near, far) = (
        client.local_addr().expect("client address"),
        client.peer_addr().expect("server address"),
    );
    let me = pidfd_open(getpid(), PidfdFlags::empty()).expect("pidfd_open of this process");
    let fds = std::fs::read_dir("/proc/self/fd").expect("this process's descriptors");
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // Only sockets are duplicated: closing a duplicate of a file's descriptor would release
        // every POSIX lock this process holds on the file, SQLite's among them (the other tests
        // of the process have their databases open).
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // A descriptor closed meanwhile is skipped.
        let Ok(duplicate) = pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let duplicate = std::fs::File::from(duplicate);
        if !duplicate
            .metadata()
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            // Reused for a file since it was listed: left open rather than closed, for the
            // reason above.
            std::mem::forget(duplicate);
            continue;
        }
        let socket = TcpStream::from(std::os::fd::OwnedFd::from(duplicate));
        if socket.local_addr().ok() == Some(far) && socket.peer_addr().ok() == Some(near) {
            return socket;
        }
    }
    panic!("no socket of this process is the server's end of {near} → {far}");
}
