//! `fudo chaos`: run a chaos scenario (`run`) or only check its file (`check`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::chaos::{self, RunOptions, Verdict};

/// Arguments of `fudo chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ChaosCommand,
}

/// `fudo chaos` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Run a scenario and write report.json, report.md, timeline.svg and history.jsonl.
    /// Exits 0 only when every hypothesis held.
    Run {
        /// The scenario file, e.g. chaos/node-kill.toml.
        scenario: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Run the short form (the file's `[short]` section), as CI does.
        #[arg(long)]
        short: bool,
    },
    /// Check scenario files without running anything.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Check the short forms too.
        #[arg(long)]
        short: bool,
    },
}

/// Runs `fudo chaos`; `Ok(false)` when a run's verdict is fail.
pub async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    match args.command {
        ChaosCommand::Check { scenarios, short } => {
            for path in scenarios {
                let s = chaos::load_scenario(&path, false)?;
                if short {
                    chaos::load_scenario(&path, true)?;
                }
                println!(
                    "{}: ok ({}: {} fault(s), {} hypothesis(es))",
                    path.display(),
                    s.name,
                    s.faults.len(),
                    s.hypotheses.len()
                );
            }
            Ok(true)
        }
        ChaosCommand::Run {
            scenario,
            out,
            short,
        } => {
            let opts = RunOptions {
                scenario,
                short,
                out: out.clone(),
                fudo_exe: std::env::current_exe().context("finding the fudo binary")?,
            };
            let report = chaos::run(&opts).await?;
            for h in &report.hypotheses {
                eprintln!(
                    "  [{}] {}: expected {}, observed {}",
                    if h.held { "held" } else { "FAILED" },
                    h.name,
                    h.expected,
                    h.observed
                );
            }
            let pass = report.verdict == Verdict::Pass;
            println!(
                "{}",
                serde_json::json!({
                    "scenario": report.scenario,
                    "verdict": report.verdict,
                    "requests": report.requests,
                    "p99_ms": report.latency_ms.p99,
                    "throughput_ratio_during_fault": report.throughput_ratio_during_fault,
                    "recovery_s": report.recovery_s,
                    "report": out.join("report.json").display().to_string(),
                })
            );
            Ok(pass)
        }
    }
}
