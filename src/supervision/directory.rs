//! The directory of live supervised children.
//!
//! An actor's mailbox and [`ActorCell`] die with it: after a restart, whoever routes messages to
//! a child needs the replacement. Supervisors publish the current cell of every child here under
//! its registered name, together with its generation, and broadcast every start and exit so that
//! routers and the admin API can react without polling. Cloning a [`Directory`] is cheap (an
//! `Arc`); the supervisors of one tree usually share one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use ractor::{ActorCell, ActorRef};
use tokio::sync::broadcast;

/// Capacity of the event channel; slow subscribers see `RecvError::Lagged` beyond it.
const EVENT_CAPACITY: usize = 4096;

/// The current incarnation of one child.
#[derive(Clone, Debug)]
pub struct Published {
    /// The child's cell.
    pub cell: ActorCell,
    /// Its generation (1 for the first start, +1 per restart).
    pub generation: u64,
    /// When this incarnation was published.
    pub started_at: Instant,
}

impl Published {
    /// The child as a typed [`ActorRef`]. The caller must know the child's message type.
    pub fn actor_ref<M>(&self) -> ActorRef<M> {
        ActorRef::from(self.cell.clone())
    }
}

/// A change in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryEvent {
    /// A child (re)started and was published.
    Started {
        /// Registered name.
        name: String,
        /// New generation.
        generation: u64,
    },
    /// A child exited (on its own, or stopped by its supervisor) and was unpublished.
    Exited {
        /// Registered name.
        name: String,
        /// The generation that exited.
        generation: u64,
        /// Whether it panicked, failed or was killed.
        abnormal: bool,
        /// The exit reason (`"shutdown"` when its supervisor stopped it).
        reason: String,
    },
}

#[derive(Default)]
struct Entries {
    live: HashMap<String, Published>,
    /// The highest generation ever published per name (kept after unpublishing), so that a
    /// restarted supervisor continues its children's generations instead of starting over.
    generations: HashMap<String, u64>,
}

struct Inner {
    entries: RwLock<Entries>,
    events: broadcast::Sender<DirectoryEvent>,
}

/// Where the current [`ActorCell`] of every supervised child is published.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

impl Default for Directory {
    fn default() -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                entries: RwLock::new(Entries::default()),
                events,
            }),
        }
    }
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("names", &self.names())
            .finish()
    }
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current incarnation of the child registered as `name`, if it is running.
    pub fn lookup(&self, name: &str) -> Option<Published> {
        self.read().live.get(name).cloned()
    }

    /// The highest generation ever published under `name` (0 if never), live or not.
    pub fn last_generation(&self, name: &str) -> u64 {
        self.read().generations.get(name).copied().unwrap_or(0)
    }

    /// A receiver of every start and exit published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DirectoryEvent> {
        self.inner.events.subscribe()
    }

    /// The names of all running children, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().live.keys().cloned().collect();
        names.sort();
        names
    }

    /// Publishes a new incarnation of `name` and broadcasts [`DirectoryEvent::Started`].
    pub(crate) fn publish(&self, name: &str, cell: ActorCell, generation: u64) {
        let entry = Published {
            cell,
            generation,
            started_at: Instant::now(),
        };
        {
            let mut entries = self.write();
            let high = entries.generations.entry(name.to_owned()).or_default();
            *high = (*high).max(generation);
            entries.live.insert(name.to_owned(), entry);
        }
        // No subscriber is fine.
        let _ = self.inner.events.send(DirectoryEvent::Started {
            name: name.to_owned(),
            generation,
        });
    }

    /// Unpublishes generation `generation` of `name` (a newer one is left alone) and broadcasts
    /// [`DirectoryEvent::Exited`].
    pub(crate) fn unpublish(&self, name: &str, generation: u64, abnormal: bool, reason: &str) {
        {
            let mut entries = self.write();
            if entries
                .live
                .get(name)
                .is_some_and(|p| p.generation == generation)
            {
                entries.live.remove(name);
            }
        }
        let _ = self.inner.events.send(DirectoryEvent::Exited {
            name: name.to_owned(),
            generation,
            abnormal,
            reason: reason.to_owned(),
        });
    }

    // A panic while holding the lock cannot leave the map inconsistent (single insert/remove),
    // so a poisoned lock is recovered rather than propagated.
    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.inner
            .entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.inner
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr, ActorRef};

    use super::*;

    struct Idle;

    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn publish_lookup_unpublish_and_events() {
        let (actor, handle) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let dir = Directory::new();
        let clone = dir.clone();
        let mut events = dir.subscribe();

        dir.publish("m/a", actor.get_cell(), 1);
        let found = clone.lookup("m/a").expect("published");
        assert_eq!(found.generation, 1);
        assert_eq!(found.cell.get_id(), actor.get_id());
        assert_eq!(clone.names(), vec!["m/a".to_string()]);
        assert_eq!(
            events.recv().await.expect("event"),
            DirectoryEvent::Started {
                name: "m/a".into(),
                generation: 1
            }
        );

        // A stale generation does not unpublish the current one.
        dir.publish("m/a", actor.get_cell(), 2);
        dir.unpublish("m/a", 1, true, "boom");
        assert_eq!(dir.lookup("m/a").map(|p| p.generation), Some(2));
        dir.unpublish("m/a", 2, false, "shutdown");
        assert!(dir.lookup("m/a").is_none());
        assert_eq!(dir.last_generation("m/a"), 2);
        assert_eq!(dir.last_generation("never"), 0);
        let _ = events.recv().await;
        let _ = events.recv().await;
        assert_eq!(
            events.recv().await.expect("event"),
            DirectoryEvent::Exited {
                name: "m/a".into(),
                generation: 2,
                abnormal: false,
                reason: "shutdown".into()
            }
        );

        actor.stop(None);
        handle.await.expect("join");
    }
}
