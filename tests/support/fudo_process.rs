//! Starts a real `fudo serve` process for integration tests, on ports the OS picks, and
//! stops it (SIGTERM, then SIGKILL) when dropped.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// A running `fudo serve`.
pub struct FudoProcess {
    child: Child,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Metrics address.
    pub metrics: SocketAddr,
}

impl FudoProcess {
    /// Starts `fudo serve` with extra arguments and waits until it listens.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0", extra)
    }

    /// Starts `fudo serve` with its gRPC listener on `grpc` (for clusters, whose peers must
    /// know each other's address up front).
    pub fn start_at(grpc: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fudo"))
            .args([
                "serve",
                "--grpc-addr",
                grpc,
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fudo serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"listening\"") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("fudo serve did not report listening within 60 s");
        let v: serde_json::Value = serde_json::from_str(&line).expect("listening line is JSON");
        let addr = |k: &str| {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .expect("address in listening line")
        };
        Self {
            grpc: addr("grpc"),
            metrics: addr("metrics"),
            child,
        }
    }

    /// `http://` URL of the gRPC endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GETs `/metrics` (plain HTTP/1.0 over a socket).
    pub fn scrape(&self) -> String {
        let mut s = TcpStream::connect(self.metrics).expect("connect metrics");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for FudoProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.terminate(Duration::from_secs(5));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
