//! The supervisor actor: applies the planner's decisions to real ractor children.
//!
//! ractor links a child to its supervisor and reports the child's exits as supervision events,
//! but decides nothing. [`Supervisor`] adds OTP semantics on top: it starts its children in
//! order from their [`ChildSpec`]s, turns every exit into a [`Plan`] (strategy, restart type,
//! intensity), stops and restarts children accordingly, publishes every new incarnation in the
//! [`Directory`], and fails itself when the restart intensity is exceeded so that its own
//! supervisor sees `ActorFailed` (escalation).
//!
//! Invariants kept here:
//! - children are started in start order and stopped in reverse start order, each stop awaited;
//! - exits of children the supervisor stopped itself are *expected* and never count as failures;
//! - an old incarnation has fully terminated (its registered name is free) before the new one is
//!   spawned;
//! - a backoff delay never blocks the mailbox: the restart is scheduled with `send_after`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RactorErr, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tracing::{debug, error, info, trace, warn};

use super::backoff::{Backoff, BackoffTracker};
use super::child_spec::{ChildSpec, StartContext, StartFn, StartFuture};
use super::directory::{Directory, Published};
use super::error::SupervisorError;
use super::intensity::{Intensity, IntensityTracker};
use super::planner::{ChildState, ChildView, ExitEvent, Plan, Planner};
use super::restart::{Exit, ExitKind, RestartType, classify_exit};
use super::strategy::Strategy;
use super::tree::{ChildStatus, TreeNode};

/// The `kind` of a child that is itself a supervisor; the tree asks such children for subtrees.
pub const SUPERVISOR_KIND: &str = "supervisor";

/// How long a supervisor waits for a nested supervisor's subtree.
pub const TREE_CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// How long a nested supervisor may take to stop its own children before it is killed.
pub const SUPERVISOR_SHUTDOWN: Duration = Duration::from_secs(30);

/// The stop reason given to children that their supervisor stops.
const SHUTDOWN_REASON: &str = "shutdown";

/// How long to wait for an exited child to finish ractor's cleanup (it is a few microseconds).
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Everything a supervisor is started with.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// The supervisor's registered actor name; children register as `"<name>/<child id>"`.
    pub name: String,
    /// The restart strategy.
    pub strategy: Strategy,
    /// The restart intensity limit.
    pub intensity: Intensity,
    /// The restart backoff.
    pub backoff: Backoff,
    /// The children, in start order.
    pub children: Vec<ChildSpec>,
    /// Where the children are published.
    pub directory: Directory,
}

impl SupervisorSpec {
    /// A spec with default intensity and backoff, no children and a fresh directory.
    pub fn new(name: impl Into<String>, strategy: Strategy) -> Self {
        Self {
            name: name.into(),
            strategy,
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            children: Vec::new(),
            directory: Directory::default(),
        }
    }

    /// Appends a child (started after the ones already added).
    pub fn with_child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the restart intensity.
    pub fn with_intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Sets the restart backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Publishes the children in `directory`.
    pub fn with_directory(mut self, directory: Directory) -> Self {
        self.directory = directory;
        self
    }
}

/// An OTP-style supervisor, as a ractor actor. Start it with [`Supervisor::start`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Supervisor;

/// Messages a supervisor understands.
pub enum SupervisorMsg {
    /// Reply with a snapshot of this supervisor's subtree.
    Tree(RpcReplyPort<TreeNode>),
    /// Add a child at the end of the start order and start it.
    StartChild(ChildSpec, RpcReplyPort<Result<Published, SupervisorError>>),
    /// Stop the child with this id (awaiting its stop) and forget it.
    TerminateChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// Internal: a backoff delay has elapsed. Cannot be built outside this module.
    #[doc(hidden)]
    RestartDue(RestartDue),
}

/// Internal timer message payload (see [`SupervisorMsg::RestartDue`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct RestartDue {
    token: u64,
}

/// One supervised child as the supervisor tracks it.
struct ChildSlot {
    spec: ChildSpec,
    name: String,
    state: ChildState,
    cell: Option<ActorCell>,
    generation: u64,
    restarts: u64,
    last_exit: Option<ExitKind>,
    backoff: BackoffTracker,
    /// Set while a delayed restart of this child is scheduled; matches the timer's token.
    pending_token: Option<u64>,
}

impl ChildSlot {
    fn new(spec: ChildSpec, supervisor: &str) -> Self {
        let name = spec.registered_name(supervisor);
        Self {
            spec,
            name,
            state: ChildState::Restarting,
            cell: None,
            generation: 0,
            restarts: 0,
            last_exit: None,
            backoff: BackoffTracker::new(),
            pending_token: None,
        }
    }

    fn status(&self) -> ChildStatus {
        match self.state {
            ChildState::Running => ChildStatus::Running,
            ChildState::Restarting => ChildStatus::Restarting,
            ChildState::Stopped if self.last_exit == Some(ExitKind::Abnormal) => {
                ChildStatus::Failed
            }
            ChildState::Stopped => ChildStatus::Stopped,
        }
    }
}

/// A supervisor's state (opaque).
pub struct SupervisorState {
    name: String,
    planner: Planner,
    backoff: Backoff,
    directory: Directory,
    children: Vec<ChildSlot>,
    intensity: IntensityTracker,
    expected_exits: HashSet<ActorId>,
    next_token: u64,
}

impl Supervisor {
    /// Spawns the supervisor (linked to `parent` when given) and starts its children in order.
    ///
    /// Fails if the name is taken or a child fails to start (the children already started are
    /// then stopped in reverse order).
    pub async fn start(
        spec: SupervisorSpec,
        parent: Option<ActorCell>,
    ) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), SpawnErr> {
        let name = spec.name.clone();
        match parent {
            Some(parent) => Actor::spawn_linked(Some(name), Supervisor, spec, parent).await,
            None => Actor::spawn(Some(name), Supervisor, spec).await,
        }
    }

    /// A [`ChildSpec`] whose start function starts a nested supervisor (kind `"supervisor"`), so
    /// trees nest.
    ///
    /// The factory is called once here (for the child id, the nested spec's name) and once per
    /// start. The nested supervisor registers under its spec's name, and is given
    /// [`SUPERVISOR_SHUTDOWN`] to stop its own children.
    pub fn child_spec(
        spec_factory: Arc<dyn Fn() -> SupervisorSpec + Send + Sync>,
        restart: RestartType,
    ) -> ChildSpec {
        let id = spec_factory().name;
        let start: StartFn = Arc::new(move |ctx: StartContext| -> StartFuture {
            let mut spec = spec_factory();
            spec.name = ctx.name;
            Box::pin(async move {
                let (actor, _handle) = Supervisor::start(spec, Some(ctx.supervisor)).await?;
                Ok(actor.get_cell())
            })
        });
        ChildSpec::new(id.clone(), SUPERVISOR_KIND, restart, start)
            .with_name(id)
            .with_shutdown(SUPERVISOR_SHUTDOWN)
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        spec: SupervisorSpec,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let SupervisorSpec {
            name,
            strategy,
            intensity,
            backoff,
            children,
            directory,
        } = spec;
        let mut state = SupervisorState {
            name,
            planner: Planner {
                strategy,
                intensity,
            },
            backoff,
            directory,
            children: Vec::with_capacity(children.len()),
            intensity: IntensityTracker::new(),
            expected_exits: HashSet::new(),
            next_token: 0,
        };
        for child in children {
            state.check_unique(&child)?;
            let slot = ChildSlot::new(child, &state.name);
            state.children.push(slot);
        }
        for i in 0..state.children.len() {
            if let Err(err) = state.start_child(&myself, i).await {
                error!(supervisor = %state.name, error = %err, "child failed to start; supervisor start aborted");
                state.stop_all().await;
                return Err(err.into());
            }
        }
        info!(supervisor = %state.name, strategy = ?strategy, children = state.children.len(), "supervisor started");
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        info!(supervisor = %state.name, "supervisor stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Tree(reply) => state.tree(reply),
            SupervisorMsg::StartChild(spec, reply) => {
                let result = state.add_child(&myself, spec).await;
                if reply.send(result).is_err() {
                    debug!(supervisor = %state.name, "start_child caller went away");
                }
            }
            SupervisorMsg::TerminateChild(id, reply) => {
                let result = state.terminate_child(&id).await;
                if reply.send(result).is_err() {
                    debug!(supervisor = %state.name, "terminate_child caller went away");
                }
            }
            SupervisorMsg::RestartDue(RestartDue { token }) => {
                state.restart_due(&myself, token).await?;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let received = Instant::now();
        let Some((cell, exit)) = classify_exit(&event) else {
            return Ok(());
        };
        let id = cell.get_id();
        if state.expected_exits.remove(&id) {
            trace!(supervisor = %state.name, actor = %id, "expected exit of a child we stopped");
            return Ok(());
        }
        let Some(index) = state.index_of_cell(id) else {
            debug!(supervisor = %state.name, actor = %id, reason = %exit.reason, "exit of an actor that is not a current child");
            return Ok(());
        };
        state.on_exit(&myself, index, exit, received).await?;
        Ok(())
    }
}

impl SupervisorState {
    fn index_of_cell(&self, id: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|cell| cell.get_id() == id))
    }

    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id() == id)
    }

    fn check_unique(&self, spec: &ChildSpec) -> Result<(), SupervisorError> {
        let name = spec.registered_name(&self.name);
        if let Some(dup) = self
            .children
            .iter()
            .find(|c| c.spec.id() == spec.id() || c.name == name)
        {
            return Err(SupervisorError::DuplicateChild {
                supervisor: self.name.clone(),
                child: dup.spec.id().to_owned(),
            });
        }
        Ok(())
    }

    fn views(&self) -> Vec<ChildView> {
        self.children
            .iter()
            .map(|c| ChildView {
                restart: c.spec.restart(),
                state: c.state,
            })
            .collect()
    }

    /// Starts child `i` (whose previous incarnation, if any, is gone) and publishes it.
    async fn start_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        i: usize,
    ) -> Result<(), SupervisorError> {
        if self.children[i].cell.is_some() {
            // Never expected: the caller stops or reaps a child before starting it again.
            self.stop_child(i).await;
        }
        let slot = &mut self.children[i];
        // Generations grow per name across restarts of this supervisor too (shared directory).
        let generation = slot
            .generation
            .max(self.directory.last_generation(&slot.name))
            + 1;
        let ctx = StartContext {
            supervisor: myself.get_cell(),
            name: slot.name.clone(),
            generation,
        };
        let start = (slot.spec.start_fn())(ctx);
        match start.await {
            Ok(cell) => {
                slot.generation = generation;
                slot.cell = Some(cell.clone());
                slot.state = ChildState::Running;
                slot.pending_token = None;
                self.directory.publish(&slot.name, cell, generation);
                debug!(supervisor = %self.name, child = %slot.name, generation, "child started");
                Ok(())
            }
            Err(source) => Err(SupervisorError::ChildStartFailed {
                supervisor: self.name.clone(),
                child: slot.spec.id().to_owned(),
                source,
            }),
        }
    }

    /// Stops child `i` gracefully (killing it after its shutdown timeout), awaits its end and
    /// unpublishes it. Its exit event is marked expected. The caller sets the new state.
    async fn stop_child(&mut self, i: usize) {
        let slot = &mut self.children[i];
        slot.pending_token = None;
        let Some(cell) = slot.cell.take() else {
            return;
        };
        self.expected_exits.insert(cell.get_id());
        let timeout = slot.spec.shutdown();
        match cell
            .stop_and_wait(Some(SHUTDOWN_REASON.to_owned()), Some(timeout))
            .await
        {
            Ok(()) => {}
            Err(RactorErr::Timeout) => {
                warn!(supervisor = %self.name, child = %slot.name, ?timeout, "child did not stop in time; killing it");
                if cell.kill_and_wait(Some(timeout)).await.is_err() {
                    error!(supervisor = %self.name, child = %slot.name, "child did not die after kill");
                }
            }
            Err(_) => {
                // Already exiting on its own: wait for ractor's cleanup.
                if cell.wait(Some(EXIT_WAIT)).await.is_err() {
                    warn!(supervisor = %self.name, child = %slot.name, "exiting child did not finish its cleanup");
                }
            }
        }
        self.directory
            .unpublish(&slot.name, slot.generation, false, SHUTDOWN_REASON);
        debug!(supervisor = %self.name, child = %slot.name, generation = slot.generation, "child stopped");
    }

    /// Stops every child in reverse start order.
    async fn stop_all(&mut self) {
        for i in (0..self.children.len()).rev() {
            self.stop_child(i).await;
            self.children[i].state = ChildState::Stopped;
        }
    }

    /// Starts the children with these ids (in this order) that are not running.
    /// On a start failure returns the failing child's index; the rest are left not started.
    async fn start_group(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        ids: &[String],
        failure_seen: Instant,
    ) -> Result<(), (usize, SupervisorError)> {
        for id in ids {
            let Some(i) = self.index_of_id(id) else {
                continue;
            };
            if self.children[i].state == ChildState::Running {
                continue;
            }
            self.start_child(myself, i).await.map_err(|e| (i, e))?;
            let slot = &mut self.children[i];
            slot.restarts += 1;
            debug!(
                supervisor = %self.name,
                child = %slot.name,
                generation = slot.generation,
                latency_us = failure_seen.elapsed().as_micros() as u64,
                "child restarted"
            );
        }
        Ok(())
    }

    /// Reacts to the exit of child `index`, and to any start failure that reaction causes.
    async fn on_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        index: usize,
        exit: Exit,
        at: Instant,
    ) -> Result<(), SupervisorError> {
        let mut next = Some((index, exit, at));
        while let Some((index, exit, at)) = next.take() {
            self.reap(index, &exit).await;
            let event = ExitEvent {
                child: index,
                kind: exit.kind,
                at,
            };
            let plan = self.planner.plan(&self.views(), &mut self.intensity, event);
            trace!(supervisor = %self.name, ?plan, "restart plan");
            match plan {
                Plan::Ignore { remove } => {
                    if remove {
                        let slot = self.children.remove(index);
                        info!(supervisor = %self.name, child = %slot.name, "temporary child exited; removed");
                    } else {
                        self.children[index].state = ChildState::Stopped;
                    }
                }
                Plan::Escalate { stop } => {
                    self.children[index].state = ChildState::Stopped;
                    let intensity = self.planner.intensity;
                    error!(
                        supervisor = %self.name,
                        max_restarts = intensity.max_restarts,
                        period = ?intensity.period,
                        "restart intensity exceeded; stopping children and escalating"
                    );
                    for i in stop {
                        self.stop_child(i).await;
                        self.children[i].state = ChildState::Stopped;
                    }
                    return Err(SupervisorError::IntensityExceeded {
                        supervisor: self.name.clone(),
                        max_restarts: intensity.max_restarts,
                        period: intensity.period,
                    });
                }
                Plan::Restart {
                    stop,
                    remove,
                    start,
                } => {
                    for &i in &stop {
                        self.stop_child(i).await;
                        self.children[i].state = ChildState::Restarting;
                    }
                    self.children[index].state = ChildState::Restarting;
                    let quiet = self.planner.intensity.period;
                    let delay = self.children[index]
                        .backoff
                        .next_delay(&self.backoff, quiet, at);
                    let ids: Vec<String> = start
                        .iter()
                        .map(|&i| self.children[i].spec.id().to_owned())
                        .collect();
                    for &i in remove.iter().rev() {
                        let slot = self.children.remove(i);
                        info!(supervisor = %self.name, child = %slot.name, "temporary child stopped by restart; removed");
                    }
                    if delay.is_zero() {
                        if let Err((failed, err)) = self.start_group(myself, &ids, at).await {
                            warn!(supervisor = %self.name, error = %err, "restart failed");
                            next = Some((failed, Exit::abnormal(err.to_string()), Instant::now()));
                        }
                    } else {
                        self.schedule_restart(myself, &ids, delay);
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets the dead incarnation of child `index`, after ractor finished cleaning it up.
    async fn reap(&mut self, index: usize, exit: &Exit) {
        let slot = &mut self.children[index];
        slot.last_exit = Some(exit.kind);
        slot.pending_token = None;
        if let Some(cell) = slot.cell.take() {
            // The old incarnation's name must be free before a new one registers it.
            if cell.wait(Some(EXIT_WAIT)).await.is_err() {
                warn!(supervisor = %self.name, child = %slot.name, "exited child did not finish its cleanup");
            }
            self.directory.unpublish(
                &slot.name,
                slot.generation,
                exit.kind.is_abnormal(),
                &exit.reason,
            );
        }
        if exit.kind.is_abnormal() {
            warn!(supervisor = %self.name, child = %slot.name, generation = slot.generation, reason = %exit.reason, "child exited abnormally");
        } else {
            info!(supervisor = %self.name, child = %slot.name, generation = slot.generation, reason = %exit.reason, "child exited");
        }
    }

    fn schedule_restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        ids: &[String],
        delay: Duration,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        for id in ids {
            if let Some(i) = self.index_of_id(id) {
                self.children[i].pending_token = Some(token);
            }
        }
        info!(supervisor = %self.name, children = ?ids, ?delay, "restart delayed by backoff");
        // If the supervisor stops first, the timer's send fails harmlessly.
        myself.send_after(delay, move || {
            SupervisorMsg::RestartDue(RestartDue { token })
        });
    }

    async fn restart_due(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        token: u64,
    ) -> Result<(), SupervisorError> {
        let ids: Vec<String> = self
            .children
            .iter()
            .filter(|c| c.pending_token == Some(token) && c.state == ChildState::Restarting)
            .map(|c| c.spec.id().to_owned())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let due = Instant::now();
        if let Err((failed, err)) = self.start_group(myself, &ids, due).await {
            warn!(supervisor = %self.name, error = %err, "delayed restart failed");
            self.on_exit(
                myself,
                failed,
                Exit::abnormal(err.to_string()),
                Instant::now(),
            )
            .await?;
        }
        Ok(())
    }

    async fn add_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: ChildSpec,
    ) -> Result<Published, SupervisorError> {
        self.check_unique(&spec)?;
        let slot = ChildSlot::new(spec, &self.name);
        self.children.push(slot);
        let i = self.children.len() - 1;
        if let Err(err) = self.start_child(myself, i).await {
            self.children.remove(i);
            return Err(err);
        }
        let name = &self.children[i].name;
        info!(supervisor = %self.name, child = %name, "child added");
        // Published just now by start_child; a child that already died is reported as such.
        self.directory
            .lookup(name)
            .ok_or_else(|| SupervisorError::UnknownChild {
                supervisor: self.name.clone(),
                child: name.clone(),
            })
    }

    async fn terminate_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let i = self
            .index_of_id(id)
            .ok_or_else(|| SupervisorError::UnknownChild {
                supervisor: self.name.clone(),
                child: id.to_owned(),
            })?;
        self.stop_child(i).await;
        let slot = self.children.remove(i);
        info!(supervisor = %self.name, child = %slot.name, "child terminated and removed");
        Ok(())
    }

    /// Replies with this supervisor's subtree; nested supervisors are asked off the mailbox.
    fn tree(&self, reply: RpcReplyPort<TreeNode>) {
        let mut node = TreeNode {
            name: self.name.clone(),
            kind: SUPERVISOR_KIND.to_owned(),
            status: ChildStatus::Running,
            generation: 0,
            restarts: 0,
            queue_depth: None,
            children: Vec::with_capacity(self.children.len()),
        };
        let mut nested = Vec::new();
        for (k, c) in self.children.iter().enumerate() {
            node.children.push(TreeNode {
                name: c.name.clone(),
                kind: c.spec.kind().to_owned(),
                status: c.status(),
                generation: c.generation,
                restarts: c.restarts,
                queue_depth: c.spec.queue_depth().map(|probe| probe()),
                children: Vec::new(),
            });
            if c.spec.kind() == SUPERVISOR_KIND
                && let Some(cell) = &c.cell
            {
                nested.push((k, cell.clone()));
            }
        }
        if nested.is_empty() {
            if reply.send(node).is_err() {
                debug!(supervisor = %self.name, "tree caller went away");
            }
            return;
        }
        let supervisor = self.name.clone();
        tokio::spawn(async move {
            let calls: Vec<_> = nested
                .into_iter()
                .map(|(k, cell)| {
                    let call = tokio::spawn(async move {
                        ActorRef::<SupervisorMsg>::from(cell)
                            .call(SupervisorMsg::Tree, Some(TREE_CALL_TIMEOUT))
                            .await
                    });
                    (k, call)
                })
                .collect();
            for (k, call) in calls {
                match call.await {
                    Ok(Ok(CallResult::Success(sub))) => node.children[k].children = sub.children,
                    _ => {
                        warn!(supervisor = %supervisor, child = %node.children[k].name, "nested supervisor did not report its tree");
                        node.children[k].status = ChildStatus::Failed;
                    }
                }
            }
            if reply.send(node).is_err() {
                debug!(supervisor = %supervisor, "tree caller went away");
            }
        });
    }
}

#[cfg(test)]
mod tests;
