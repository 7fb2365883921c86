//! The pure decision core of a supervisor.
//!
//! Given the strategy, the children in start order (restart type and state), the intensity
//! tracker and one exit event, [`Planner::plan`] says what to do: nothing (and whether to forget
//! the child), which children to stop (reverse start order) and start again (start order), or
//! escalate. It performs no I/O and reads no clock, so the OTP rules can be checked exhaustively
//! by property tests; the supervisor actor only applies its plans.

use std::time::Instant;

use super::intensity::{Intensity, IntensityTracker, IntensityVerdict};
use super::restart::{ExitKind, RestartType};
use super::strategy::Strategy;

/// The supervisor's view of one child's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildState {
    /// Started and (as far as the supervisor knows) alive.
    Running,
    /// Stopped by a restart plan and waiting to be started again (possibly after a backoff).
    Restarting,
    /// Exited and not to be restarted (a transient child that exited normally).
    Stopped,
}

/// What the planner needs to know about one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildView {
    /// The child's restart type.
    pub restart: RestartType,
    /// The child's state before the event.
    pub state: ChildState,
}

/// "Child `child` (start-order index) exited in this way at this time."
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    /// Start-order index of the child that exited.
    pub child: usize,
    /// Normal or abnormal exit.
    pub kind: ExitKind,
    /// When the supervisor observed the exit.
    pub at: Instant,
}

/// What the supervisor must do about an exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Restart nothing. If `remove`, forget the child (temporary); otherwise mark it stopped.
    Ignore {
        /// Whether the child is removed from the supervisor.
        remove: bool,
    },
    /// Stop `stop` (reverse start order), forget `remove`, then start `start` (start order).
    Restart {
        /// Running siblings to stop, in reverse start order. Never contains the exited child.
        stop: Vec<usize>,
        /// Temporary siblings that are stopped and then forgotten, not restarted.
        remove: Vec<usize>,
        /// Children to start again, in start order; always contains the exited child.
        start: Vec<usize>,
    },
    /// The restart intensity is exceeded: stop `stop` (every running sibling, reverse start
    /// order) and fail the supervisor.
    Escalate {
        /// Running siblings to stop, in reverse start order.
        stop: Vec<usize>,
    },
}

/// Strategy plus intensity limit: everything needed to decide, apart from the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planner {
    /// The restart strategy.
    pub strategy: Strategy,
    /// The restart intensity limit.
    pub intensity: Intensity,
}

impl Planner {
    /// Decides the reaction to `event` and records the restart in `tracker` when one happens.
    ///
    /// `children` lists every child the supervisor holds, in start order; the state of the
    /// exited child itself is ignored (it is dead). Follows OTP: a restart of a whole group
    /// counts as one restart; temporary siblings caught in a group restart are removed; other
    /// siblings in the group are started again even if they had stopped earlier.
    ///
    /// # Panics
    /// Never on valid input; an out-of-range `event.child` yields `Plan::Ignore { remove: false }`.
    pub fn plan(
        &self,
        children: &[ChildView],
        tracker: &mut IntensityTracker,
        event: ExitEvent,
    ) -> Plan {
        let Some(exited) = children.get(event.child) else {
            return Plan::Ignore { remove: false };
        };
        if !exited.restart.should_restart(event.kind) {
            return Plan::Ignore {
                remove: exited.restart.is_removed_on_exit(),
            };
        }
        let running_siblings_reversed = |range: std::ops::Range<usize>| -> Vec<usize> {
            range
                .rev()
                .filter(|&i| i != event.child && children[i].state == ChildState::Running)
                .collect()
        };
        if tracker.record(&self.intensity, event.at) == IntensityVerdict::Exceeded {
            return Plan::Escalate {
                stop: running_siblings_reversed(0..children.len()),
            };
        }
        let affected = self.strategy.affected(event.child, children.len());
        let stop = running_siblings_reversed(affected.clone());
        let (remove, start) =
            affected.partition(|&i| i != event.child && children[i].restart.is_removed_on_exit());
        Plan::Restart {
            stop,
            remove,
            start,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::supervision::strategy::Strategy;

    fn view(restart: RestartType) -> ChildView {
        ChildView {
            restart,
            state: ChildState::Running,
        }
    }

    fn planner(strategy: Strategy) -> Planner {
        Planner {
            strategy,
            intensity: Intensity {
                max_restarts: 100,
                period: Duration::from_secs(5),
            },
        }
    }

    fn abnormal(child: usize) -> ExitEvent {
        ExitEvent {
            child,
            kind: ExitKind::Abnormal,
            at: Instant::now(),
        }
    }

    use RestartType::{Permanent as P, Temporary as T, Transient as Tr};

    #[test]
    fn one_for_one_restarts_only_the_failed_child() {
        let kids = [view(P), view(P), view(P)];
        let plan =
            planner(Strategy::OneForOne).plan(&kids, &mut IntensityTracker::new(), abnormal(1));
        assert_eq!(
            plan,
            Plan::Restart {
                stop: vec![],
                remove: vec![],
                start: vec![1]
            }
        );
    }

    #[test]
    fn one_for_all_stops_others_in_reverse_and_restarts_all_in_order() {
        let kids = [view(P), view(Tr), view(P), view(T)];
        let plan =
            planner(Strategy::OneForAll).plan(&kids, &mut IntensityTracker::new(), abnormal(1));
        assert_eq!(
            plan,
            Plan::Restart {
                stop: vec![3, 2, 0],
                remove: vec![3],
                start: vec![0, 1, 2]
            }
        );
    }

    #[test]
    fn rest_for_one_restarts_the_failed_child_and_later_ones() {
        let kids = [view(P), view(P), view(P), view(P)];
        let plan =
            planner(Strategy::RestForOne).plan(&kids, &mut IntensityTracker::new(), abnormal(1));
        assert_eq!(
            plan,
            Plan::Restart {
                stop: vec![3, 2],
                remove: vec![],
                start: vec![1, 2, 3]
            }
        );
    }

    #[test]
    fn transient_normal_exit_and_temporary_exit_are_ignored() {
        let kids = [view(Tr), view(T)];
        let p = planner(Strategy::OneForAll);
        let mut tracker = IntensityTracker::new();
        let normal = ExitEvent {
            kind: ExitKind::Normal,
            ..abnormal(0)
        };
        assert_eq!(
            p.plan(&kids, &mut tracker, normal),
            Plan::Ignore { remove: false }
        );
        assert_eq!(
            p.plan(&kids, &mut tracker, abnormal(1)),
            Plan::Ignore { remove: true }
        );
        assert_eq!(tracker.count(&p.intensity, Instant::now()), 0);
    }

    #[test]
    fn stopped_siblings_are_not_stopped_again_but_are_restarted() {
        let kids = [
            ChildView {
                restart: Tr,
                state: ChildState::Stopped,
            },
            view(P),
        ];
        let plan =
            planner(Strategy::OneForAll).plan(&kids, &mut IntensityTracker::new(), abnormal(1));
        assert_eq!(
            plan,
            Plan::Restart {
                stop: vec![],
                remove: vec![],
                start: vec![0, 1]
            }
        );
    }

    #[test]
    fn exceeding_intensity_escalates_and_stops_everything_in_reverse() {
        let kids = [view(P), view(P), view(P)];
        let mut p = planner(Strategy::OneForOne);
        p.intensity.max_restarts = 1;
        let mut tracker = IntensityTracker::new();
        assert!(matches!(
            p.plan(&kids, &mut tracker, abnormal(0)),
            Plan::Restart { .. }
        ));
        assert_eq!(
            p.plan(&kids, &mut tracker, abnormal(1)),
            Plan::Escalate { stop: vec![2, 0] }
        );
    }

    /// A child of the model supervisor in the property tests.
    #[derive(Clone, Debug)]
    struct ModelChild {
        id: usize,
        view: ChildView,
    }

    fn restart_type() -> impl Strategy2<Value = RestartType> {
        prop_oneof![Just(P), Just(Tr), Just(T)]
    }

    use proptest::strategy::Strategy as Strategy2;

    fn strategy() -> impl Strategy2<Value = Strategy> {
        prop_oneof![
            Just(Strategy::OneForOne),
            Just(Strategy::OneForAll),
            Just(Strategy::RestForOne)
        ]
    }

    /// (child selector, abnormal?, milliseconds since the previous event)
    fn events() -> impl Strategy2<Value = Vec<(usize, bool, u64)>> {
        proptest::collection::vec((0usize..64, any::<bool>(), 0u64..400), 1..60)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Drives a model supervisor through random exits and checks every plan against the OTP
        /// rules, and the intensity limit against an independent sliding-window count.
        #[test]
        fn plans_follow_otp_rules(
            strat in strategy(),
            types in proptest::collection::vec(restart_type(), 1..8),
            max_restarts in 0u32..6,
            period_ms in 1u64..1000,
            evs in events(),
        ) {
            let planner = Planner {
                strategy: strat,
                intensity: Intensity { max_restarts, period: Duration::from_millis(period_ms) },
            };
            let mut tracker = IntensityTracker::new();
            let mut kids: Vec<ModelChild> = types
                .iter()
                .enumerate()
                .map(|(id, &restart)| ModelChild { id, view: view(restart) })
                .collect();
            let mut restart_times: Vec<Instant> = Vec::new();
            let t0 = Instant::now();
            let mut now = t0;
            for (sel, is_abnormal, dt) in evs {
                now += Duration::from_millis(dt);
                let running: Vec<usize> = (0..kids.len())
                    .filter(|&i| kids[i].view.state == ChildState::Running)
                    .collect();
                if running.is_empty() {
                    break;
                }
                let child = running[sel % running.len()];
                let kind = if is_abnormal { ExitKind::Abnormal } else { ExitKind::Normal };
                let views: Vec<ChildView> = kids.iter().map(|k| k.view).collect();
                let plan = planner.plan(&views, &mut tracker, ExitEvent { child, kind, at: now });
                let restart = kids[child].view.restart;
                if !restart.should_restart(kind) {
                    prop_assert_eq!(&plan, &Plan::Ignore { remove: restart == T });
                    if restart == T {
                        kids.remove(child);
                    } else {
                        kids[child].view.state = ChildState::Stopped;
                    }
                    continue;
                }
                restart_times.push(now);
                let in_window = restart_times
                    .iter()
                    .filter(|&&t| now.saturating_duration_since(t) < planner.intensity.period)
                    .count();
                let all_running_rev: Vec<usize> =
                    running.iter().rev().copied().filter(|&i| i != child).collect();
                if in_window > max_restarts as usize {
                    prop_assert_eq!(&plan, &Plan::Escalate { stop: all_running_rev });
                    return Ok(());
                }
                let Plan::Restart { stop, remove, start } = plan else {
                    return Err(TestCaseError::fail(format!("expected a restart, got {plan:?}")));
                };
                let affected: Vec<usize> = match strat {
                    Strategy::OneForOne => vec![child],
                    Strategy::OneForAll => (0..kids.len()).collect(),
                    Strategy::RestForOne => (child..kids.len()).collect(),
                };
                let expect_stop: Vec<usize> = affected
                    .iter()
                    .rev()
                    .copied()
                    .filter(|&i| i != child && kids[i].view.state == ChildState::Running)
                    .collect();
                let expect_remove: Vec<usize> = affected
                    .iter()
                    .copied()
                    .filter(|&i| i != child && kids[i].view.restart == T)
                    .collect();
                let expect_start: Vec<usize> = affected
                    .iter()
                    .copied()
                    .filter(|i| !expect_remove.contains(i))
                    .collect();
                // Stop order is reverse start order, start order is start order.
                prop_assert!(stop.windows(2).all(|w| w[0] > w[1]));
                prop_assert!(start.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(start.contains(&child));
                prop_assert!(!stop.contains(&child));
                prop_assert_eq!(&stop, &expect_stop);
                prop_assert_eq!(&remove, &expect_remove);
                prop_assert_eq!(&start, &expect_start);
                for &i in &start {
                    kids[i].view.state = ChildState::Running;
                }
                for &i in remove.iter().rev() {
                    kids.remove(i);
                }
                // Ids never get reordered by removals.
                prop_assert!(kids.windows(2).all(|w| w[0].id < w[1].id));
            }
            // Never more than max_restarts within any period without escalating.
            for (i, &t) in restart_times.iter().enumerate() {
                let n = restart_times[..=i]
                    .iter()
                    .filter(|&&s| t.saturating_duration_since(s) < planner.intensity.period)
                    .count();
                prop_assert!(n <= max_restarts as usize);
            }
        }
    }
}
