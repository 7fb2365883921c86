//! `fudo ctl`: operate a running node through `fudo.v1.Admin`.

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::api::proto::fudo::v1::{
    ActorNode, DrainRequest, PanicActorRequest, SlowShardRequest, TreeRequest,
    admin_client::AdminClient,
};

/// Arguments of `fudo ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The node's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8001", env = "FUDO_TARGET")]
    pub target: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `fudo ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Print the live supervision tree.
    Tree,
    /// Stop taking new requests (health turns NOT_SERVING).
    Drain,
    /// Fault injection: panic an actor (needs chaos.enabled on the node).
    Panic {
        /// Actor name as `tree` shows it, e.g. ppo_mlp/shard-0.
        name: String,
        /// Shards: panic inside the next forward pass, with its batch in flight.
        #[arg(long)]
        in_forward: bool,
    },
    /// Fault injection: add latency to every batch of a shard (0 clears).
    Slow {
        /// Shard name.
        name: String,
        /// Milliseconds per batch.
        delay_ms: u64,
    },
}

/// Runs `fudo ctl`.
pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::connect(args.target.clone())
        .await
        .with_context(|| format!("connecting to {}", args.target))?;
    match args.command {
        CtlCommand::Tree => {
            let tree = client.tree(TreeRequest {}).await?.into_inner();
            let root = tree.root.unwrap_or_default();
            if args.json {
                let doc = serde_json::json!({
                    "draining": tree.draining,
                    "shard_restarts": {
                        "count": tree.restart_count,
                        "p50_us": tree.restart_p50_us,
                        "p99_us": tree.restart_p99_us,
                        "max_us": tree.restart_max_us,
                    },
                    "root": tree_json(&root),
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!(
                    "draining: {}   shard restarts: {} (p50 {} µs, p99 {} µs, max {} µs)",
                    tree.draining,
                    tree.restart_count,
                    tree.restart_p50_us,
                    tree.restart_p99_us,
                    tree.restart_max_us
                );
                print_tree(&root, "", true, true);
            }
        }
        CtlCommand::Drain => {
            let r = client.drain(DrainRequest {}).await?.into_inner();
            println!(
                "draining; {} requests still queued or in flight",
                r.in_flight
            );
        }
        CtlCommand::Panic { name, in_forward } => {
            let r = client
                .panic_actor(PanicActorRequest {
                    name: name.clone(),
                    in_forward,
                })
                .await?
                .into_inner();
            println!("panicked {name} (generation {})", r.generation);
        }
        CtlCommand::Slow { name, delay_ms } => {
            client
                .slow_shard(SlowShardRequest {
                    name: name.clone(),
                    delay_ms,
                })
                .await?;
            println!("{name}: {delay_ms} ms added per batch");
        }
    }
    Ok(())
}

fn tree_json(node: &ActorNode) -> serde_json::Value {
    serde_json::json!({
        "name": node.name,
        "kind": node.kind,
        "status": node.status,
        "generation": node.generation,
        "restarts": node.restarts,
        "queue_depth": node.queue_depth,
        "children": node.children.iter().map(tree_json).collect::<Vec<_>>(),
    })
}

fn print_tree(node: &ActorNode, prefix: &str, last: bool, root: bool) {
    let branch = if root {
        ""
    } else if last {
        "└── "
    } else {
        "├── "
    };
    let queue = node
        .queue_depth
        .map(|q| format!("  queue={q}"))
        .unwrap_or_default();
    println!(
        "{prefix}{branch}{}  [{}] {}  gen={} restarts={}{queue}",
        node.name, node.kind, node.status, node.generation, node.restarts
    );
    let child_prefix = if root {
        String::new()
    } else {
        format!("{prefix}{}", if last { "    " } else { "│   " })
    };
    for (i, child) in node.children.iter().enumerate() {
        print_tree(child, &child_prefix, i + 1 == node.children.len(), false);
    }
}
