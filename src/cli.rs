//! The `fudo` command line. `main.rs` only parses and hands over to [`run`]; each subcommand
//! lives in its own file.

pub mod chaos;
pub mod ctl;
pub mod deploy;
pub mod logging;
pub mod models;
pub mod serve;
pub mod up;

use clap::{Parser, Subcommand};

/// fudo: a high-availability inference runtime for deep-RL trading policies.
#[derive(Debug, Parser)]
#[command(name = "fudo", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve models over gRPC (with no arguments: the bundled models on 127.0.0.1:8001).
    Serve(serve::ServeArgs),
    /// Operate a running node through its admin API.
    Ctl(ctl::CtlArgs),
    /// Load-generate against a node and print JSON results.
    Bench(crate::bench::BenchArgs),
    /// Start a local cluster: nodes in regions and AZs, Redis primary + replica + Sentinel.
    Up(up::UpArgs),
    /// Run chaos scenarios (fault injection under load) and write their reports.
    Chaos(chaos::ChaosArgs),
    /// List, show and verify the versions in a model repository.
    Models(models::ModelsArgs),
    /// Deploy a model version across the cluster (blue-green, canary, rolling or shadow).
    Deploy(deploy::DeployArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Ctl(args) => runtime(false)?.block_on(ctl::run(args)),
        Command::Bench(args) => {
            logging::init_stderr("warn");
            // `bench::run` prints the JSON report itself (and writes `--out`).
            runtime(true)?.block_on(crate::bench::run(args))?;
            Ok(())
        }
        Command::Up(args) => {
            logging::init_stderr("info");
            runtime(true)?.block_on(up::run(args))
        }
        Command::Models(args) => models::run(args),
        Command::Deploy(args) => {
            logging::init_stderr("warn");
            runtime(false)?.block_on(deploy::run(args))
        }
        Command::Chaos(args) => {
            logging::init_stderr("warn");
            if runtime(true)?.block_on(chaos::run(args))? {
                Ok(())
            } else {
                anyhow::bail!("chaos run failed: a hypothesis did not hold (see the report)")
            }
        }
    }
}

/// A tokio runtime: multi-threaded for servers and load generators, single-threaded for
/// one-shot commands.
pub fn runtime(multi_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    Ok(builder.enable_all().build()?)
}
