//! A child process kept running the way systemd's `Restart=always` keeps a service running:
//! when it exits for any reason other than our own stop, it is started again after a delay.
//! The current pid is always known, so faults can be aimed at it, and a stop only ever signals
//! the pid this module spawned.

use std::{
    fs::OpenOptions,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{process::Command, sync::Notify, task::JoinHandle};

use super::{ClusterError, ClusterEvents, EventKind};

/// What to run and how to restart it.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Name used in logs and events (a node or Redis role name).
    pub name: String,
    /// Program and arguments (`argv[0]` first).
    pub argv: Vec<String>,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
    /// Pause between an exit and the next start (systemd's `RestartSec`).
    pub restart_delay: Duration,
}

/// Holds back or releases the restarts of a [`SupervisedProcess`].
#[derive(Debug, Clone)]
pub struct RestartHold(Arc<Shared>);

impl RestartHold {
    /// See [`SupervisedProcess::hold_restarts`].
    pub fn hold_restarts(&self, hold: bool) {
        self.0.held.store(hold, Ordering::Release);
        self.0.wake.notify_one();
    }
}

/// A running, restarted-on-exit child process.
#[derive(Debug)]
pub struct SupervisedProcess {
    name: String,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    /// 0 while no child is running.
    pid: AtomicU32,
    starts: AtomicU32,
    stopping: AtomicBool,
    /// Restarts are held back (a machine that stays down, e.g. a lost region).
    held: AtomicBool,
    wake: Notify,
}

impl SupervisedProcess {
    /// Starts the process and its keeper task. The first spawn happens before this returns, so
    /// a missing program is reported here.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Spawn`] if the program cannot be started or the log cannot be opened.
    pub fn start(spec: ProcessSpec, events: ClusterEvents) -> Result<Self, ClusterError> {
        let shared = Arc::new(Shared::default());
        let child = spawn(&spec)?;
        let task = tokio::spawn(keep_running(spec.clone(), child, shared.clone(), events));
        Ok(Self {
            name: spec.name,
            shared,
            task: Some(task),
        })
    }

    /// The name given in the spec.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the running child, if one is running.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        match self.shared.pid.load(Ordering::Acquire) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// How many times the process was started (1 + restarts).
    #[must_use]
    pub fn starts(&self) -> u32 {
        self.shared.starts.load(Ordering::Acquire)
    }

    /// Sends `signal` to the running child.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NotRunning`] between a exit and its restart, [`ClusterError::Signal`]
    /// if the kernel refuses.
    pub fn signal(&self, signal: Signal) -> Result<u32, ClusterError> {
        let pid = self
            .pid()
            .ok_or_else(|| ClusterError::NotRunning(self.name.clone()))?;
        send(pid, signal).map_err(|e| ClusterError::Signal {
            name: self.name.clone(),
            pid,
            reason: e.to_string(),
        })?;
        Ok(pid)
    }

    /// Holds restarts back (`true`) or lets them happen again (`false`): a lost machine
    /// stays down until it is released.
    pub fn hold_restarts(&self, hold: bool) {
        self.handle().hold_restarts(hold);
    }

    /// A handle that holds or releases restarts from elsewhere (e.g. a timer task).
    #[must_use]
    pub fn handle(&self) -> RestartHold {
        RestartHold(self.shared.clone())
    }

    /// Stops the process for good: SIGCONT (in case it is frozen) and SIGTERM, then SIGKILL
    /// after `grace`. Waits until it has exited.
    pub async fn stop(mut self, grace: Duration) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(pid) = self.pid() {
            let _ = send(pid, Signal::SIGCONT);
            let _ = send(pid, Signal::SIGTERM);
        }
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            if let Some(pid) = self.pid() {
                tracing::warn!(name = %self.name, pid, "did not stop within the grace period; SIGKILL");
                let _ = send(pid, Signal::SIGKILL);
            }
            let _ = task.await;
        }
    }
}

impl Drop for SupervisedProcess {
    /// Last resort when [`SupervisedProcess::stop`] was not awaited: kill the child so that
    /// nothing outlives the launcher.
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(pid) = self.pid() {
            let _ = send(pid, Signal::SIGCONT);
            let _ = send(pid, Signal::SIGKILL);
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn send(pid: u32, signal: Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    nix::sys::signal::kill(Pid::from_raw(pid), signal)
}

fn spawn(spec: &ProcessSpec) -> Result<tokio::process::Child, ClusterError> {
    let err = |reason: String| ClusterError::Spawn {
        name: spec.name.clone(),
        reason,
    };
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| err("empty command line".into()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| err(format!("opening log {}: {e}", spec.log.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| err(format!("opening log {}: {e}", spec.log.display())))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(true)
        // A process group of its own: a terminal's Ctrl-C reaches only the launcher, which then
        // stops its children in order, instead of every child dying at once and being
        // restarted during the shutdown.
        .process_group(0)
        .spawn()
        .map_err(|e| err(format!("{program}: {e}")))
}

async fn keep_running(
    spec: ProcessSpec,
    first: tokio::process::Child,
    shared: Arc<Shared>,
    events: ClusterEvents,
) {
    let mut next = Some(first);
    loop {
        let mut child = match next.take() {
            Some(child) => child,
            None => match spawn(&spec) {
                Ok(child) => child,
                Err(e) => {
                    tracing::error!(name = %spec.name, error = %e, "restart failed");
                    events.push(EventKind::StartFailed, &spec.name, e.to_string());
                    if pause(&shared, spec.restart_delay).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let pid = child.id().unwrap_or(0);
        shared.pid.store(pid, Ordering::Release);
        let starts = shared.starts.fetch_add(1, Ordering::AcqRel) + 1;
        events.push(
            EventKind::Started,
            &spec.name,
            format!("pid {pid}, start #{starts}"),
        );
        tracing::info!(name = %spec.name, pid, starts, "process started");
        let status = child.wait().await;
        shared.pid.store(0, Ordering::Release);
        let status = status.map_or_else(|e| format!("wait failed: {e}"), |s| s.to_string());
        if shared.stopping.load(Ordering::Acquire) {
            events.push(EventKind::Stopped, &spec.name, status);
            return;
        }
        tracing::warn!(name = %spec.name, pid, %status, delay_ms = spec.restart_delay.as_millis(), "process exited; restarting");
        events.push(
            EventKind::Exited,
            &spec.name,
            format!("pid {pid}: {status}"),
        );
        if pause(&shared, spec.restart_delay).await {
            return;
        }
        while shared.held.load(Ordering::Acquire) {
            if pause(&shared, Duration::from_millis(50)).await {
                return;
            }
        }
    }
}

/// Sleeps for the restart delay; `true` if a stop was requested meanwhile.
async fn pause(shared: &Shared, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shared.wake.notified() => {}
    }
    shared.stopping.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path, argv: &[&str]) -> ProcessSpec {
        ProcessSpec {
            name: "t".into(),
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            log: dir.join("t.log"),
            restart_delay: Duration::from_millis(50),
        }
    }

    async fn wait_for(mut cond: impl FnMut() -> bool) {
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < until,
                "condition not met in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_killed_process_is_restarted_with_a_new_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = ClusterEvents::default();
        let p = SupervisedProcess::start(spec(dir.path(), &["sleep", "30"]), events.clone())
            .expect("starts");
        wait_for(|| p.pid().is_some()).await;
        let first = p.pid().expect("running");
        p.signal(Signal::SIGKILL).expect("kill");
        wait_for(|| p.starts() == 2 && p.pid().is_some_and(|pid| pid != first)).await;
        p.stop(Duration::from_secs(2)).await;
        let kinds: Vec<EventKind> = events.snapshot().into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Started,
                EventKind::Exited,
                EventKind::Started,
                EventKind::Stopped
            ]
        );
    }

    #[tokio::test]
    async fn stop_ends_a_frozen_process_and_does_not_restart_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = ClusterEvents::default();
        let p = SupervisedProcess::start(spec(dir.path(), &["sleep", "30"]), events.clone())
            .expect("starts");
        wait_for(|| p.pid().is_some()).await;
        p.signal(Signal::SIGSTOP).expect("freeze");
        tokio::time::timeout(Duration::from_secs(5), p.stop(Duration::from_secs(2)))
            .await
            .expect("stops in time");
        assert_eq!(
            events.snapshot().last().map(|e| e.kind),
            Some(EventKind::Stopped)
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = SupervisedProcess::start(
            spec(dir.path(), &["/nonexistent/fudo-test-binary"]),
            ClusterEvents::default(),
        )
        .expect_err("must fail");
        assert!(
            err.to_string().contains("/nonexistent/fudo-test-binary"),
            "{err}"
        );
    }
}
