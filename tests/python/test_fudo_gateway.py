"""clients/python/fudo_gateway.py against real `fudo serve` processes.

Starts fudo nodes (FUDO_BIN, default target/debug/fudo) on ephemeral ports and checks the
gateway behaviour: spreading, failover after kill -9 with ejection, attempt timeouts against a
frozen (SIGSTOP) node with health re-admission, immediate non-retryable errors, hedging, and a
recurrent session that moves to another node through Redis and replays the steps the store had
not acknowledged. The Redis test needs `redis-server` (skipped without it unless
FUDO_REQUIRE_REDIS=1).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))

from fudo_gateway import Endpoint, GatewayClient, GatewayError  # noqa: E402

OBS_DIM = 32


class Node:
    """One `fudo serve` process."""

    def __init__(self, name: str, extra: list[str]) -> None:
        binary = os.environ.get("FUDO_BIN", str(ROOT / "target" / "debug" / "fudo"))
        self.name = name
        self.proc = subprocess.Popen(
            [binary, "serve", "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
             "--set", f"server.node_name={name}", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.addr = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if '"listening"' in line:
                self.addr = json.loads(line)["grpc"]
                break
        else:
            raise RuntimeError(f"fudo serve {name} exited before listening")
        c = grpcclient.InferenceServerClient(self.addr)
        try:
            for _ in range(100):
                try:
                    if c.is_server_ready(client_timeout=1.0):
                        break
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                time.sleep(0.05)
            else:
                raise RuntimeError(f"fudo serve {name} never became ready")
        finally:
            c.close()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def start_nodes() -> Iterator[Callable[..., list[Node]]]:
    """Factory: start_nodes(n, *extra_args) -> nodes, all killed at teardown."""
    started: list[Node] = []

    def start(n: int, *extra: str, prefix: str = "node") -> list[Node]:
        nodes = []
        for i in range(n):
            node = Node(f"{prefix}-{len(started)}", list(extra))
            started.append(node)
            nodes.append(node)
        return nodes

    yield start
    for node in started:
        node.stop()


def endpoints(nodes: list[Node]) -> list[Endpoint]:
    return [Endpoint(n.addr, "local", f"az-{i}") for i, n in enumerate(nodes)]


def served_by(result: grpcclient.InferResult) -> str:
    return result.get_response().parameters["served_by"].string_param.split("/")[0]


def rand_obs(rng: np.random.Generator, rows: int = 1) -> np.ndarray:
    return rng.standard_normal((rows, OBS_DIM)).astype(np.float32)


def test_stateless_calls_spread_and_succeed(start_nodes):
    nodes = start_nodes(2)
    rng = np.random.default_rng(1)
    with GatewayClient(endpoints(nodes), deadline_s=1.0) as gw:
        seen = Counter(served_by(gw.infer("ppo_mlp", rand_obs(rng, 4))) for _ in range(60))
        assert set(seen) == {n.name for n in nodes}, seen
        assert all(c >= 5 for c in seen.values()), seen
        st = gw.stats()
        assert st.calls == 60 and st.attempts == 60
        assert not any(e.ejected for e in gw.endpoints())


def test_kill_9_mid_run_all_calls_succeed_and_dead_node_is_ejected(start_nodes):
    nodes = start_nodes(2)
    rng = np.random.default_rng(2)
    with GatewayClient(endpoints(nodes), deadline_s=0.5, probe_interval_s=0.05) as gw:
        for i in range(200):
            if i == 20:
                nodes[0].signal(signal.SIGKILL)
                nodes[0].proc.wait(timeout=5)
            r = gw.infer("ppo_mlp", rand_obs(rng))
            if i >= 20:
                assert served_by(r) == nodes[1].name
        status = {e.url: e for e in gw.endpoints()}
        assert status[nodes[0].addr].ejected
        assert not status[nodes[1].addr].ejected
        # Retries happened, but ejection kept them few.
        assert gw.stats().attempts - 200 <= 10


def test_frozen_node_costs_one_attempt_timeout_then_readmitted(start_nodes):
    nodes = start_nodes(2)
    rng = np.random.default_rng(3)
    deadline = 0.5
    with GatewayClient(
        endpoints(nodes), deadline_s=deadline, attempt_timeout_s=0.05, probe_interval_s=0.05
    ) as gw:
        gw.infer("ppo_mlp", rand_obs(rng))  # connect to both before freezing
        gw.infer("ppo_mlp", rand_obs(rng))
        nodes[0].signal(signal.SIGSTOP)
        try:
            worst = 0.0
            for _ in range(60):
                t0 = time.monotonic()
                r = gw.infer("ppo_mlp", rand_obs(rng))
                elapsed = time.monotonic() - t0
                worst = max(worst, elapsed)
                assert served_by(r) == nodes[1].name
                assert elapsed < deadline, elapsed
            status = {e.url: e for e in gw.endpoints()}
            assert status[nodes[0].addr].ejected
        finally:
            nodes[0].signal(signal.SIGCONT)
        # The prober sees the thawed node SERVING again and re-admits it.
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            if not {e.url: e for e in gw.endpoints()}[nodes[0].addr].ejected:
                break
            time.sleep(0.05)
        else:
            pytest.fail("thawed node was not re-admitted by the health prober")


def test_bad_request_is_invalid_argument_without_retry(start_nodes):
    nodes = start_nodes(2)
    with GatewayClient(endpoints(nodes), deadline_s=1.0) as gw:
        t0 = time.monotonic()
        with pytest.raises(GatewayError) as e:
            gw.infer("ppo_mlp", np.zeros((1, OBS_DIM - 1), np.float32))
        assert time.monotonic() - t0 < 0.5
        assert e.value.status == "INVALID_ARGUMENT"
        assert len(e.value.attempts) == 1
        assert "31" in e.value.message
        with pytest.raises(GatewayError) as e:
            gw.infer("no_such_model", np.zeros((1, OBS_DIM), np.float32))
        assert e.value.status == "NOT_FOUND" and len(e.value.attempts) == 1
        assert gw.stats().attempts == 2
        # The node answered: the request was at fault, not the node.
        assert all(e.consecutive_failures == 0 for e in gw.endpoints())


def test_hedging_within_budget_beats_a_frozen_node(start_nodes):
    nodes = start_nodes(2)
    rng = np.random.default_rng(4)
    with GatewayClient(
        endpoints(nodes), deadline_s=0.5, hedge_after_s=0.03, hedge_budget=0.5,
        eject_after=1000,  # keep the frozen node in rotation so hedges are needed
    ) as gw:
        for _ in range(4):
            gw.infer("ppo_mlp", rand_obs(rng))
        nodes[0].signal(signal.SIGSTOP)
        try:
            ok = failed = 0
            for _ in range(40):
                try:
                    gw.infer("ppo_mlp", rand_obs(rng), deadline_s=0.3)
                    ok += 1
                except GatewayError as e:
                    assert e.status == "DEADLINE_EXCEEDED"
                    failed += 1
        finally:
            nodes[0].signal(signal.SIGCONT)
        st = gw.stats()
        assert st.hedges >= 1
        assert st.hedges <= 0.5 * st.calls
        assert ok >= 20, (ok, failed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A throwaway `redis-server` without persistence."""

    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"

    def command(self, *args: str) -> bytes:
        """Sends one command (RESP) and returns the raw reply line."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(payload.encode())
            return s.recv(4096)


@pytest.fixture
def redis() -> Iterator[Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("FUDO_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server not found and FUDO_REQUIRE_REDIS=1")
        pytest.skip("redis-server not found")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield Redis(proc, port)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_session_moves_after_kill_and_replays_unacknowledged_steps(start_nodes, redis):
    rng = np.random.default_rng(5)
    observations = [rng.standard_normal(OBS_DIM).astype(np.float32) for _ in range(16)]

    # Reference: the same observations on a fresh single node without faults.
    (ref_node,) = start_nodes(1, prefix="ref")
    with GatewayClient(endpoints([ref_node]), deadline_s=2.0) as gw:
        s = gw.session(4242)
        expected = [s.step(o) for o in observations]
        expected_actions = [int(r.as_numpy("action")[0]) for r in expected]
        expected_logits = [r.as_numpy("logits")[0] for r in expected]

    store = ["--set", "sessions.backend=redis", "--set", f"sessions.redis_url={redis.url}"]
    nodes = start_nodes(2, *store)
    by_addr = {n.addr: n for n in nodes}
    with GatewayClient(endpoints(nodes), deadline_s=2.0, probe_interval_s=0.05) as gw:
        s = gw.session(4242)
        actions, logits = [], []

        def step(i: int) -> str:
            r = s.step(observations[i])
            actions.append(int(r.as_numpy("action")[0]))
            logits.append(r.as_numpy("logits")[0])
            return served_by(r)

        owners = {step(i) for i in range(5)}
        assert len(owners) == 1, "the session must stay on one node"
        # Let the store acknowledge the first steps, then pause writes in Redis: the next steps
        # stay unacknowledged (above the durable watermark, so in the client's replay buffer),
        # and the owner's queued writes die with its connection when it is killed.
        time.sleep(0.3)
        assert redis.command("CLIENT", "PAUSE", "10000", "WRITE").startswith(b"+OK")
        try:
            for i in range(5, 10):
                assert step(i) in owners
            assert set(range(6, 11)) <= set(s.buffered_seqs()), s.buffered_seqs()
            first_owner = by_addr[s.endpoint]
            first_owner.signal(signal.SIGKILL)
            first_owner.proc.wait(timeout=5)
            time.sleep(0.1)
        finally:
            assert redis.command("CLIENT", "UNPAUSE").startswith(b"+OK")
        for i in range(10, len(observations)):
            new_owner = step(i)
            assert new_owner != first_owner.name
        assert actions == expected_actions
        np.testing.assert_allclose(np.array(logits), np.array(expected_logits), atol=1e-5)
        assert gw.stats().replays >= 1
        s.end()



def test_health_protobuf_encoding_round_trip():
    import fudo_gateway as fg

    req = fg._encode_health_request(fg.HEALTH_SERVICE)
    assert req == b"\x0a\x1e" + b"inference.GRPCInferenceService"
    assert fg._decode_health_status(b"\x08\x01") == 1  # SERVING
    assert fg._decode_health_status(b"\x08\x02") == 2  # NOT_SERVING
    assert fg._decode_health_status(b"") == 0  # UNKNOWN (field absent)
