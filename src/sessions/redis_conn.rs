//! The Redis store's connection: one shared multiplexed connection, (re)established on demand,
//! either to a fixed URL (plain or `rediss://`, see `redis_tls`) or to the primary that Redis
//! Sentinel currently names (plain TCP only).
//!
//! It exists apart from the writer so that "where is the primary" is decided in one place: the
//! writer and loads only ever see "a connection" or "a failed connect", and every failed round
//! trip drops the connection, so the next user goes through discovery again. That is what makes
//! a failover transparent: a `READONLY` reply (the old primary came back as a replica), a reset
//! connection or a timeout all end in a fresh discovery, while the writer keeps its buffer.
//!
//! Sentinel discovery uses plain commands rather than the redis crate's `sentinel` feature,
//! because that is both simpler here and more robust:
//! - the sentinels are asked strictly in the configured order, each bounded by
//!   `connect_timeout`, so one dead sentinel costs one short timeout, not a default one;
//! - the `ROLE` check runs on the very connection that is then used for writes (the crate
//!   checks the role on a separate throw-away connection, so the node could be demoted between
//!   the check and the use), and a node that answers `slave` is a failed connect, retried with
//!   the writer's backoff while Sentinel finishes the failover;
//! - it reuses the store's own timeouts and the multiplexed connection it already manages, and
//!   needs no extra crate feature.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RedisConnectionInfo, Role};

use super::redis_target::{HostPort, RedisTarget};
use super::redis_tls::{ca_for, direct_client};
use super::{RedisStoreOptions, StoreError};

/// One shared multiplexed connection, (re)established on demand. A generation number keeps a
/// failing user from dropping a newer, healthy connection made by someone else.
pub(super) struct ConnSlot {
    connector: Connector,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    slot: tokio::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
}

enum Connector {
    Direct(redis::Client),
    Sentinel(Sentinels),
}

/// The sentinels of one monitored master, and the primary last connected to.
struct Sentinels {
    /// (`host:port` for messages, client), in the configured order.
    nodes: Vec<(String, redis::Client)>,
    master: String,
    db: i64,
    /// Limits for the sentinel queries (connect and command both bounded by
    /// `connect_timeout`).
    config: AsyncConnectionConfig,
    primary: Mutex<Option<String>>,
}

impl ConnSlot {
    /// Fails only on an invalid URL (the redis crate rejects a malformed `redis://` URL), or a
    /// CA file that is unusable or set for a URL without TLS.
    pub(super) fn new(target: &RedisTarget, opts: &RedisStoreOptions) -> Result<Self, StoreError> {
        let root_cert = opts
            .ca_file
            .as_deref()
            .map(|ca_file| ca_for(target, ca_file))
            .transpose()?;
        let connector = match target {
            RedisTarget::Direct(url) => Connector::Direct(direct_client(url, root_cert)?),
            RedisTarget::Sentinel {
                sentinels,
                master,
                db,
            } => Connector::Sentinel(Sentinels {
                nodes: sentinels
                    .iter()
                    .map(|(host, port)| {
                        let client = redis::Client::open((host.clone(), *port))?;
                        Ok((HostPort(host, *port).to_string(), client))
                    })
                    .collect::<Result<_, StoreError>>()?,
                master: master.clone(),
                db: *db,
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(opts.connect_timeout))
                    .set_response_timeout(Some(opts.connect_timeout)),
                primary: Mutex::new(None),
            }),
        };
        Ok(Self {
            connector,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(opts.connect_timeout))
                .set_response_timeout(Some(opts.response_timeout)),
            connect_timeout: opts.connect_timeout,
            slot: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// The current connection, connecting (through Sentinel discovery if configured) when
    /// there is none.
    pub(super) async fn get(&self) -> Result<(u64, MultiplexedConnection), StoreError> {
        let mut slot = self.slot.lock().await;
        if let Some((generation, conn)) = &*slot {
            return Ok((*generation, conn.clone()));
        }
        let conn = match &self.connector {
            Connector::Direct(client) => self.connect(client).await?,
            Connector::Sentinel(sentinels) => sentinels.connect_primary(self).await?,
        };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *slot = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Drops the connection of `generation` (if it is still the current one), so that the next
    /// [`ConnSlot::get`] connects (and rediscovers the primary) again.
    pub(super) async fn invalidate(&self, generation: u64) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
        }
    }

    async fn connect(&self, client: &redis::Client) -> Result<MultiplexedConnection, StoreError> {
        let connect = client.get_multiplexed_async_connection_with_config(&self.config);
        match tokio::time::timeout(self.connect_timeout * 2, connect).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(StoreError::Timeout {
                op: "redis connect",
                after: self.connect_timeout,
            }),
        }
    }
}

impl Sentinels {
    /// Asks the sentinels in order; the first that names a primary which confirms with `ROLE`
    /// wins. Logs a change of primary at info.
    async fn connect_primary(&self, slot: &ConnSlot) -> Result<MultiplexedConnection, StoreError> {
        let mut failures = Vec::with_capacity(self.nodes.len());
        for (sentinel, client) in &self.nodes {
            let addr = match self.ask(client, slot.connect_timeout).await {
                Ok(addr) => addr,
                Err(e) => {
                    failures.push(format!("sentinel {sentinel}: {e}"));
                    continue;
                }
            };
            let Some((host, port)) = addr else {
                failures.push(format!(
                    "sentinel {sentinel} does not know master {:?}",
                    self.master
                ));
                continue;
            };
            let primary = HostPort(&host, port).to_string();
            match self.connect_verified(slot, host, port, &primary).await {
                Ok(conn) => {
                    self.note_primary(primary, sentinel);
                    return Ok(conn);
                }
                Err(e) => {
                    failures.push(format!("primary {primary} (from sentinel {sentinel}): {e}"))
                }
            }
        }
        Err(StoreError::NoPrimary {
            master: self.master.clone(),
            detail: failures.join("; "),
        })
    }

    /// `SENTINEL get-master-addr-by-name` on one sentinel, bounded by `limit`.
    async fn ask(
        &self,
        client: &redis::Client,
        limit: Duration,
    ) -> Result<Option<(String, u16)>, StoreError> {
        let ask = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?;
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async(&mut conn)
                .await?;
            Ok(addr)
        };
        match tokio::time::timeout(limit, ask).await {
            Ok(res) => res,
            Err(_) => Err(StoreError::Timeout {
                op: "redis sentinel query",
                after: limit,
            }),
        }
    }

    /// Connects to `host:port` and checks with `ROLE` that it is a primary.
    async fn connect_verified(
        &self,
        slot: &ConnSlot,
        host: String,
        port: u16,
        primary: &str,
    ) -> Result<MultiplexedConnection, StoreError> {
        let info = (host, port)
            .into_connection_info()?
            .set_redis_settings(RedisConnectionInfo::default().set_db(self.db));
        let client = redis::Client::open(info)?;
        let mut conn = slot.connect(&client).await?;
        let role = tokio::time::timeout(
            slot.connect_timeout * 2,
            redis::cmd("ROLE").query_async::<Role>(&mut conn),
        )
        .await
        .map_err(|_| StoreError::Timeout {
            op: "redis ROLE",
            after: slot.connect_timeout * 2,
        })??;
        match role {
            Role::Primary { .. } => Ok(conn),
            Role::Replica { .. } => Err(not_primary(primary, "replica")),
            Role::Sentinel { .. } => Err(not_primary(primary, "sentinel")),
            _ => Err(not_primary(primary, "node of unknown role")),
        }
    }

    fn note_primary(&self, new: String, sentinel: &str) {
        let mut current = self.primary.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() != Some(new.as_str()) {
            tracing::info!(
                master = %self.master,
                old = current.as_deref().unwrap_or("none"),
                new = %new,
                sentinel = %sentinel,
                "session store: redis primary changed (discovered through sentinel)"
            );
            *current = Some(new);
        }
    }
}

fn not_primary(addr: &str, role: &str) -> StoreError {
    StoreError::NotPrimary {
        addr: addr.to_owned(),
        role: role.to_owned(),
    }
}
