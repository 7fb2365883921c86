//! Redis for a local cluster, as production runs it: a primary, a replica and three Sentinels
//! (quorum 2), each a real Debian `redis-server` / `redis-sentinel` process kept running by a
//! [`SupervisedProcess`]. Nodes reach it through a `redis+sentinel://` URL, so a primary loss
//! is survived the same way as on ElastiCache: Sentinel promotes the replica and the nodes
//! re-resolve the primary.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{
    ClusterError, ClusterEvents, EventKind,
    supervised_process::{ProcessSpec, SupervisedProcess},
};

/// The Sentinel master name nodes ask for.
pub const MASTER_NAME: &str = "fudo";
/// Sentinel's `down-after-milliseconds`: how long a silent primary takes to be declared down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// Which Redis a cluster gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    /// No Redis: nodes keep sessions in memory.
    None,
    /// One `redis-server`.
    Single,
    /// Primary + replica + three Sentinels.
    #[default]
    Sentinel,
}

/// The Redis processes of a cluster.
#[derive(Debug)]
pub struct RedisHa {
    mode: RedisMode,
    host: IpAddr,
    data: Vec<(SupervisedProcess, u16)>,
    sentinels: Vec<(SupervisedProcess, u16)>,
}

fn find_binary(name: &str) -> Result<PathBuf, ClusterError> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| ClusterError::Spawn {
            name: name.into(),
            reason: format!(
                "`{name}` is not on PATH (Debian: apt-get install -y redis-server redis-sentinel)"
            ),
        })
}

impl RedisHa {
    /// Starts the processes for `mode` on `host` (which every node must be able to reach),
    /// listening on `binds`, with files under `dir`, and waits until they are ready (replica in
    /// sync, Sentinels agreeing on a quorum). `None` for [`RedisMode::None`].
    ///
    /// # Errors
    ///
    /// [`ClusterError::Spawn`] when a binary is missing, [`ClusterError::NotReady`] on timeout.
    pub async fn start(
        mode: RedisMode,
        host: IpAddr,
        binds: &[IpAddr],
        dir: &Path,
        events: &ClusterEvents,
        restart_delay: Duration,
    ) -> Result<Option<Self>, ClusterError> {
        if mode == RedisMode::None {
            return Ok(None);
        }
        let server = find_binary("redis-server")?;
        let binds: Vec<String> = binds.iter().map(ToString::to_string).collect();
        let bind = binds.join(" ");
        let mut data = Vec::new();
        let roles: &[&str] = if mode == RedisMode::Single {
            &["redis-a"]
        } else {
            &["redis-a", "redis-b"]
        };
        let ports = super::free_ports(roles.len() + 3)?;
        let primary_port = ports[0];
        for (i, role) in roles.iter().enumerate() {
            let port = ports[i];
            let mut argv = vec![
                server.display().to_string(),
                "--port".into(),
                port.to_string(),
                "--bind".into(),
            ];
            argv.extend(binds.iter().cloned());
            argv.extend(
                [
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                    "--dir",
                ]
                .map(String::from),
            );
            argv.push(dir.display().to_string());
            argv.extend(["--replica-announce-ip".into(), host.to_string()]);
            argv.extend(["--dbfilename".into(), format!("{role}.rdb")]);
            if i > 0 {
                argv.extend([
                    "--replicaof".into(),
                    host.to_string(),
                    primary_port.to_string(),
                ]);
            }
            let spec = ProcessSpec {
                name: (*role).into(),
                argv,
                log: dir.join(format!("{role}.log")),
                restart_delay,
            };
            data.push((SupervisedProcess::start(spec, events.clone())?, port));
        }
        let mut sentinels = Vec::new();
        if mode == RedisMode::Sentinel {
            let sentinel = find_binary("redis-sentinel")?;
            for (k, &port) in ports[roles.len()..].iter().enumerate() {
                let name = format!("sentinel-{}", k + 1);
                let conf = dir.join(format!("{name}.conf"));
                let text = format!(
                    "port {port}\nbind {bind}\nprotected-mode no\ndir {dir}\n\
                     sentinel announce-ip {host}\n\
                     sentinel monitor {MASTER_NAME} {host} {primary_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir = dir.display(),
                );
                std::fs::write(&conf, text).map_err(|e| ClusterError::Spawn {
                    name: name.clone(),
                    reason: format!("writing {}: {e}", conf.display()),
                })?;
                let spec = ProcessSpec {
                    name,
                    argv: vec![sentinel.display().to_string(), conf.display().to_string()],
                    log: dir.join(format!("sentinel-{}.log", k + 1)),
                    restart_delay,
                };
                sentinels.push((SupervisedProcess::start(spec, events.clone())?, port));
            }
        }
        let ha = Self {
            mode,
            host,
            data,
            sentinels,
        };
        ha.wait_ready(Duration::from_secs(20)).await?;
        events.push(EventKind::Ready, "redis", ha.url());
        Ok(Some(ha))
    }

    /// The URL nodes use: `redis+sentinel://h:p1,h:p2,h:p3/fudo` or `redis://h:p`.
    #[must_use]
    pub fn url(&self) -> String {
        if self.sentinels.is_empty() {
            let port = self.data.first().map_or(0, |(_, p)| *p);
            format!("redis://{}:{port}", self.host)
        } else {
            let hosts: Vec<String> = self
                .sentinels
                .iter()
                .map(|(_, p)| format!("{}:{p}", self.host))
                .collect();
            format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
        }
    }

    /// The port of the current primary: Sentinel's answer, or the only server.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Redis`] if no Sentinel answers.
    pub async fn primary_port(&self) -> Result<u16, ClusterError> {
        if self.sentinels.is_empty() {
            return Ok(self.data.first().map_or(0, |(_, p)| *p));
        }
        let mut last = String::from("no sentinel");
        for (_, port) in &self.sentinels {
            let reply: Result<Vec<String>, String> = self
                .query(
                    *port,
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(MASTER_NAME),
                )
                .await;
            match reply {
                Ok(addr) => {
                    if let Some(p) = addr.get(1).and_then(|p| p.parse().ok()) {
                        return Ok(p);
                    }
                    last = format!("unexpected reply {addr:?}");
                }
                Err(e) => last = e,
            }
        }
        Err(ClusterError::Redis(format!(
            "asking Sentinel for the primary: {last}"
        )))
    }

    /// SIGKILLs the current primary; returns its process name. Its keeper restarts it after
    /// the restart delay, and Sentinel turns it into a replica of the new primary.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Redis`] if the primary is unknown or is not one of ours.
    pub async fn kill_primary(&self) -> Result<String, ClusterError> {
        let port = self.primary_port().await?;
        let (proc, _) =
            self.data.iter().find(|(_, p)| *p == port).ok_or_else(|| {
                ClusterError::Redis(format!("the primary's port {port} is not ours"))
            })?;
        proc.signal(Signal::SIGKILL)?;
        Ok(proc.name().to_owned())
    }

    /// Whether this is a Sentinel deployment.
    #[must_use]
    pub fn mode(&self) -> RedisMode {
        self.mode
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> Result<T, String> {
        let client = redis::Client::open(format!("redis://{}:{port}", self.host))
            .map_err(|e| e.to_string())?;
        let fut = async {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(Duration::from_millis(500), fut)
            .await
            .map_err(|_| format!("{}:{port} did not answer in 500 ms", self.host))?
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), ClusterError> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < limit {
            match self.check_ready().await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ClusterError::NotReady(format!(
            "redis not ready after {limit:?}: {last}"
        )))
    }

    async fn check_ready(&self) -> Result<(), String> {
        for (proc, port) in &self.data {
            let pong: String = self.query(*port, &redis::cmd("PING")).await?;
            if pong != "PONG" {
                return Err(format!("{}: PING answered {pong:?}", proc.name()));
            }
        }
        if let Some((proc, port)) = self.data.get(1) {
            let info: String = self
                .query(*port, redis::cmd("INFO").arg("replication"))
                .await?;
            if !info.contains("master_link_status:up") {
                return Err(format!(
                    "{} is not in sync with the primary yet",
                    proc.name()
                ));
            }
        }
        for (proc, port) in &self.sentinels {
            let ok: Result<String, String> = self
                .query(
                    *port,
                    redis::cmd("SENTINEL").arg("ckquorum").arg(MASTER_NAME),
                )
                .await;
            ok.map_err(|e| format!("{}: {e}", proc.name()))?;
            let replicas: Vec<redis::Value> = self
                .query(
                    *port,
                    redis::cmd("SENTINEL").arg("replicas").arg(MASTER_NAME),
                )
                .await?;
            if replicas.is_empty() {
                return Err(format!("{} does not know the replica yet", proc.name()));
            }
        }
        Ok(())
    }

    /// Stops every Redis process.
    pub async fn stop(self) {
        for (p, _) in self.sentinels.into_iter().chain(self.data) {
            p.stop(Duration::from_secs(3)).await;
        }
    }
}
