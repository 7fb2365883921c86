//! `fudo ctl`: operate a running node through `fudo.v1.Admin` (and read its cluster view
//! through `fudo.v1.Cluster`).

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::api::proto::fudo::v1::{
    ActorNode, DeploysRequest, DrainRequest, MembersRequest, MembersResponse, NodeIdentity,
    NodeLoad, PanicActorRequest, RollbackRequest, SlowShardRequest, TreeRequest,
    admin_client::AdminClient, cluster_client::ClusterClient,
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
    /// Print this node's view of the cluster: members, regions, link RTT, detector phi,
    /// health, and how many sessions each node owns.
    Cluster,
    /// Stop taking new requests (health turns NOT_SERVING).
    Drain,
    /// Per node of the cluster: which version of each model serves (and which are loaded,
    /// canary, shadow), then this node's deploy history with outcomes and reasons.
    Deploys,
    /// Roll back the running (or retiring) deploy of a model on this node.
    Rollback {
        /// Model name.
        model: String,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
    },
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
    if let CtlCommand::Deploys = args.command {
        return print_deploys(&args.target, args.json).await;
    }
    if let CtlCommand::Cluster = args.command {
        let mut client = ClusterClient::connect(args.target.clone())
            .await
            .with_context(|| format!("connecting to {}", args.target))?;
        let view = client.members(MembersRequest {}).await?.into_inner();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&cluster_json(&view))?);
        } else {
            print_cluster(&view);
        }
        return Ok(());
    }
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
        CtlCommand::Cluster | CtlCommand::Deploys => unreachable!("handled above"),
        CtlCommand::Rollback { model, reason } => {
            let r = client
                .rollback(RollbackRequest {
                    model: model.clone(),
                    reason,
                })
                .await?
                .into_inner();
            println!("rolling {model} back to version {}", r.rolled_back_to);
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

fn identity_json(id: Option<&NodeIdentity>) -> serde_json::Value {
    id.map_or(serde_json::Value::Null, |i| {
        serde_json::json!({
            "node": i.node, "region": i.region, "az": i.az, "url": i.url,
            "incarnation": i.incarnation,
        })
    })
}

fn load_json(load: Option<&NodeLoad>) -> serde_json::Value {
    load.map_or(serde_json::Value::Null, |l| {
        serde_json::json!({
            "serving": l.serving,
            "reason": l.reason,
            "draining": l.draining,
            "sessions_owned": l.sessions_owned,
            "fenced_writes": l.fenced_writes,
            "store_degraded": l.store_degraded,
            "models": l.models.iter().map(|m| serde_json::json!({
                "name": m.name, "version": m.version, "live_shards": m.live_shards,
                "total_shards": m.total_shards, "queue_depth": m.queue_depth,
                "free_slots": m.free_slots,
            })).collect::<Vec<_>>(),
        })
    })
}

/// The `Members` answer as JSON (for `fudo ctl --json cluster` and the chaos runner).
pub fn cluster_json(view: &MembersResponse) -> serde_json::Value {
    serde_json::json!({
        "self": identity_json(view.self_.as_ref()),
        "load": load_json(view.load.as_ref()),
        "spilled_requests": view.spilled_requests,
        "members": view.members.iter().map(|m| serde_json::json!({
            "url": m.url,
            "identity": identity_json(m.identity.as_ref()),
            "state": m.state,
            "phi": m.phi,
            "rtt_ms": m.rtt_ms,
            "last_heard_ms": m.last_heard_ms,
            "state_ms": m.state_ms,
            "connects": m.connects,
            "deaths": m.deaths,
            "load": load_json(m.load.as_ref()),
        })).collect::<Vec<_>>(),
    })
}

fn print_cluster(view: &MembersResponse) {
    let me = view.self_.clone().unwrap_or_default();
    let load = view.load.clone().unwrap_or_default();
    println!(
        "{} ({} / {})  {}  sessions owned: {}  fenced writes: {}  spilled: {}",
        me.node,
        me.region,
        me.az,
        serving_text(&load),
        load.sessions_owned,
        load.fenced_writes,
        view.spilled_requests
    );
    println!(
        "{:<14} {:<16} {:<18} {:<8} {:>7} {:>8} {:>9} {:>8} {:>6}  HEALTH",
        "NODE", "REGION", "AZ", "STATE", "PHI", "RTT ms", "HEARD ms", "SESSIONS", "DEATHS"
    );
    for m in &view.members {
        let id = m.identity.clone().unwrap_or_default();
        let load = m.load.clone().unwrap_or_default();
        let node = if id.node.is_empty() {
            m.url.clone()
        } else {
            id.node
        };
        println!(
            "{:<14} {:<16} {:<18} {:<8} {:>7.2} {:>8.2} {:>9} {:>8} {:>6}  {}",
            node,
            id.region,
            id.az,
            m.state,
            m.phi,
            m.rtt_ms,
            m.last_heard_ms,
            load.sessions_owned,
            m.deaths,
            serving_text(&load)
        );
    }
}

fn serving_text(load: &NodeLoad) -> String {
    if load.serving {
        "SERVING".to_owned()
    } else {
        format!("NOT_SERVING ({})", load.reason)
    }
}

/// `fudo ctl deploys`: every node's serving versions, then this node's deploy history.
async fn print_deploys(target: &str, json: bool) -> anyhow::Result<()> {
    use crate::deploy::cluster;
    let nodes = cluster::discover(&[target.to_owned()]).await?;
    let mut per_node = Vec::new();
    for node in &nodes {
        let answer = match cluster::admin(&node.url).await {
            Ok(mut client) => cluster::deploys_of(&mut client).await,
            Err(_) => None,
        };
        per_node.push((node, answer));
    }
    let mut client = AdminClient::connect(target.to_owned())
        .await
        .with_context(|| format!("connecting to {target}"))?;
    let history = client.deploys(DeploysRequest {}).await?.into_inner();
    if json {
        let doc = serde_json::json!({
            "nodes": per_node.iter().map(|(n, a)| serde_json::json!({
                "node": n.node, "region": n.region, "az": n.az, "url": n.url,
                "reachable": a.is_some(),
                "serving": a.as_ref().map(|a| a.serving.iter().map(|s| serde_json::json!({
                    "model": s.model, "live": s.live, "loaded": s.loaded,
                    "canary": s.canary, "canary_pct": s.canary_pct, "shadow": s.shadow,
                })).collect::<Vec<_>>()),
            })).collect::<Vec<_>>(),
            "deploys": history.deploys.iter().map(|d| serde_json::json!({
                "id": d.id, "model": d.model, "from": d.from_version, "to": d.to_version,
                "strategy": d.strategy, "phase": d.phase, "outcome": d.outcome,
                "reason": d.reason, "started_at": d.started_at, "finished_at": d.finished_at,
                "baseline_p99_ms": d.baseline_p99_ms,
                "green": d.green.map(|g| serde_json::json!({
                    "requests": g.requests, "errors": g.errors, "non_finite": g.non_finite,
                    "out_of_range": g.out_of_range, "p99_ms": g.p99_ms, "compared": g.compared,
                    "agreement": g.agreement, "divergence": g.divergence,
                })),
                "events": d.events.iter().map(|e| serde_json::json!({"at_s": e.at_s, "what": e.what})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<8} {:<8} {:<14} {:<5} {:<12} {:<10} shadow",
        "node", "region", "az", "model", "live", "loaded", "canary"
    );
    for (node, answer) in &per_node {
        match answer {
            None => println!(
                "{:<14} {:<8} {:<8} unreachable",
                node.node, node.region, node.az
            ),
            Some(a) => {
                for s in &a.serving {
                    let canary = if s.canary.is_empty() {
                        "-".to_owned()
                    } else {
                        format!("{}@{:.0}%", s.canary, s.canary_pct)
                    };
                    println!(
                        "{:<14} {:<8} {:<8} {:<14} {:<5} {:<12} {:<10} {}",
                        node.node,
                        node.region,
                        node.az,
                        s.model,
                        s.live,
                        s.loaded.join(","),
                        canary,
                        if s.shadow.is_empty() { "-" } else { &s.shadow }
                    );
                }
            }
        }
    }
    println!("\ndeploys on {}:", history.node);
    for d in &history.deploys {
        println!(
            "  {}  {} {} → {} ({})  {} / {}  {}",
            d.started_at,
            d.model,
            d.from_version,
            d.to_version,
            d.strategy,
            d.phase,
            d.outcome,
            d.reason
        );
    }
    Ok(())
}
