//! `fudo serve`: the main job. Loads the configuration, starts the node and serves until
//! SIGINT/SIGTERM, then drains. Exits non-zero if the supervision tree gives up, so that the
//! process supervisor restarts the node.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::{
    actors::Node,
    api::server::{self, Listeners},
    config::Config,
};

/// Arguments of `fudo serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (every setting has a default).
    #[arg(long, env = "FUDO_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address (overrides server.grpc_addr).
    #[arg(long)]
    pub grpc_addr: Option<SocketAddr>,
    /// Prometheus metrics listen address (overrides server.metrics_addr).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Model repository `<root>/<name>/<version>/` (overrides models.repository; default: the
    /// bundled models).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Any setting, as section.key=value (repeatable), e.g. --set models.shards=4.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print the effective configuration (defaults, file, environment and flags merged) as
    /// TOML, with the Redis password and the link token shown as `***`, and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Runs `fudo serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut overrides = args.overrides.clone();
    if let Some(addr) = args.grpc_addr {
        overrides.push(format!("server.grpc_addr={addr}"));
    }
    if let Some(addr) = args.metrics_addr {
        overrides.push(format!("server.metrics_addr={addr}"));
    }
    if let Some(path) = &args.models {
        overrides.push(format!("models.repository={}", path.display()));
    }
    let config = Config::load(args.config.as_deref(), &overrides)?;
    if args.print_config {
        print!("{}", toml::to_string(&config.redacted())?);
        return Ok(());
    }
    super::logging::init(config.log.format, &config.log.level);
    install_panic_hook();
    super::runtime(true)?.block_on(serve(config))
}

/// Panics are part of normal operation here (a shard panics, its supervisor restarts it), so
/// they are logged as one structured line instead of the default hook's output; the default
/// hook with `RUST_BACKTRACE` set captures and symbolises a backtrace, which costs ~100 ms
/// and would dominate a restart. Set `FUDO_PANIC_BACKTRACE=1` to get backtraces back.
fn install_panic_hook() {
    if std::env::var_os("FUDO_PANIC_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), panic = %info, "panic");
    }));
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listeners = Listeners::bind(config.server.grpc_addr, config.server.metrics_addr).await?;
    let grpc = listeners.grpc_addr()?;
    let metrics = listeners.metrics_addr()?;
    let node = Node::start(config).await.context("starting the node")?;
    tracing::info!(%grpc, %metrics, models = ?node.model_names(), node = %node.config.server.node_name, "fudo serving");
    // One machine-readable line so scripts and tests can find the ports (port 0 binds any).
    println!(
        "{}",
        serde_json::json!({"event": "listening", "grpc": grpc.to_string(), "metrics": metrics.to_string()})
    );
    let watched = node.clone();
    let result = tokio::select! {
        r = server::serve(node.clone(), listeners, shutdown_signal()) => r.map_err(anyhow::Error::from),
        () = watched.wait_stopped() => Err(anyhow::anyhow!("supervision tree gave up (restart intensity exceeded); exiting so the process supervisor restarts the node")),
    };
    node.shutdown().await;
    tracing::info!("fudo stopped");
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
