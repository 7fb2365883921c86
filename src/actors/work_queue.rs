//! The request queue and in-flight table of one model, owned by its router.
//!
//! Shards never own requests: a shard's worker thread takes a batch from here and the batch
//! stays in the in-flight table until its answers are delivered. When a shard dies, its
//! in-flight batches are put back at the front of the queue ([`WorkQueue::reclaim`]) and a live
//! shard runs them again, so the client sees no error; if the dead shard's thread still
//! finishes, its late answers find no in-flight entry and are dropped. Each request is answered
//! exactly once.
//!
//! The hot path is a mutex and a condition variable rather than actor messages: admission and
//! enqueue cost about a microsecond, and a worker thread can wait for a batch to fill with
//! microsecond resolution (tokio timers have millisecond resolution).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{InferError, Job, JobOutput};
use crate::model::{PolicyOutput, PolicySpec};

/// Identifies one worker thread (one generation of one shard).
pub type WorkerId = u64;

/// How a model's queue batches and admits work.
#[derive(Debug, Clone)]
pub struct QueueLimits {
    /// Most rows in one batch.
    pub max_batch: usize,
    /// Longest the oldest request waits for a batch to fill.
    pub max_wait: Duration,
    /// Most rows queued before new requests are shed.
    pub capacity: usize,
    /// Dispatches a request gets before shard failures give it up.
    pub max_attempts: u32,
}

/// A batch handed to a worker: the concatenated inputs of the jobs it holds in flight.
#[derive(Debug)]
pub struct Batch {
    /// In-flight table key.
    pub id: u64,
    /// Total rows.
    pub rows: usize,
    /// `rows * obs_dim` observations.
    pub obs: Vec<f32>,
    /// `rows * state_dim` states (empty for stateless policies).
    pub state: Vec<f32>,
}

struct InFlight {
    worker: WorkerId,
    jobs: Vec<Job>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    queued_rows: usize,
    in_flight: HashMap<u64, InFlight>,
    next_batch: u64,
}

/// Counters the router reports and `/metrics` exports.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Batches completed.
    pub batches: AtomicU64,
    /// Rows completed.
    pub rows: AtomicU64,
    /// Jobs put back in the queue after a shard failure.
    pub redispatched: AtomicU64,
    /// Requests shed because the queue was full or the deadline could not be met.
    pub shed: AtomicU64,
    /// Requests whose deadline passed while queued.
    pub expired: AtomicU64,
}

/// The request queue and in-flight table of one model.
pub struct WorkQueue {
    model: String,
    spec: PolicySpec,
    limits: QueueLimits,
    state: Mutex<State>,
    work_ready: Condvar,
    draining: AtomicBool,
    live_workers: AtomicUsize,
    /// Exponentially weighted mean time of one batch, in nanoseconds.
    batch_time_ewma_ns: AtomicU64,
    stats: QueueStats,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("model", &self.model)
            .field("limits", &self.limits)
            .field("depth", &self.depth())
            .finish()
    }
}

impl WorkQueue {
    /// An empty queue for `model`.
    pub fn new(model: impl Into<String>, spec: PolicySpec, limits: QueueLimits) -> Self {
        Self {
            model: model.into(),
            spec,
            limits,
            state: Mutex::new(State::default()),
            work_ready: Condvar::new(),
            draining: AtomicBool::new(false),
            live_workers: AtomicUsize::new(0),
            batch_time_ewma_ns: AtomicU64::new(0),
            stats: QueueStats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; recover the data if something ever did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The model this queue serves.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Batching and admission limits.
    pub fn limits(&self) -> &QueueLimits {
        &self.limits
    }

    /// Counters.
    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Rows waiting to be dispatched.
    pub fn depth(&self) -> usize {
        self.lock().queued_rows
    }

    /// Batches currently running on shards.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Worker threads currently taking batches.
    pub fn live_workers(&self) -> usize {
        self.live_workers.load(Ordering::Relaxed)
    }

    /// Stops admitting new requests; queued and in-flight ones still finish.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`WorkQueue::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Admits a job or says at once why not: draining, queue full, or a deadline that the work
    /// already queued makes impossible.
    pub fn submit(&self, job: Job) -> Result<(), InferError> {
        if self.is_draining() {
            return Err(InferError::Draining(self.model.clone()));
        }
        let mut state = self.lock();
        if state.queued_rows + job.rows > self.limits.capacity {
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
            let err = InferError::QueueFull {
                model: self.model.clone(),
                queued: state.queued_rows,
                capacity: self.limits.capacity,
            };
            return Err(err);
        }
        let estimate = self.estimate_wait(state.queued_rows + job.rows);
        let budget = job.deadline.saturating_duration_since(Instant::now());
        if estimate > budget {
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
            let err = InferError::DeadlineUnmeetable {
                budget_us: duration_us(budget),
                estimate_us: duration_us(estimate),
            };
            return Err(err);
        }
        state.queued_rows += job.rows;
        state.queue.push_back(job);
        drop(state);
        self.work_ready.notify_one();
        Ok(())
    }

    /// Estimated time until `rows` queued rows are answered, from the mean batch time.
    fn estimate_wait(&self, rows: usize) -> Duration {
        let ewma = self.batch_time_ewma_ns.load(Ordering::Relaxed);
        let workers = self.live_workers().max(1) as u64;
        let batches = rows.div_ceil(self.limits.max_batch) as u64;
        Duration::from_nanos(ewma.saturating_mul(batches) / workers)
    }

    /// Registers a worker thread as live (admission estimates divide work among them).
    pub fn worker_started(&self) {
        self.live_workers.fetch_add(1, Ordering::SeqCst);
    }

    /// Unregisters a worker thread that ended.
    pub fn worker_stopped(&self) {
        let _ = self
            .live_workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Removes a dead worker: its in-flight batches go back to the front of the queue, in
    /// their original order, to be run by a live shard.
    pub fn reclaim(&self, worker: WorkerId) {
        let mut state = self.lock();
        let mut ids: Vec<u64> = state
            .in_flight
            .iter()
            .filter(|(_, f)| f.worker == worker)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let mut requeue = Vec::new();
        for id in ids {
            if let Some(flight) = state.in_flight.remove(&id) {
                requeue.extend(flight.jobs);
            }
        }
        let mut given_up = Vec::new();
        for job in requeue.into_iter().rev() {
            if job.attempts >= self.limits.max_attempts {
                given_up.push(job);
            } else {
                self.stats.redispatched.fetch_add(1, Ordering::Relaxed);
                state.queued_rows += job.rows;
                state.queue.push_front(job);
            }
        }
        drop(state);
        self.work_ready.notify_all();
        for job in given_up {
            let attempts = job.attempts;
            tracing::error!(request_id = %job.request_id, attempts, "giving up on request after repeated shard failures");
            job.answer(Err(InferError::ShardsFailed { attempts }));
        }
    }

    /// Blocks the calling worker thread until a batch is ready: `max_batch` rows are queued,
    /// or the oldest request has waited `max_wait`. Returns `None` once `stop` is set.
    pub fn next_batch(&self, worker: WorkerId, stop: &AtomicBool) -> Option<Batch> {
        const IDLE_POLL: Duration = Duration::from_millis(20);
        let mut state = self.lock();
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            self.drop_dead_front(&mut state);
            let Some(front) = state.queue.front() else {
                state = self.wait(state, IDLE_POLL);
                continue;
            };
            let age = front.enqueued_at.elapsed();
            if state.queued_rows < self.limits.max_batch && age < self.limits.max_wait {
                let left = self.limits.max_wait - age;
                state = self.wait(state, left);
                continue;
            }
            return Some(self.take_batch(&mut state, worker));
        }
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        match self.work_ready.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    /// Answers or drops queued jobs at the front that nobody can use any more.
    fn drop_dead_front(&self, state: &mut State) {
        let now = Instant::now();
        while let Some(front) = state.queue.front() {
            let expired = front.deadline <= now;
            if !expired && !front.is_abandoned() {
                break;
            }
            let Some(job) = state.queue.pop_front() else {
                break;
            };
            state.queued_rows -= job.rows;
            if expired {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                let waited_us = duration_us(job.enqueued_at.elapsed());
                job.answer(Err(InferError::DeadlineExceeded { waited_us }));
            }
        }
    }

    fn take_batch(&self, state: &mut State, worker: WorkerId) -> Batch {
        let mut jobs = Vec::new();
        let mut rows = 0;
        while let Some(front) = state.queue.front() {
            if !jobs.is_empty() && rows + front.rows > self.limits.max_batch {
                break;
            }
            let Some(mut job) = state.queue.pop_front() else {
                break;
            };
            state.queued_rows -= job.rows;
            rows += job.rows;
            job.attempts += 1;
            jobs.push(job);
        }
        let mut obs = Vec::with_capacity(rows * self.spec.obs_dim);
        let mut st = Vec::with_capacity(rows * self.spec.state_dim);
        for job in &jobs {
            obs.extend_from_slice(&job.obs);
            st.extend_from_slice(&job.state);
        }
        let id = state.next_batch;
        state.next_batch += 1;
        state.in_flight.insert(id, InFlight { worker, jobs });
        Batch {
            id,
            rows,
            obs,
            state: st,
        }
    }

    /// Delivers a finished batch's answers. A batch that was reclaimed meanwhile (its shard
    /// was declared dead) is ignored: its jobs are already queued or answered elsewhere.
    pub fn complete(&self, batch_id: u64, output: PolicyOutput, served_by: &str, took: Duration) {
        let Some(flight) = self.lock().in_flight.remove(&batch_id) else {
            return;
        };
        self.record_batch_time(took);
        let (a, s) = (self.spec.n_actions, self.spec.state_dim);
        let mut row = 0;
        let mut rows_done = 0;
        for job in flight.jobs {
            let r = job.rows;
            let slice = |v: &[f32], width: usize| {
                v.get(row * width..(row + r) * width)
                    .map(<[f32]>::to_vec)
                    .unwrap_or_default()
            };
            let out = JobOutput {
                logits: slice(&output.logits, a),
                values: slice(&output.values, 1),
                actions: output
                    .actions
                    .get(row..row + r)
                    .map(<[i64]>::to_vec)
                    .unwrap_or_default(),
                state: if s > 0 {
                    slice(&output.state, s)
                } else {
                    Vec::new()
                },
                served_by: served_by.to_owned(),
            };
            row += r;
            rows_done += r as u64;
            job.answer(Ok(out));
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.rows.fetch_add(rows_done, Ordering::Relaxed);
    }

    /// Fails every job of a batch whose forward pass returned an error (not a panic).
    pub fn fail(&self, batch_id: u64, err: InferError) {
        let Some(flight) = self.lock().in_flight.remove(&batch_id) else {
            return;
        };
        for job in flight.jobs {
            job.answer(Err(err.clone()));
        }
    }

    fn record_batch_time(&self, took: Duration) {
        let sample = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        let _ = self
            .batch_time_ewma_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    (old * 7 + sample) / 8
                })
            });
    }
}

fn duration_us(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PolicySpec {
        PolicySpec {
            obs_dim: 2,
            n_actions: 2,
            state_dim: 0,
        }
    }

    fn queue(max_batch: usize, capacity: usize) -> WorkQueue {
        WorkQueue::new(
            "m",
            spec(),
            QueueLimits {
                max_batch,
                max_wait: Duration::from_micros(50),
                capacity,
                max_attempts: 2,
            },
        )
    }

    fn job(
        rows: usize,
    ) -> (
        Job,
        tokio::sync::oneshot::Receiver<Result<JobOutput, InferError>>,
    ) {
        Job::new(
            "r".into(),
            rows,
            vec![0.5; rows * 2],
            Vec::new(),
            Instant::now() + Duration::from_secs(5),
        )
    }

    fn output(rows: usize) -> PolicyOutput {
        PolicyOutput {
            logits: (0..rows * 2).map(|i| i as f32).collect(),
            values: (0..rows).map(|i| i as f32).collect(),
            actions: (0..rows).map(|i| i as i64).collect(),
            state: Vec::new(),
        }
    }

    #[test]
    fn batches_fill_up_to_max_batch_and_answers_split_by_job() {
        let q = queue(3, 100);
        let (a, mut ra) = job(2);
        let (b, mut rb) = job(1);
        let (c, _rc) = job(1);
        for j in [a, b, c] {
            q.submit(j).expect("submit");
        }
        let stop = AtomicBool::new(false);
        let batch = q.next_batch(1, &stop).expect("batch");
        assert_eq!(batch.rows, 3);
        assert_eq!(batch.obs.len(), 6);
        assert_eq!(q.depth(), 1);
        q.complete(batch.id, output(3), "s", Duration::from_micros(10));
        let a = ra.try_recv().expect("a answered").expect("ok");
        assert_eq!(a.actions, vec![0, 1]);
        assert_eq!(a.logits, vec![0.0, 1.0, 2.0, 3.0]);
        let b = rb.try_recv().expect("b answered").expect("ok");
        assert_eq!(b.actions, vec![2]);
        assert_eq!(b.values, vec![2.0]);
    }

    #[test]
    fn full_queue_sheds() {
        let q = queue(4, 4);
        let (a, _ra) = job(4);
        q.submit(a).expect("fits");
        let (b, _rb) = job(1);
        let err = q.submit(b).expect_err("shed");
        assert!(matches!(err, InferError::QueueFull { capacity: 4, .. }));
    }

    #[test]
    fn reclaimed_batches_run_again_and_late_answers_are_dropped() {
        let q = queue(8, 100);
        let (a, mut ra) = job(1);
        q.submit(a).expect("submit");
        let stop = AtomicBool::new(false);
        let first = q.next_batch(7, &stop).expect("batch");
        q.reclaim(7);
        assert_eq!(q.depth(), 1, "in-flight job is queued again");
        q.complete(first.id, output(1), "dead", Duration::from_micros(1));
        assert!(
            ra.try_recv().is_err(),
            "late answer from the dead shard is dropped"
        );
        let second = q.next_batch(8, &stop).expect("re-dispatched");
        q.complete(second.id, output(1), "live", Duration::from_micros(1));
        let out = ra.try_recv().expect("answered").expect("ok");
        assert_eq!(out.served_by, "live");
        assert_eq!(q.stats().redispatched.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn attempts_are_bounded() {
        let q = queue(8, 100);
        let (a, mut ra) = job(1);
        q.submit(a).expect("submit");
        let stop = AtomicBool::new(false);
        for worker in 0..2 {
            let _ = q.next_batch(worker, &stop).expect("batch");
            q.reclaim(worker);
        }
        let res = ra.try_recv().expect("answered");
        assert_eq!(res, Err(InferError::ShardsFailed { attempts: 2 }));
    }

    #[test]
    fn expired_jobs_are_answered_deadline_exceeded() {
        let q = queue(8, 100);
        let (mut a, mut ra) = job(1);
        a.deadline = Instant::now() + Duration::from_millis(1);
        q.submit(a).expect("submit");
        std::thread::sleep(Duration::from_millis(3));
        let (b, _rb) = job(1);
        q.submit(b).expect("submit");
        let stop = AtomicBool::new(false);
        let batch = q.next_batch(1, &stop).expect("batch");
        assert_eq!(batch.rows, 1);
        assert!(matches!(
            ra.try_recv().expect("answered"),
            Err(InferError::DeadlineExceeded { .. })
        ));
    }

    #[test]
    fn draining_refuses_new_work_and_stop_wakes_workers() {
        let q = queue(8, 100);
        q.drain();
        let (a, _ra) = job(1);
        assert!(matches!(q.submit(a), Err(InferError::Draining(_))));
        let stop = AtomicBool::new(true);
        assert!(q.next_batch(1, &stop).is_none());
    }

    #[test]
    fn unmeetable_deadline_is_rejected_at_once() {
        let q = queue(1, 100);
        q.record_batch_time(Duration::from_millis(10));
        for _ in 0..5 {
            let (j, _r) = job(1);
            q.submit(j).expect("submit");
        }
        let (mut late, _r) = job(1);
        late.deadline = Instant::now() + Duration::from_millis(20);
        let err = q.submit(late).expect_err("rejected");
        assert!(
            matches!(err, InferError::DeadlineUnmeetable { .. }),
            "{err}"
        );
    }
}
