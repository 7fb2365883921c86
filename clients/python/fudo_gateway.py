"""High-availability gateway client for fudo, built on a plain Triton gRPC client.

This module gives Python gateways the behaviour of fudo's Rust gateway client library
(``src/client.rs``) on top of an unmodified ``tritonclient.grpc.InferenceServerClient``:

- every call has a deadline (sent to the server as ``grpc-timeout`` and enforced locally);
- retryable failures (``UNAVAILABLE``, ``RESOURCE_EXHAUSTED``, transport ``UNKNOWN``, and an
  attempt timeout while the call still has time left) are retried on a *different* endpoint
  while attempts and deadline remain; everything else is raised at once;
- an optional per-attempt timeout, so a frozen or black-holed node costs one attempt timeout,
  not the whole deadline;
- optional hedging of stateless calls within a budget;
- ejection of an endpoint after consecutive failures, re-admission when a background prober
  sees grpc.health.v1 ``SERVING`` (or when a call on it succeeds);
- sticky recurrent sessions that carry fudo's ``sequence_seq`` (idempotent retries) and keep a
  bounded replay buffer above the server's ``durable_watermark``, so a session survives moving
  to a node whose stored snapshot is a few steps behind.

See ``docs/python-gateway.md`` for the protocol this implements. Only ``tritonclient[grpc]``,
``grpcio`` (its dependency) and ``numpy`` are needed: the health check is a raw gRPC unary
call with hand-encoded protobuf bytes, so ``grpcio-health-checking`` is not required.

Example::

    eps = [Endpoint("10.0.0.5:8001", "eu-west", "a"), Endpoint("10.0.1.5:8001", "eu-west", "b")]
    with GatewayClient(eps, deadline_s=0.2, attempt_timeout_s=0.05) as gw:
        action = gw.infer("ppo_mlp", obs).as_numpy("action")
        s = gw.session(42)
        r = s.step(obs_row)
        s.end()
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import random
import re
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

__all__ = [
    "HEALTH_SERVICE",
    "RETRYABLE",
    "AttemptRecord",
    "Endpoint",
    "EndpointStatus",
    "GatewayClient",
    "GatewayError",
    "GatewayStats",
    "Session",
    "is_retryable",
]

#: The service name probed with grpc.health.v1 ``Check``.
HEALTH_SERVICE = "inference.GRPCInferenceService"
#: Statuses that may succeed on another node.
RETRYABLE = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED"})

_HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
_SERVING = 1
# A decaying window for the hedge budget: when this many calls were counted, both counters halve.
_BUDGET_WINDOW = 1000
_EXPECTED_SEQ = re.compile(r"expected seq (\d+)")


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One fudo node the client may call.

    Attributes:
        url: gRPC address, ``host:port`` (an ``http://`` prefix is accepted and stripped).
        region: Region of the node; calls prefer ``GatewayClient(preferred_region=...)``.
        az: Availability zone of the node (reported in :class:`EndpointStatus`).
    """

    url: str
    region: str = ""
    az: str = ""


@dataclasses.dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a call, as reported in :class:`GatewayError`.

    Attributes:
        endpoint: URL of the endpoint the attempt went to.
        status: gRPC status name (``"OK"`` for a success, e.g. ``"UNAVAILABLE"``).
        message: The server's (or the transport's) message; empty on success.
        elapsed_s: How long the attempt took.
        hedge: Whether this was a hedged copy.
        replay: Whether this re-sent a buffered session step.
    """

    endpoint: str
    status: str
    message: str
    elapsed_s: float
    hedge: bool = False
    replay: bool = False


class GatewayError(Exception):
    """A call failed.

    Attributes:
        status: gRPC status name: the non-retryable status the server sent (e.g.
            ``"INVALID_ARGUMENT"``), ``"DEADLINE_EXCEEDED"`` when the call's deadline passed,
            or the last retryable status (e.g. ``"UNAVAILABLE"``) when attempts ran out.
        message: What went wrong (the server's message for a non-retryable status).
        attempts: Every attempt made, in the order they finished.
    """

    def __init__(self, status: str, message: str, attempts: Sequence[AttemptRecord]) -> None:
        self.status = status
        self.message = message
        self.attempts = list(attempts)
        super().__init__(f"{status}: {message} ({len(self.attempts)} attempt(s))")


@dataclasses.dataclass(frozen=True)
class EndpointStatus:
    """A snapshot of one endpoint's state (see :meth:`GatewayClient.endpoints`)."""

    url: str
    region: str
    az: str
    ejected: bool
    in_flight: int
    consecutive_failures: int


@dataclasses.dataclass(frozen=True)
class GatewayStats:
    """Lifetime counters of a :class:`GatewayClient`."""

    calls: int
    attempts: int
    hedges: int
    replays: int


def is_retryable(status: str, message: str = "") -> bool:
    """Whether a status may succeed on another node.

    ``UNAVAILABLE`` and ``RESOURCE_EXHAUSTED`` are; ``UNKNOWN`` is when its message shows a
    transport failure. Deadline expiry is handled separately (see ``attempt_timeout_s``).
    """
    if status in RETRYABLE:
        return True
    if status == "UNKNOWN":
        m = message.lower()
        return "transport" in m or "connect" in m
    return False


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _normalize_url(url: str) -> str:
    for prefix in ("http://", "grpc://"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _encode_health_request(service: str) -> bytes:
    """``HealthCheckRequest { string service = 1; }`` as protobuf bytes."""
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data


def _decode_health_status(data: bytes) -> int:
    """``HealthCheckResponse.status`` (field 1, enum) from protobuf bytes; 0 when absent."""
    i, status = 0, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            if field == 1:
                status = value
        elif wire == 2:
            length, i = _read_varint(data, i)
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return status


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift, value = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _param(result: grpcclient.InferResult, name: str) -> Any:
    """A response parameter's value, or ``None`` when the response does not carry it."""
    params = result.get_response().parameters
    if name not in params:
        return None
    p = params[name]
    which = p.WhichOneof("parameter_choice")
    return getattr(p, which) if which else None


@dataclasses.dataclass
class _Outcome:
    """What one attempt produced."""

    result: grpcclient.InferResult | None
    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.result is not None


class _EndpointState:
    """An endpoint's clients and counters (counters guarded by the client's lock)."""

    def __init__(self, endpoint: Endpoint, keepalive_s: float | None) -> None:
        self.endpoint = endpoint
        self.url = _normalize_url(endpoint.url)
        keepalive = None
        if keepalive_s is not None:
            ms = max(1, int(keepalive_s * 1000))
            keepalive = grpcclient.KeepAliveOptions(
                keepalive_time_ms=ms,
                keepalive_timeout_ms=ms,
                keepalive_permit_without_calls=True,
                http2_max_pings_without_data=0,
            )
        self.client = grpcclient.InferenceServerClient(self.url, keepalive_options=keepalive)
        self.health_channel = grpc.insecure_channel(self.url)
        self.health_check = self.health_channel.unary_unary(_HEALTH_CHECK_METHOD)
        self.in_flight = 0
        self.failures = 0
        self.ejected = False

    def close(self) -> None:
        self.client.close()
        self.health_channel.close()


class _Call:
    """Per-call bookkeeping: deadline, endpoints tried, attempts made."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline = time.monotonic() + deadline_s
        self.tried: list[int] = []
        self.started = 0
        self.last: _Outcome | None = None
        self.records: list[AttemptRecord] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def record(self, rec: AttemptRecord) -> None:
        with self._lock:
            self.records.append(rec)

    def snapshot(self) -> list[AttemptRecord]:
        with self._lock:
            return list(self.records)


def _obs_input(obs: np.ndarray) -> grpcclient.InferInput:
    arr = np.ascontiguousarray(obs, dtype=np.float32)
    inp = grpcclient.InferInput("obs", list(arr.shape), "FP32")
    inp.set_data_from_numpy(arr)
    return inp


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class GatewayClient:
    """Calls a set of fudo nodes with deadlines, retries, hedging, ejection and sessions.

    Holds one ``tritonclient.grpc.InferenceServerClient`` per endpoint (plus a raw gRPC
    channel for health checks) and a daemon thread that probes ejected endpoints. Thread-safe:
    share one instance between threads. Call :meth:`close` (or use it as a context manager).

    Args:
        endpoints: The nodes to call; at least one.
        deadline_s: Deadline of one call, retries and hedges included.
        attempt_timeout_s: Limit of one attempt within the deadline (``None``: an attempt may
            use the whole remaining deadline). An attempt that hits it counts against its node
            and the call is retried elsewhere. As in the Rust client, the last attempt a call
            may make is not capped (it gets the remaining deadline).
        max_attempts: Attempts per call, hedges included.
        eject_after: Consecutive failures (retryable statuses or timeouts) that eject a node.
        probe_interval_s: How often ejected nodes are health-checked.
        preferred_region: Region tried first when several nodes are healthy.
        hedge_after_s: Send a second copy of a stateless call to another node when the first
            has not answered after this long (``None``: no hedging). Sessions are never hedged.
        hedge_budget: Largest share of calls that may be hedged (0..1).
        keepalive_s: HTTP/2 keep-alive ping interval and timeout (``None`` disables), so a
            dead connection is noticed without waiting for a call.
        hedge_workers: Size of the thread pool that runs hedged attempts.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        deadline_s: float = 0.2,
        attempt_timeout_s: float | None = None,
        max_attempts: int = 3,
        eject_after: int = 3,
        probe_interval_s: float = 0.2,
        preferred_region: str | None = None,
        hedge_after_s: float | None = None,
        hedge_budget: float = 0.1,
        keepalive_s: float | None = 1.0,
        hedge_workers: int = 16,
    ) -> None:
        if not endpoints:
            raise ValueError("no endpoints")
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        if attempt_timeout_s is not None and attempt_timeout_s <= 0:
            raise ValueError("attempt_timeout_s must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if eject_after < 1:
            raise ValueError("eject_after must be at least 1")
        if probe_interval_s <= 0:
            raise ValueError("probe_interval_s must be positive")
        if hedge_after_s is not None and hedge_after_s < 0:
            raise ValueError("hedge_after_s must not be negative")
        if not 0.0 <= hedge_budget <= 1.0:
            raise ValueError("hedge_budget must be in [0, 1]")
        self.deadline_s = deadline_s
        self.attempt_timeout_s = attempt_timeout_s
        self.max_attempts = max_attempts
        self.eject_after = eject_after
        self.probe_interval_s = probe_interval_s
        self.preferred_region = preferred_region
        self.hedge_after_s = hedge_after_s
        self.hedge_budget = hedge_budget
        self._lock = threading.Lock()
        self._endpoints: list[_EndpointState] = []
        try:
            for e in endpoints:
                self._endpoints.append(_EndpointState(e, keepalive_s))
        except Exception:
            for st in self._endpoints:
                st.close()
            raise
        self._calls = 0
        self._attempts = 0
        self._hedges = 0
        self._replays = 0
        self._budget_calls = 0
        self._budget_hedged = 0
        self._closed = False
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if hedge_after_s is not None and len(self._endpoints) > 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=hedge_workers, thread_name_prefix="fudo-hedge"
            )
        self._stop = threading.Event()
        self._prober = threading.Thread(
            target=GatewayClient._probe_loop,
            args=(weakref.ref(self), self._stop, probe_interval_s),
            name="fudo-gateway-prober",
            daemon=True,
        )
        self._prober.start()

    # ---- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stops the prober and the hedge pool and closes every channel. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._prober is not threading.current_thread():
            self._prober.join(timeout=max(1.0, 2 * self.probe_interval_s + self.deadline_s))
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for st in self._endpoints:
            st.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()

    # ---- public API ------------------------------------------------------------------------

    def infer(
        self,
        model: str,
        obs: np.ndarray,
        outputs: Sequence[str] | None = None,
        deadline_s: float | None = None,
    ) -> grpcclient.InferResult:
        """Runs a stateless inference on any healthy node, with retries and (if configured)
        hedging.

        Args:
            model: Model name, e.g. ``"ppo_mlp"``.
            obs: ``[batch, obs_dim]`` observations (converted to FP32).
            outputs: Output tensors to request (default: all of them).
            deadline_s: Overrides the client's deadline for this call.

        Raises:
            GatewayError: a non-retryable status (raised at once), or no success within the
                attempts and the deadline.
        """
        self._check_open()
        with self._lock:
            self._calls += 1
            self._budget_calls += 1
            if self._budget_calls >= _BUDGET_WINDOW:
                self._budget_calls //= 2
                self._budget_hedged //= 2
        kwargs = self._request(model, obs, outputs)
        call = _Call(self.deadline_s if deadline_s is None else deadline_s)
        first = True
        while True:
            idx = self._next_endpoint(call, None)
            if idx is None:
                raise self._give_up(call)
            if first and self._pool is not None:
                outcome = self._hedged_attempt(idx, kwargs, call)
            else:
                outcome = self._attempt(idx, kwargs, call)
            first = False
            if outcome.ok:
                assert outcome.result is not None
                return outcome.result
            self._on_error(outcome, call)

    def session(
        self,
        session_id: int,
        model: str = "lstm_policy",
        replay_limit: int = 64,
        deadline_s: float | None = None,
    ) -> Session:
        """A recurrent session (see :class:`Session`).

        Args:
            session_id: Triton ``sequence_id`` (non-zero int).
            model: Recurrent model name.
            replay_limit: Most steps kept in the replay buffer above the durable watermark.
            deadline_s: Deadline of one step, replays after a failover included (default: the
                client's deadline).
        """
        self._check_open()
        return Session(self, session_id, model, replay_limit, deadline_s)

    def endpoints(self) -> list[EndpointStatus]:
        """A snapshot of every endpoint's state, in configuration order."""
        with self._lock:
            return [
                EndpointStatus(
                    url=st.url,
                    region=st.endpoint.region,
                    az=st.endpoint.az,
                    ejected=st.ejected,
                    in_flight=st.in_flight,
                    consecutive_failures=st.failures,
                )
                for st in self._endpoints
            ]

    def stats(self) -> GatewayStats:
        """Lifetime counters: calls, attempts (retries, hedges and replays included), hedges,
        replayed session steps."""
        with self._lock:
            return GatewayStats(self._calls, self._attempts, self._hedges, self._replays)

    # ---- call machinery ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("GatewayClient is closed")

    @staticmethod
    def _request(
        model: str,
        obs: np.ndarray,
        outputs: Sequence[str] | None,
        **extra: Any,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model_name": model, "inputs": [_obs_input(obs)]}
        if outputs is not None:
            kwargs["outputs"] = [grpcclient.InferRequestedOutput(o) for o in outputs]
        kwargs.update(extra)
        return kwargs

    def _next_endpoint(self, call: _Call, sticky: int | None) -> int | None:
        """The endpoint for the next attempt, or ``None`` when attempts or time are used up."""
        if call.started >= self.max_attempts or call.remaining() <= 0:
            return None
        with self._lock:
            if sticky is not None and not self._endpoints[sticky].ejected:
                return sticky
            return self._pick(call.tried)

    def _pick(self, tried: list[int]) -> int:
        """Never the last endpoint tried (unless it is the only one), then by (ejected, already
        tried, outside the preferred region, in flight), ties at random. Ejected endpoints are
        still chosen when nothing else is left (fail open). Caller holds the lock."""
        last = tried[-1] if tried else None
        n = len(self._endpoints)
        best: tuple[Any, ...] | None = None
        best_idx = 0
        for i, st in enumerate(self._endpoints):
            if n > 1 and i == last:
                continue
            key = (
                st.ejected,
                i in tried,
                self.preferred_region is not None and st.endpoint.region != self.preferred_region,
                st.in_flight,
                random.random(),
            )
            if best is None or key < best:
                best, best_idx = key, i
        return best_idx

    def _attempt_budget(self, call: _Call) -> float:
        """The remaining deadline, capped by the attempt timeout unless this is the last attempt
        the call may make."""
        remaining = call.remaining()
        if self.attempt_timeout_s is not None and call.started < self.max_attempts:
            return min(self.attempt_timeout_s, remaining)
        return remaining

    def _attempt(
        self,
        idx: int,
        kwargs: dict[str, Any],
        call: _Call,
        *,
        hedge: bool = False,
        replay: bool = False,
        count: bool = True,
    ) -> _Outcome:
        """Starts an attempt on ``idx`` (counted against the call unless ``count`` is false)
        and runs it."""
        if count:
            call.started += 1
        call.tried.append(idx)
        budget = self._attempt_budget(call)
        return self._run_attempt(idx, kwargs, call, budget, hedge=hedge, replay=replay)

    def _run_attempt(
        self,
        idx: int,
        kwargs: dict[str, Any],
        call: _Call,
        budget: float,
        *,
        hedge: bool = False,
        replay: bool = False,
    ) -> _Outcome:
        """One request to endpoint ``idx`` with ``budget`` as its timeout; updates the endpoint's
        counters. Safe to run on a pool thread."""
        st = self._endpoints[idx]
        with self._lock:
            self._attempts += 1
            if replay:
                self._replays += 1
            st.in_flight += 1
        start = time.monotonic()
        try:
            if budget <= 0:
                outcome = _Outcome(None, "DEADLINE_EXCEEDED", "client deadline exceeded")
            else:
                try:
                    result = st.client.infer(client_timeout=budget, **kwargs)
                    outcome = _Outcome(result, "OK", "")
                except InferenceServerException as e:
                    status = (e.status() or "UNKNOWN").removeprefix("StatusCode.")
                    message = e.message() or ""
                    # fudo (tonic) may answer CANCELLED when the deadline had passed on arrival;
                    # this client never cancels its own attempts, so it means the same as
                    # DEADLINE_EXCEEDED.
                    if status == "CANCELLED":
                        status = "DEADLINE_EXCEEDED"
                    outcome = _Outcome(None, status, message)
        finally:
            elapsed = time.monotonic() - start
            with self._lock:
                st.in_flight -= 1
        with self._lock:
            if outcome.ok:
                self._record_success(st)
            elif is_retryable(outcome.status, outcome.message) or (
                outcome.status == "DEADLINE_EXCEEDED"
            ):
                # A local timeout counts against the node: a frozen node would otherwise never
                # be ejected.
                st.failures += 1
                if st.failures >= self.eject_after:
                    st.ejected = True
            else:
                # The node answered; the request was at fault.
                self._record_success(st)
        call.record(
            AttemptRecord(st.url, outcome.status, outcome.message, elapsed, hedge, replay)
        )
        return outcome

    @staticmethod
    def _record_success(st: _EndpointState) -> None:
        st.failures = 0
        st.ejected = False

    def _try_acquire_hedge(self) -> bool:
        with self._lock:
            if self._budget_hedged + 1 <= self.hedge_budget * self._budget_calls:
                self._budget_hedged += 1
                self._hedges += 1
                return True
            return False

    def _hedged_attempt(self, idx: int, kwargs: dict[str, Any], call: _Call) -> _Outcome:
        """The first attempt of a hedged call: wait up to ``hedge_after_s``, then (budget
        allowing) race a second copy on another endpoint and take the first success."""
        assert self._pool is not None and self.hedge_after_s is not None
        call.started += 1
        call.tried.append(idx)
        budget = self._attempt_budget(call)
        first = self._pool.submit(self._run_attempt, idx, kwargs, call, budget)
        try:
            return first.result(timeout=self.hedge_after_s)
        except concurrent.futures.TimeoutError:
            pass
        second_idx = self._next_endpoint(call, None)
        if second_idx is None or second_idx == idx or not self._try_acquire_hedge():
            return first.result()
        call.started += 1
        call.tried.append(second_idx)
        budget2 = self._attempt_budget(call)
        second = self._pool.submit(
            self._run_attempt, second_idx, kwargs, call, budget2, hedge=True
        )
        done, _ = concurrent.futures.wait(
            [first, second], return_when=concurrent.futures.FIRST_COMPLETED
        )
        winner = first if first in done else second
        other = second if winner is first else first
        outcome = winner.result()
        if not outcome.ok and (
            is_retryable(outcome.status, outcome.message)
            or outcome.status == "DEADLINE_EXCEEDED"
        ):
            call.last = outcome
            return other.result()
        return outcome

    def _on_error(self, outcome: _Outcome, call: _Call) -> None:
        """Returns to retry, raises :class:`GatewayError` to give up."""
        if outcome.status == "DEADLINE_EXCEEDED":
            # An attempt timeout with time left on the call is retried elsewhere.
            if self.attempt_timeout_s is not None and call.remaining() > 0:
                call.last = outcome
                return
            raise GatewayError(
                "DEADLINE_EXCEEDED",
                f"deadline exceeded: {outcome.message}",
                call.snapshot(),
            )
        if not is_retryable(outcome.status, outcome.message):
            raise GatewayError(outcome.status, outcome.message, call.snapshot())
        call.last = outcome

    def _give_up(self, call: _Call) -> GatewayError:
        """The error for a call that ran out of attempts or time."""
        last = call.last
        detail = f"last error: {last.status}: {last.message}" if last else "no attempt finished"
        if last is not None and call.started >= self.max_attempts:
            return GatewayError(
                last.status, f"all {call.started} attempt(s) failed; {detail}", call.snapshot()
            )
        return GatewayError(
            "DEADLINE_EXCEEDED",
            f"deadline exceeded after {call.started} attempt(s); {detail}",
            call.snapshot(),
        )

    # ---- sessions ---------------------------------------------------------------------------

    def _session_step(
        self,
        sess: Session,
        seq: int,
        obs_row: np.ndarray,
        start: bool,
        end: bool,
    ) -> grpcclient.InferResult:
        """Runs step ``seq`` of ``sess`` on its sticky endpoint, moving it on retryable failures
        and replaying buffered steps when the new node is behind. Never hedged."""
        with self._lock:
            self._calls += 1
        call = _Call(self.deadline_s if sess.deadline_s is None else sess.deadline_s)
        sticky = sess.endpoint_index
        recovered: set[int] = set()
        while True:
            idx = self._next_endpoint(call, sticky)
            sticky = None
            if idx is None:
                raise self._give_up(call)
            sess.endpoint_index = idx
            kwargs = sess.request(seq, obs_row, start, end)
            outcome = self._attempt(idx, kwargs, call)
            if outcome.ok:
                assert outcome.result is not None
                return outcome.result
            if outcome.status == "FAILED_PRECONDITION" and idx not in recovered:
                resume = sess.resume_point(outcome.message, seq)
                if resume is not None:
                    recovered.add(idx)
                    replayed = self._replay(sess, idx, resume, seq, call)
                    if replayed is None:
                        # The node now has every step before ``seq``: send the current one again
                        # (a replay, not a new attempt).
                        call.started -= 1
                        sticky = idx
                        continue
                    outcome = replayed
            self._on_error(outcome, call)

    def _replay(
        self, sess: Session, idx: int, resume: int, seq: int, call: _Call
    ) -> _Outcome | None:
        """Re-sends buffered steps ``resume..seq-1`` to ``idx``; ``None`` when all succeeded,
        else the failed outcome. Replays are bounded by the deadline, not by attempts."""
        for r_seq, r_obs, r_start in sess.buffered(resume, seq):
            kwargs = sess.request(r_seq, r_obs, r_start, False)
            call.tried.append(idx)
            budget = call.remaining()
            if self.attempt_timeout_s is not None:
                budget = min(budget, self.attempt_timeout_s)
            outcome = self._run_attempt(idx, kwargs, call, budget, replay=True)
            if not outcome.ok:
                return outcome
            assert outcome.result is not None
            sess.observe(outcome.result)
        return None

    # ---- health prober ----------------------------------------------------------------------

    @staticmethod
    def _probe_loop(
        ref: weakref.ReferenceType[GatewayClient], stop: threading.Event, interval: float
    ) -> None:
        """Health-checks ejected endpoints every ``interval`` and re-admits those that answer
        ``SERVING``. Holds only a weak reference between rounds, so it ends when the client is
        closed or garbage-collected."""
        request = _encode_health_request(HEALTH_SERVICE)
        while not stop.wait(interval):
            client = ref()
            if client is None:
                return
            timeout = max(client.deadline_s, interval)
            with client._lock:
                probes = [(i, st) for i, st in enumerate(client._endpoints) if st.ejected]
            futures = []
            for i, st in probes:
                try:
                    futures.append((i, st.health_check.future(request, timeout=timeout)))
                except Exception:  # noqa: BLE001 - a closed channel during shutdown
                    continue
            del client
            for i, fut in futures:
                try:
                    serving = _decode_health_status(fut.result()) == _SERVING
                except Exception:  # noqa: BLE001 - timeouts, refused connections, bad bytes
                    serving = False
                if not serving:
                    continue
                client = ref()
                if client is None:
                    return
                with client._lock:
                    st = client._endpoints[i]
                    st.failures = 0
                    st.ejected = False
                del client


class Session:
    """A recurrent session: sticky to one node, idempotent steps, replay after failover.

    Each :meth:`step` sends Triton's ``sequence_id``, ``sequence_start`` (first step only) and
    fudo's ``sequence_seq`` (1-based; it advances only when a step succeeds, so a retried step
    keeps its seq and the server answers it idempotently). The session stays on one endpoint
    until an attempt there fails with a retryable status (or the endpoint is ejected); then it
    moves. Steps above the server's ``durable_watermark`` stay in a bounded replay buffer: when
    the new node answers ``FAILED_PRECONDITION`` "expected seq N" (its stored snapshot is behind)
    or "not started" (nothing stored yet), the buffered steps from N on are re-sent to it with
    their original seqs before the current step. Thread-safe (steps are serialized).

    Create with :meth:`GatewayClient.session`.
    """

    def __init__(
        self,
        client: GatewayClient,
        session_id: int,
        model: str,
        replay_limit: int,
        deadline_s: float | None,
    ) -> None:
        if session_id == 0:
            raise ValueError("session_id must be non-zero (0 means no sequence)")
        if replay_limit < 1:
            raise ValueError("replay_limit must be at least 1")
        self._client = client
        self.session_id = session_id
        self.model = model
        self.deadline_s = deadline_s
        #: Endpoint index the session is pinned to (``None`` before its first step).
        self.endpoint_index: int | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self._watermark = 0
        # The newest owner_epoch seen, sent back as fudo_min_epoch: a node that holds the
        # session under an older epoch takes it over again before answering.
        self._max_epoch = 0
        self._ended = False
        # (seq, obs_row, sequence_start) of steps above the durable watermark.
        self._buffer: collections.deque[tuple[int, np.ndarray, bool]] = collections.deque(
            maxlen=replay_limit
        )

    @property
    def seq(self) -> int:
        """The seq of the last successful step (0 before the first)."""
        return self._seq

    @property
    def durable_watermark(self) -> int:
        """The highest seq the session store has acknowledged, as last reported."""
        return self._watermark

    @property
    def endpoint(self) -> str | None:
        """URL of the endpoint the session is pinned to."""
        i = self.endpoint_index
        return None if i is None else self._client._endpoints[i].url

    def buffered_seqs(self) -> list[int]:
        """Seqs currently held in the replay buffer."""
        with self._lock:
            return [s for s, _, _ in self._buffer]

    def step(self, obs_row: np.ndarray, end: bool = False) -> grpcclient.InferResult:
        """Runs the next step with one observation row (``[obs_dim]`` or ``[1, obs_dim]``).

        Args:
            obs_row: The observation.
            end: Send ``sequence_end``: the session closes after this step.

        Raises:
            GatewayError: as :meth:`GatewayClient.infer`; the seq is not advanced, so calling
                ``step`` again with the same observation retries the same step.
            RuntimeError: the session has ended.
        """
        row = np.asarray(obs_row, dtype=np.float32).reshape(1, -1)
        with self._lock:
            if self._ended:
                raise RuntimeError(f"session {self.session_id} has ended")
            seq = self._seq + 1
            start = seq == 1
            result = self._client._session_step(self, seq, row, start, end)
            self._seq = seq
            if end:
                self._ended = True
                self._buffer.clear()
            else:
                self._buffer.append((seq, row, start))
                self.observe(result)
            return result

    def end(self, obs_row: np.ndarray | None = None) -> grpcclient.InferResult | None:
        """Ends the session: with ``obs_row``, runs it as the last step with ``sequence_end``
        and returns its result; without, just forgets the session on this side (the server
        evicts it after its idle TTL)."""
        if obs_row is not None:
            return self.step(obs_row, end=True)
        with self._lock:
            self._ended = True
            self._buffer.clear()
            self.endpoint_index = None
        return None

    # ---- used by GatewayClient (lock held by step) -----------------------------------------

    def request(self, seq: int, row: np.ndarray, start: bool, end: bool) -> dict[str, Any]:
        """The ``InferenceServerClient.infer`` arguments of step ``seq``."""
        return GatewayClient._request(
            self.model,
            row,
            None,
            sequence_id=self.session_id,
            sequence_start=start,
            sequence_end=end,
            parameters=(
                {"sequence_seq": seq, "fudo_min_epoch": self._max_epoch}
                if self._max_epoch > 0
                else {"sequence_seq": seq}
            ),
        )

    def observe(self, result: grpcclient.InferResult) -> None:
        """Drops buffered steps at or below the response's ``durable_watermark`` and notes its
        ``owner_epoch``."""
        epoch = _param(result, "owner_epoch")
        if isinstance(epoch, int) and epoch > self._max_epoch:
            self._max_epoch = epoch
        wm = _param(result, "durable_watermark")
        if isinstance(wm, int) and wm > self._watermark:
            self._watermark = wm
        while self._buffer and self._buffer[0][0] <= self._watermark:
            self._buffer.popleft()

    def resume_point(self, message: str, seq: int) -> int | None:
        """The seq to replay from after a FAILED_PRECONDITION, if the buffer can cover it."""
        m = _EXPECTED_SEQ.search(message)
        if m:
            resume = int(m.group(1))
        elif "not started" in message:
            resume = 1
        else:
            return None
        if not 1 <= resume < seq:
            return None
        have = {s for s, _, _ in self._buffer}
        if any(s not in have for s in range(resume, seq)):
            return None
        return resume

    def buffered(self, first: int, stop: int) -> list[tuple[int, np.ndarray, bool]]:
        """Buffered steps with ``first <= seq < stop``, in order."""
        return [b for b in self._buffer if first <= b[0] < stop]
