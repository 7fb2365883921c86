//! A real `redis-server` for integration tests, on a port of its own, killed when dropped.

#![allow(dead_code)]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The `redis-server` binary on PATH. Without one the test is skipped with a notice, unless
/// `FUDO_REQUIRE_REDIS=1` (set by the test command and CI), which makes it fail.
pub fn redis_server() -> Option<PathBuf> {
    redis_binary("redis-server")
}

/// The binary `name` (`redis-server`, `redis-sentinel`) on PATH, with the skip-or-fail rule of
/// [`redis_server`].
pub fn redis_binary(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("FUDO_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("FUDO_REQUIRE_REDIS=1 but `{name}` is not on PATH; install redis-server");
        }
        eprintln!("SKIPPED: `{name}` is not on PATH (set FUDO_REQUIRE_REDIS=1 to fail)");
    }
    found
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` child process, killed on drop.
pub struct Redis {
    child: Child,
}

impl Redis {
    /// Starts a throw-away Redis (no persistence) on `port` and waits until it listens.
    pub fn start(bin: &Path, port: u16, dir: &Path) -> Self {
        Self::start_with(bin, port, dir, &[])
    }

    /// Like [`Redis::start`], with extra command-line arguments (e.g. `--replicaof`).
    pub fn start_with(bin: &Path, port: u16, dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(bin, &["--port", &port.to_string()], port, dir, extra)
    }

    /// A throw-away Redis that speaks only TLS, on `tls_port` (the plain port is off); `extra`
    /// holds the TLS files and any other arguments (`--tls-cert-file`, `--tls-key-file`,
    /// `--tls-ca-cert-file`, `--tls-auth-clients no`, `--requirepass`...). Needs a
    /// `redis-server` built with TLS (Debian's is).
    pub fn start_tls(bin: &Path, tls_port: u16, dir: &Path, extra: &[&str]) -> Self {
        let ports = ["--port", "0", "--tls-port", &tls_port.to_string()];
        Self::spawn(bin, &ports, tls_port, dir, extra)
    }

    /// Starts `bin` with `ports` (the listening arguments) and waits until `port` accepts TCP
    /// connections.
    fn spawn(bin: &Path, ports: &[&str], port: u16, dir: &Path, extra: &[&str]) -> Self {
        let child = Command::new(bin)
            .args(ports)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let redis = Redis { child };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        redis
    }

    /// Kills it now.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
