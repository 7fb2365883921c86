//! Child specifications: how a supervisor starts (and restarts) one child.
//!
//! A supervisor knows nothing about its children's actor types. It holds, per child, a start
//! function that spawns the child *linked to* the supervisor and returns its [`ActorCell`]; the
//! supervisor calls it again for every restart, passing the registered name and the new
//! generation. Keep the start function cheap: expensive state (model weights) belongs in an
//! `Arc` captured by the closure, so that a restart costs microseconds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, SpawnErr};

use super::restart::RestartType;

/// The future a [`StartFn`] returns: the started child's cell, or why it did not start.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// Spawns the child *linked to* `StartContext::supervisor`
/// (ractor `Actor::spawn_linked(Some(name), actor, args, supervisor)`).
pub type StartFn = Arc<dyn Fn(StartContext) -> StartFuture + Send + Sync>;

/// Reports a child's queue depth for introspection.
pub type QueueDepthProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What a start function is told about the start it performs.
#[derive(Clone, Debug)]
pub struct StartContext {
    /// The supervisor to link to.
    pub supervisor: ActorCell,
    /// The unique actor name to register, e.g. `"ppo_mlp/shard-0"`.
    pub name: String,
    /// The generation of this incarnation: 1 for the first start, +1 per restart, continuing
    /// across restarts of the supervisor itself when its directory is kept.
    pub generation: u64,
}

/// Default time a child is given to stop gracefully before it is killed.
pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

/// How to start one supervised child, and how to treat its exits.
#[derive(Clone)]
pub struct ChildSpec {
    id: String,
    kind: String,
    restart: RestartType,
    start: StartFn,
    queue_depth: Option<QueueDepthProbe>,
    name: Option<String>,
    shutdown: Duration,
}

impl ChildSpec {
    /// A child with id `id` (unique within its supervisor), a kind for introspection (`"router"`,
    /// `"shard"`, `"supervisor"`, ...), a restart type and a start function.
    pub fn new(
        id: impl Into<String>,
        kind: impl Into<String>,
        restart: RestartType,
        start: StartFn,
    ) -> Self {
        Self {
            id: id.into(),
            kind: kind.into(),
            restart,
            start,
            queue_depth: None,
            name: None,
            shutdown: DEFAULT_SHUTDOWN,
        }
    }

    /// Adds a queue-depth probe, reported in the supervision tree.
    pub fn with_queue_depth(mut self, probe: QueueDepthProbe) -> Self {
        self.queue_depth = Some(probe);
        self
    }

    /// Registers the child under exactly `name` instead of `"<supervisor>/<id>"`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets how long a graceful stop may take before the child is killed.
    pub fn with_shutdown(mut self, shutdown: Duration) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The child's id, unique within its supervisor.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The child's kind, for introspection.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The child's restart type.
    pub fn restart(&self) -> RestartType {
        self.restart
    }

    /// The start function.
    pub fn start_fn(&self) -> &StartFn {
        &self.start
    }

    /// The queue-depth probe, if any.
    pub fn queue_depth(&self) -> Option<&QueueDepthProbe> {
        self.queue_depth.as_ref()
    }

    /// The graceful-stop timeout.
    pub fn shutdown(&self) -> Duration {
        self.shutdown
    }

    /// The actor name the child registers under when supervised by `supervisor`.
    pub fn registered_name(&self, supervisor: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{supervisor}/{}", self.id))
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("restart", &self.restart)
            .field("name", &self.name)
            .field("shutdown", &self.shutdown)
            .field("queue_depth", &self.queue_depth.is_some())
            .finish_non_exhaustive()
    }
}

/// A [`StartFn`] for an ordinary ractor actor: `make` builds the actor and its arguments for
/// each start (it is told the name and generation), and the actor is spawned linked to the
/// supervisor under the context's name.
pub fn spawn_linked_fn<A, F>(make: F) -> StartFn
where
    A: Actor,
    F: Fn(&StartContext) -> (A, A::Arguments) + Send + Sync + 'static,
{
    Arc::new(move |ctx: StartContext| -> StartFuture {
        let (actor, args) = make(&ctx);
        Box::pin(async move {
            let (actor_ref, _handle) =
                A::spawn_linked(Some(ctx.name), actor, args, ctx.supervisor).await?;
            Ok(actor_ref.get_cell())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_start() -> StartFn {
        Arc::new(|_ctx| Box::pin(async { Err(SpawnErr::ActorAlreadyStarted) }))
    }

    #[test]
    fn registered_name_defaults_to_supervisor_slash_id() {
        let spec = ChildSpec::new("shard-0", "shard", RestartType::Permanent, never_start());
        assert_eq!(spec.registered_name("ppo_mlp"), "ppo_mlp/shard-0");
        let named = spec.with_name("custom");
        assert_eq!(named.registered_name("ppo_mlp"), "custom");
    }

    #[test]
    fn builder_sets_probe_and_shutdown() {
        let spec = ChildSpec::new("r", "router", RestartType::Transient, never_start())
            .with_queue_depth(Arc::new(|| 7))
            .with_shutdown(Duration::from_millis(10));
        assert_eq!(spec.queue_depth().map(|p| p()), Some(7));
        assert_eq!(spec.shutdown(), Duration::from_millis(10));
        assert_eq!(spec.kind(), "router");
        assert_eq!(spec.restart(), RestartType::Transient);
        assert!(format!("{spec:?}").contains("router"));
    }
}
