//! What the process-level test binaries share: a `serve` process on a free port.
// Each test binary includes this module and uses what it needs of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `serve` process, SIGKILLed when dropped if still running (a failed test leaves none).
pub struct Serve {
    pub child: Child,
    pub url: String,
}

impl Serve {
    /// `serve --listen 127.0.0.1:0` with the store options `cmd` carries; returns once it
    /// printed the line naming its URL.
    pub fn start_with(cmd: Command) -> Self {
        Self::start_with_args(cmd, &[])
    }

    /// As [`Serve::start_with`], with `serve`'s own flags `args` (e.g.
    /// `--webhooks-allow-insecure-loopback`).
    pub fn start_with_args(mut cmd: Command, args: &[&str]) -> Self {
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let url = line
            .trim()
            .strip_prefix("consent-ledger listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Serve { child, url }
    }

    /// Sends `signal` (e.g. `-KILL`) and reaps the process.
    pub fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("reap");
    }

    /// SIGTERM, and the graceful stop exits 0.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("reap");
        assert!(exit.success(), "a SIGTERM stops serve with 0, got {exit}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
