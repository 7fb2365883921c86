//! Test and fault-injection helpers: a probe actor that panics, fails or exits on command.
//!
//! Supervision can only be tested with real actors dying for real. [`Probe`] is the smallest
//! such actor: it records its starts and clean stops in a shared [`Lifecycle`] log (so tests can
//! check start and stop order), and on [`ProbeMsg`] it panics, returns an error or stops. Chaos
//! suites may use it as a stand-in worker too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::child_spec::{ChildSpec, spawn_linked_fn};
use super::restart::RestartType;

/// The text every probe panic message contains.
pub const PROBE_PANIC_MARKER: &str = "probe asked to panic";

/// Installs (once per process) a panic hook that stays silent for probe panics and hands every
/// other panic to the previous hook.
///
/// Printing a panic (and capturing a backtrace when `RUST_BACKTRACE` is set) costs far more than
/// a restart; tests that time restarts, or inject hundreds of panics, call this first.
pub fn silence_probe_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.contains(PROBE_PANIC_MARKER) {
                previous(info);
            }
        }));
    });
}

/// Commands a [`Probe`] obeys.
#[derive(Debug)]
pub enum ProbeMsg {
    /// Panic in the handler (an abnormal exit: `ActorFailed`).
    Panic,
    /// Return an error from the handler (an abnormal exit: `ActorFailed`).
    Fail,
    /// Stop cleanly (a normal exit: `ActorTerminated`).
    Exit,
    /// Reply with this incarnation's generation.
    Generation(RpcReplyPort<u64>),
}

/// One entry of a [`Lifecycle`] log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// `pre_start` ran.
    Started {
        /// Registered name.
        name: String,
        /// Generation.
        generation: u64,
    },
    /// `post_stop` ran (a clean stop; panicking actors do not get here).
    Stopped {
        /// Registered name.
        name: String,
        /// Generation.
        generation: u64,
    },
}

/// A shared, ordered log of probe starts and stops.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle(Arc<Mutex<Vec<LifecycleEvent>>>);

impl Lifecycle {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<LifecycleEvent> {
        self.lock().clone()
    }

    /// Names of the probes that stopped cleanly, in stop order.
    pub fn stopped(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                LifecycleEvent::Stopped { name, .. } => Some(name.clone()),
                LifecycleEvent::Started { .. } => None,
            })
            .collect()
    }

    /// Names of the probes that started, in start order.
    pub fn started(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                LifecycleEvent::Started { name, .. } => Some(name.clone()),
                LifecycleEvent::Stopped { .. } => None,
            })
            .collect()
    }

    /// Empties the log.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn push(&self, event: LifecycleEvent) {
        self.lock().push(event);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<LifecycleEvent>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A supervised actor that dies on command.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    lifecycle: Lifecycle,
    fail_start: Option<Arc<AtomicBool>>,
}

impl Probe {
    /// A probe logging into `lifecycle`.
    pub fn new(lifecycle: Lifecycle) -> Self {
        Self {
            lifecycle,
            fail_start: None,
        }
    }

    /// Makes `pre_start` fail while `flag` is set.
    pub fn failing_start_while(mut self, flag: Arc<AtomicBool>) -> Self {
        self.fail_start = Some(flag);
        self
    }

    /// A [`ChildSpec`] of kind `"probe"` that starts this probe.
    pub fn spec(self, id: impl Into<String>, restart: RestartType) -> ChildSpec {
        let start = spawn_linked_fn(move |ctx| (self.clone(), (ctx.name.clone(), ctx.generation)));
        ChildSpec::new(id, "probe", restart, start)
    }
}

/// A probe's state: who it is.
#[derive(Debug)]
pub struct ProbeState {
    name: String,
    generation: u64,
}

impl Actor for Probe {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = (String, u64);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProbeMsg>,
        (name, generation): (String, u64),
    ) -> Result<ProbeState, ActorProcessingErr> {
        if self
            .fail_start
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            return Err(format!("probe {name} refuses to start").into());
        }
        self.lifecycle.push(LifecycleEvent::Started {
            name: name.clone(),
            generation,
        });
        Ok(ProbeState { name, generation })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ProbeMsg>,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        self.lifecycle.push(LifecycleEvent::Stopped {
            name: state.name.clone(),
            generation: state.generation,
        });
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        message: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProbeMsg::Panic => panic!("{PROBE_PANIC_MARKER}: {}", state.name),
            ProbeMsg::Fail => Err(format!("probe {} asked to fail", state.name).into()),
            ProbeMsg::Exit => {
                myself.stop(None);
                Ok(())
            }
            ProbeMsg::Generation(reply) => {
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(state.generation);
                Ok(())
            }
        }
    }
}
