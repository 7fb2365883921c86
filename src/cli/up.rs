//! `fudo up`: the local demo cluster. Starts nodes in regions and AZs, Redis with Sentinel,
//! keeps every process running, prints where everything is, and stops all it started on
//! Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::cluster::{Cluster, ClusterSpec, NetworkMode, RedisMode, Topology};

/// Arguments of `fudo up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// A region and its AZs, as `name:az1,az2` (repeatable; default tokyo:tokyo-a,tokyo-c and
    /// osaka:osaka-a,osaka-b).
    #[arg(long = "region", value_name = "NAME:AZ,AZ")]
    pub regions: Vec<String>,
    /// Nodes per AZ.
    #[arg(long, default_value_t = 1)]
    pub nodes_per_az: usize,
    /// Redis deployment.
    #[arg(long, value_enum, default_value_t = RedisMode::Sentinel)]
    pub redis: RedisMode,
    /// Loopback, or one network namespace per AZ (root).
    #[arg(long, value_enum, default_value_t = NetworkMode::Loopback)]
    pub network: NetworkMode,
    /// Directory for logs and Redis files (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// A node setting, as section.key=value (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub settings: Vec<String>,
}

/// Runs `fudo up` until Ctrl-C.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("fudo-up-")
            .tempdir()
            .context("creating a directory for the cluster")?
            .keep(),
    };
    let mut spec = ClusterSpec::local(dir).context("finding the fudo binary")?;
    if !args.regions.is_empty() {
        spec.topology.regions = args
            .regions
            .iter()
            .map(|r| Topology::parse_region(r))
            .collect::<Result<_, _>>()?;
    }
    spec.topology.nodes_per_az = args.nodes_per_az;
    spec.redis = args.redis;
    spec.network = args.network;
    spec.node_settings = args.settings;
    eprintln!(
        "fudo up: starting {} nodes and redis ({:?}) in {}",
        spec.topology.nodes().len(),
        spec.redis,
        spec.dir.display()
    );
    let cluster = Cluster::start(spec).await?;
    println!("{}", serde_json::to_string_pretty(&cluster.describe())?);
    eprintln!("fudo up: cluster serving; Ctrl-C stops everything it started");
    let mut seen = 0;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let events = cluster.events().snapshot();
                for e in events.iter().skip(seen) {
                    eprintln!("fudo up: {} {:?} {}: {}", e.wall.format("%H:%M:%S%.3f"), e.kind, e.who, e.detail);
                }
                seen = events.len();
            }
            () = super::serve::shutdown_signal() => break,
        }
    }
    eprintln!("fudo up: stopping");
    cluster.stop().await;
    Ok(())
}
