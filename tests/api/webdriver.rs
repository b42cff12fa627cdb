//! A W3C WebDriver client for the console's browser tests, over the awc client the tests
//! already use: the commands they need (new session, navigate, find, click, type, read
//! text, run a script, screenshot) against a real `chromedriver` driving headless Chromium.
//! The WebDriver crates of the field (fantoccini, thirtyfour) bring a second major version of
//! `cookie` and of the HTTP stack beside actix's; these few JSON calls do not need them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver` on this machine, or `None`: then a browser test says it was skipped — except
/// under CI, whose `.ci/run` installs it, where its absence is a failure.
pub fn chromedriver() -> Option<String> {
    let found = ["chromedriver", "/usr/bin/chromedriver"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned);
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "CI installs chromium and chromium-driver; chromedriver is missing"
        );
    }
    found
}

/// A running chromedriver and one headless Chromium session on it.
pub struct Browser {
    driver: Child,
    client: awc::Client,
    session: String,
    port: u16,
    session_id: String,
}

impl Drop for Browser {
    /// Ends the session first, so that chromedriver closes its Chromium: killing chromedriver
    /// alone leaves the browser and its helpers running, orphaned, after the test. Drop cannot
    /// await, so the DELETE is written on a plain socket and its answer read to the end.
    fn drop(&mut self) {
        let _ = end_session(self.port, &self.session_id);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` on the chromedriver at `port`, waiting (at most 10 s) for it to
/// answer, i.e. for the browser to have quit.
fn end_session(port: u16, session_id: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts `chromedriver` (at `path`) and a headless Chromium at 1280×800.
    pub async fn start(path: &str) -> Browser {
        let port = free_port();
        let driver = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut r) = client.get(format!("{base}/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(Instant::now() < deadline, "chromedriver never ready");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--lang=en-US"]
        });
        if let Some(b) = binary {
            options["binary"] = json!(b);
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options
        }}});
        let mut r = client
            .post(format!("{base}/session"))
            .send_json(&caps)
            .await
            .expect("new session");
        let v: Value = r.json().limit(1 << 20).await.expect("session answer");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            driver,
            client,
            session: format!("{base}/session/{session}"),
            port,
            session_id: session,
        }
    }

    /// One command; its value, or the WebDriver error's value.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}{path}", self.session);
        let req = match method {
            "GET" => self.client.get(url),
            _ => self.client.post(url),
        };
        let mut r = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let v: Value = r
            .json()
            .limit(64 << 20)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        match v["value"].get("error") {
            Some(_) => Err(v["value"].clone()),
            None => Ok(v["value"].clone()),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The first element matching the CSS selector, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/element", self.session);
            let mut r = self
                .client
                .post(url)
                .send_json(&json!({"using": "css selector", "value": css}))
                .await
                .expect("find");
            let v: Value = r.json().await.expect("find answer");
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css}: {}",
                v["value"]
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` in the page (synchronously); its result.
    pub async fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits up to 20 s until the text of `css` contains `wanted` (the page may be loading
    /// meanwhile: an element gone stale is looked up again); the text.
    pub async fn wait_text(&self, css: &str, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let id = self.find(css).await;
            let text = self
                .try_call("GET", &format!("/element/{id}/text"), None)
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if text.contains(wanted) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never said {wanted:?}: {text:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", "/screenshot", None).await;
        B64.decode(v.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }
}
