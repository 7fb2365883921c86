//! `fudo bench`: a load generator speaking the Open Inference Protocol v2 over gRPC.
//!
//! Three ways to load a server:
//! - **closed loop** (`--mode closed`): `--concurrency` workers, each sending its next request
//!   as soon as the previous one was answered; latency is measured from the actual send.
//! - **open loop** (`--mode open --rate R`): request `n` is scheduled at `n / R` s whatever the
//!   answers, and its latency is measured from the *scheduled* time, so a stalled server shows
//!   up in the percentiles instead of silently slowing the generator (no coordinated omission).
//! - **recurrent sessions** (`--sessions N`): `N` sessions each stepping a Triton sequence
//!   (`sequence_id`, `sequence_start`, `sequence_end`, fudo's `sequence_seq`), one step at a
//!   time, retrying a failed step with the same `sequence_seq`.
//!
//! Requests go through the gateway client library ([`crate::client::FudoClient`]) over
//! `--connections` HTTP/2 connections to each of the comma-separated `--target`s; by default
//! with one attempt per request (a raw measurement), or with `--retries`, `--attempt-timeout-ms`
//! and `--hedge-percentile` to measure what a gateway using the library sees. Requests sent during
//! `--warmup` are not measured; the run stops issuing after `--warmup + --duration` and waits at
//! most the per-request deadline for the stragglers. [`run`] prints a progress line on stderr
//! every second and the [`BenchReport`] as pretty JSON on stdout.

mod driver;
pub mod request;
mod stats;

#[cfg(test)]
mod fake_server_tests;

use std::{
    io::IsTerminal as _,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use serde::Serialize;
use tonic::transport::Endpoint;

use crate::client::{self, ClientConfig, FudoClient, HedgeConfig};

pub use self::stats::{LatencySummary, RequestCounts, TimelineEntry};
use self::{driver::Shared, request::ObsPool, stats::Recorder};

/// How requests are issued.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Each worker sends its next request when the previous one was answered.
    Closed,
    /// Requests are sent at a fixed rate, whatever the answers.
    Open,
}

/// Options of `fudo bench`.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct BenchArgs {
    /// Server address (gRPC, plaintext HTTP/2), or several separated by commas; `http://` is
    /// assumed when no scheme is given.
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    pub target: String,
    /// Model to call.
    #[arg(long, default_value = "ppo_mlp")]
    pub model: String,
    /// Rows (observations) per request.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Features per observation.
    #[arg(long, default_value_t = 32)]
    pub obs_dim: usize,
    /// Closed loop (fixed concurrency) or open loop (fixed rate).
    #[arg(long, value_enum, default_value_t = LoadMode::Closed)]
    pub mode: LoadMode,
    /// Closed loop: requests in flight (workers).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Open loop: requests per second (required with `--mode open`).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured seconds (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// If > 0: recurrent mode, with this many concurrent sessions stepping sequentially
    /// (closed loop, `--batch 1`).
    #[arg(long, default_value_t = 0)]
    pub sessions: usize,
    /// Per-request deadline in milliseconds (also sent as `grpc-timeout`).
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// HTTP/2 connections to each target (the client spreads calls by fewest in flight).
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Retries on another connection or target for retryable failures, within the deadline.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Limit of one attempt in milliseconds (0: the whole deadline).
    #[arg(long, default_value_t = 0)]
    pub attempt_timeout_ms: u64,
    /// Hedge a stateless call that has not answered by this latency percentile (0 < p <= 1).
    #[arg(long)]
    pub hedge_percentile: Option<f64>,
    /// Open loop: most requests in flight before scheduled ones fail as `client_overload`
    /// (0: 2 × rate × timeout, at least 1024).
    #[arg(long, default_value_t = 0)]
    pub max_outstanding: usize,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of the pseudo-random observations.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// The result of a run, printed as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The options the run used.
    pub config: BenchArgs,
    /// Length of the measurement window, in seconds.
    pub duration_s: f64,
    /// Requests sent in the window and their outcomes.
    pub requests: RequestCounts,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Successful rows (observations) per second: `throughput_rps × batch`.
    pub inferences_per_s: f64,
    /// Latency percentiles of the successful requests.
    pub latency_ms: LatencySummary,
    /// Failure reason (gRPC code name such as `UNAVAILABLE`, or `client_overload`,
    /// `bad_response`) to count.
    pub errors_by_status: std::collections::BTreeMap<String, u64>,
    /// Per-second breakdown, by send (scheduled) time.
    pub timeline: Vec<TimelineEntry>,
}

impl BenchArgs {
    fn validate(&self) -> Result<()> {
        ensure!(self.batch >= 1, "--batch must be at least 1");
        ensure!(self.obs_dim >= 1, "--obs-dim must be at least 1");
        ensure!(
            self.duration.is_finite() && self.duration > 0.0 && self.duration <= 86_400.0,
            "--duration must be in (0, 86400] seconds"
        );
        ensure!(
            self.warmup.is_finite() && self.warmup >= 0.0 && self.warmup <= 3_600.0,
            "--warmup must be in [0, 3600] seconds"
        );
        ensure!(self.timeout_ms >= 1, "--timeout-ms must be at least 1");
        ensure!(
            (1..=256).contains(&self.connections),
            "--connections must be in [1, 256]"
        );
        if self.sessions > 0 {
            ensure!(
                self.mode == LoadMode::Closed,
                "--sessions steps each session sequentially; it needs --mode closed"
            );
            ensure!(self.batch == 1, "--sessions needs --batch 1");
            ensure!(
                self.sessions <= 1 << 20,
                "--sessions must be at most 1048576"
            );
        } else {
            match self.mode {
                LoadMode::Closed => ensure!(
                    (1..=100_000).contains(&self.concurrency),
                    "--concurrency must be in [1, 100000]"
                ),
                LoadMode::Open => match self.rate {
                    Some(r) if r.is_finite() && r > 0.0 && r <= 10_000_000.0 => {}
                    Some(_) => bail!("--rate must be in (0, 10000000] requests/s"),
                    None => bail!("--mode open needs --rate"),
                },
            }
        }
        Ok(())
    }

    fn max_outstanding(&self, rate: f64) -> usize {
        if self.max_outstanding > 0 {
            return self.max_outstanding;
        }
        #[allow(clippy::cast_precision_loss)]
        let timeout_s = self.timeout_ms as f64 / 1000.0;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let auto = (2.0 * rate * timeout_s).ceil().min(1_000_000.0) as usize;
        auto.max(1024)
    }

    fn target_uris(&self) -> Vec<String> {
        self.target
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                if t.contains("://") {
                    t.to_owned()
                } else {
                    format!("http://{t}")
                }
            })
            .collect()
    }

    fn client_config(&self) -> Result<ClientConfig> {
        let targets = self.target_uris();
        ensure!(!targets.is_empty(), "--target needs at least one address");
        let mut endpoints = Vec::new();
        for url in &targets {
            Endpoint::from_shared(url.clone())
                .with_context(|| format!("invalid --target {url:?}"))?;
            for _ in 0..self.connections {
                endpoints.push(client::Endpoint {
                    url: url.clone(),
                    region: String::new(),
                    az: String::new(),
                });
            }
        }
        let mut config = ClientConfig::new(endpoints);
        config.deadline = Duration::from_millis(self.timeout_ms);
        config.max_attempts = self.retries.saturating_add(1);
        config.attempt_timeout =
            (self.attempt_timeout_ms > 0).then(|| Duration::from_millis(self.attempt_timeout_ms));
        config.hedge = self.hedge_percentile.map(|percentile| HedgeConfig {
            percentile,
            min_delay: Duration::from_millis(1),
            budget_ratio: 0.1,
        });
        Ok(config)
    }
}

/// Runs the benchmark, prints the report as pretty JSON on stdout (and writes it to `--out`),
/// and returns it. A progress line goes to stderr every second unless `--quiet`.
///
/// # Errors
/// Invalid options, or the report could not be written to `--out`. Failing requests are not
/// errors: they are counted in the report.
pub async fn run(args: BenchArgs) -> Result<BenchReport> {
    let report = measure(&args).await?;
    let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
    println!("{json}");
    if let Some(path) = &args.out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(report)
}

/// Runs the benchmark and returns the report, printing nothing but the progress line.
///
/// # Errors
/// Invalid options (including an unparsable `--target`).
pub async fn measure(args: &BenchArgs) -> Result<BenchReport> {
    args.validate()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);

    // Every endpoint is its own lazily connected HTTP/2 connection, so a server that is down
    // (or restarting) shows up as UNAVAILABLE answers, not as a failed run.
    let client = FudoClient::connect(args.client_config()?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let shared = Arc::new(Shared {
        client,
        recorder: Mutex::new(Recorder::new(warmup, duration)?),
        t0: Instant::now(),
        stop_at: warmup + duration,
        timeout,
        model: args.model.clone(),
        pool: ObsPool::new(args.seed, args.batch, args.obs_dim),
        next: AtomicU64::new(0),
    });

    let progress = (!args.quiet).then(|| {
        let shared = Arc::clone(&shared);
        tokio::spawn(progress_loop(shared, warmup, args.duration))
    });

    if args.sessions > 0 {
        // Non-zero correlation ids, unlikely to collide with another bench run's.
        let base_id = (i64::from(rand::random::<u32>() >> 1) << 21) | 1;
        driver::session_loop(Arc::clone(&shared), args.sessions, base_id).await;
    } else {
        match (args.mode, args.rate) {
            (LoadMode::Open, Some(rate)) => {
                driver::open_loop(Arc::clone(&shared), rate, args.max_outstanding(rate)).await;
            }
            _ => driver::closed_loop(Arc::clone(&shared), args.concurrency).await,
        }
    }

    if let Some(handle) = progress {
        handle.abort();
        let _ = handle.await;
        print_progress(&shared, warmup, args.duration, true);
    }

    let summary = shared
        .recorder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .summary();
    #[allow(clippy::cast_precision_loss)]
    let throughput_rps = summary.requests.ok as f64 / args.duration;
    #[allow(clippy::cast_precision_loss)]
    let inferences_per_s = throughput_rps * args.batch as f64;
    Ok(BenchReport {
        config: args.clone(),
        duration_s: args.duration,
        requests: summary.requests,
        throughput_rps,
        inferences_per_s,
        latency_ms: summary.latency_ms,
        errors_by_status: summary.errors_by_status,
        timeline: summary.timeline,
    })
}

async fn progress_loop(shared: Arc<Shared>, warmup: Duration, duration_s: f64) {
    let start = tokio::time::Instant::from_std(shared.t0) + Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(start, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        print_progress(&shared, warmup, duration_s, false);
    }
}

fn print_progress(shared: &Shared, warmup: Duration, duration_s: f64, last: bool) {
    let p = shared
        .recorder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .progress();
    let elapsed = shared.t0.elapsed();
    let phase = match elapsed.checked_sub(warmup) {
        None => format!(
            "warmup {:.0}/{:.0} s",
            elapsed.as_secs_f64(),
            warmup.as_secs_f64()
        ),
        Some(measured) => format!(
            "{:.0}/{duration_s:.0} s",
            measured.as_secs_f64().min(duration_s).floor()
        ),
    };
    let line = format!(
        "[bench] {phase}  sent {}  ok {}  err {}  p99 {:.2} ms",
        p.counts.sent, p.counts.ok, p.counts.failed, p.p99_ms
    );
    if std::io::stderr().is_terminal() {
        // Overwrite in place; clear the rest of the line.
        eprint!("\r{line}\x1b[K{}", if last { "\n" } else { "" });
    } else {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).expect("parse");
        assert_eq!(a.target, "http://127.0.0.1:8001");
        assert_eq!(a.model, "ppo_mlp");
        assert_eq!(a.batch, 1);
        assert_eq!(a.mode, LoadMode::Closed);
        assert_eq!(a.concurrency, 16);
        assert_eq!(a.rate, None);
        assert_eq!(a.duration, 10.0);
        assert_eq!(a.warmup, 1.0);
        assert_eq!(a.sessions, 0);
        assert_eq!(a.timeout_ms, 1000);
        assert_eq!(a.connections, 2);
        assert_eq!(a.out, None);
        a.validate().expect("defaults are valid");
    }

    #[test]
    fn flags_parse_and_validate() {
        let a = parse(&[
            "--mode",
            "open",
            "--rate",
            "5000",
            "--timeout-ms",
            "250",
            "--out",
            "r.json",
            "--seed",
            "7",
        ])
        .expect("parse");
        assert_eq!(a.mode, LoadMode::Open);
        a.validate().expect("valid");
        assert_eq!(a.max_outstanding(5000.0), 2500);
        assert_eq!(a.max_outstanding(10.0), 1024);

        assert!(
            parse(&["--mode", "open"])
                .expect("parse")
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--sessions", "4", "--batch", "2"])
                .expect("parse")
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--sessions", "4", "--mode", "open", "--rate", "1"])
                .expect("parse")
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--duration", "0"])
                .expect("parse")
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--connections", "0"])
                .expect("parse")
                .validate()
                .is_err()
        );
        assert!(parse(&["--mode", "sideways"]).is_err());
    }

    #[test]
    fn target_without_scheme() {
        let a = parse(&["--target", "10.0.0.1:8001"]).expect("parse");
        assert_eq!(a.target_uris(), ["http://10.0.0.1:8001"]);
        let a = parse(&["--target", "a:1, http://b:2"]).expect("parse");
        assert_eq!(a.target_uris(), ["http://a:1", "http://b:2"]);
    }
}
