"""Train the bundled reference policies briefly and export them for fudo.

Run from the repository root with a PyTorch virtualenv that lives OUTSIDE the repository:

    /root/venvs/torch/bin/python models/export.py

For each policy it writes ``models/<name>/<version>/``:

* ``model.safetensors``: the PyTorch ``state_dict`` (float32, SB3 key names);
* ``config.json``: architecture, dimensions, activation, tensor names;
* ``golden.json``: a few inputs and PyTorch's outputs, checked by fudo's loader at load time;
* ``manifest.json``: name, version, provenance, framework versions, sha256 of every other file;

and ``models/<name>/fixtures/parity.json`` (the Rust parity tests compare against it at 1e-5).
Everything is seeded and single-threaded, so reruns reproduce the same weights and outputs
(set ``SOURCE_DATE_EPOCH`` to reproduce ``created_at`` as well).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from policies import LstmPolicy, PpoMlpPolicy  # noqa: E402

MODELS = Path(__file__).resolve().parent
OBS_DIM, N_ACTIONS, HIDDEN = 32, 3, 64
VERSION = "1"
FORMAT_VERSION = 1

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ----------------------------------------------------------------------------------------------
# JSON helpers: inputs are rounded to 4 decimals (exact in the JSON), outputs are the shortest
# decimal that round-trips the float32 PyTorch produced.


def f32(x) -> float:
    return float(str(np.float32(x)))


def rows(t: torch.Tensor) -> list:
    a = t.detach().cpu().numpy()
    if a.ndim == 1:
        return [f32(v) for v in a]
    return [rows(torch.from_numpy(r)) for r in a]


def rounded_obs(gen: torch.Generator, *shape: int) -> torch.Tensor:
    x = torch.randn(*shape, generator=gen) * 1.5
    return torch.from_numpy(np.round(x.numpy(), 4).astype(np.float32))


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, separators=(",", ":")) + "\n")


def io_names(recurrent: bool) -> dict:
    names = {
        "inputs": {"obs": "obs"},
        "outputs": {"logits": "logits", "values": "values", "actions": "actions"},
    }
    if recurrent:
        names["inputs"]["state"] = "state"
        names["outputs"]["state"] = "state_out"
    return names


# ----------------------------------------------------------------------------------------------
# Synthetic behaviour-cloning tasks: a "signal" that is a fixed linear combination of some
# features (MLP) or an exponential moving average of it through time (LSTM). Action 0 = sell,
# 1 = hold, 2 = buy by thresholds on the signal; the value head regresses tanh(signal).


def targets(signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    actions = torch.ones_like(signal, dtype=torch.long)
    actions[signal < -0.4] = 0
    actions[signal > 0.4] = 2
    return actions, torch.tanh(signal)


def train_mlp(seed: int, steps: int) -> PpoMlpPolicy:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy = PpoMlpPolicy(OBS_DIM, N_ACTIONS, (64, 64), (64, 64), "tanh")
    w = torch.randn(OBS_DIM, generator=gen) * (torch.rand(OBS_DIM, generator=gen) < 0.3)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(steps):
        obs = torch.randn(256, OBS_DIM, generator=gen)
        signal = obs @ w / w.norm()
        actions, value_target = targets(signal)
        logits, values = policy(obs)
        loss = nn_ce(logits, actions) + 0.5 * ((values - value_target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"ppo_mlp: final behaviour-cloning loss {loss.item():.4f}")
    return policy.eval()


def train_lstm(seed: int, steps: int, seq_len: int = 20) -> LstmPolicy:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy = LstmPolicy(OBS_DIM, N_ACTIONS, HIDDEN, (64, 64), (64, 64), "tanh")
    w = torch.randn(OBS_DIM, generator=gen) * (torch.rand(OBS_DIM, generator=gen) < 0.25)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(steps):
        obs = torch.randn(seq_len, 64, OBS_DIM, generator=gen)
        x = obs @ w / w.norm()
        ema = torch.zeros(64)
        signal = []
        for t in range(seq_len):
            ema = 0.7 * ema + 0.3 * x[t]
            signal.append(ema * 2.0)
        signal = torch.stack(signal)
        actions, value_target = targets(signal)
        logits, values, _ = policy.forward_sequence(obs, policy.zero_state(64))
        loss = nn_ce(logits.reshape(-1, N_ACTIONS), actions.reshape(-1))
        loss = loss + 0.5 * ((values - value_target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"lstm_policy: final behaviour-cloning loss {loss.item():.4f}")
    return policy.eval()


def nn_ce(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, actions)


# ----------------------------------------------------------------------------------------------
# Export


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_version(name: str, policy, golden: dict, trained_by: str) -> Path:
    out = MODELS / name / VERSION
    out.mkdir(parents=True, exist_ok=True)
    state_dict = {k: v.detach().float().contiguous() for k, v in policy.state_dict().items()}
    save_file(state_dict, out / "model.safetensors", metadata={"format": "pt"})
    config = {"format_version": FORMAT_VERSION, **policy.config(), "dtype": "float32"}
    config.update(io_names(policy.architecture == "lstm_actor_critic"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_json(out / "golden.json", golden)

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    created = (
        dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
        if epoch
        else dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    )
    files = {}
    for f in ["config.json", "golden.json", "model.safetensors"]:
        files[f] = {"sha256": sha256(out / f), "size": (out / f).stat().st_size}
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": VERSION,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "trained_by": trained_by,
        "frameworks": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
        },
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def export_mlp(seed: int = 7, steps: int = 400) -> None:
    policy = train_mlp(seed, steps)
    with torch.no_grad():
        _export_mlp(policy, seed, steps)


def _export_mlp(policy: PpoMlpPolicy, seed: int, steps: int) -> None:
    gen = torch.Generator().manual_seed(1000 + seed)

    golden_obs = rounded_obs(gen, 4, OBS_DIM)
    logits, values = policy(golden_obs)
    golden = {
        "batch": 4,
        "obs": rows(golden_obs),
        "logits": rows(logits),
        "values": rows(values),
        "actions": logits.argmax(-1).tolist(),
    }
    trained_by = (
        f"models/export.py: behaviour cloning on a synthetic linear signal "
        f"(seed {seed}, {steps} Adam steps, batch 256)"
    )
    export_version("ppo_mlp", policy, golden, trained_by)

    obs = rounded_obs(gen, 64, OBS_DIM)
    full_logits, full_values = policy(obs)
    one = [policy(obs[i : i + 1]) for i in range(obs.shape[0])]
    b1_logits = torch.cat([o[0] for o in one])
    b1_values = torch.cat([o[1] for o in one])
    parity = {
        "model": "ppo_mlp",
        "version": VERSION,
        "obs": rows(obs),
        "batch1": {
            "logits": rows(b1_logits),
            "values": rows(b1_values),
            "actions": b1_logits.argmax(-1).tolist(),
        },
        "full_batch": {
            "logits": rows(full_logits),
            "values": rows(full_values),
            "actions": full_logits.argmax(-1).tolist(),
        },
    }
    write_json(MODELS / "ppo_mlp" / "fixtures" / "parity.json", parity)
    counts = np.bincount(full_logits.argmax(-1).numpy(), minlength=N_ACTIONS)
    print(f"ppo_mlp: action counts on the parity batch {counts.tolist()}")


def export_lstm(seed: int = 11, steps: int = 300, seq_len: int = 20) -> None:
    policy = train_lstm(seed, steps, seq_len)
    with torch.no_grad():
        _export_lstm(policy, seed, steps, seq_len)


def _export_lstm(policy: LstmPolicy, seed: int, steps: int, seq_len: int) -> None:
    gen = torch.Generator().manual_seed(1000 + seed)

    # Parity sequences, run at batch 1 step by step from zeros. The second one starts a new
    # episode half-way (state reset to zeros, as RecurrentPPO does on episode_starts).
    sequences = []
    for s in range(2):
        obs = rounded_obs(gen, seq_len, OBS_DIM)
        starts = [t == 0 or (s == 1 and t == seq_len // 2) for t in range(seq_len)]
        state = policy.zero_state(1)
        seq = {"episode_starts": starts, "obs": rows(obs), "logits": [], "values": [],
               "actions": [], "states": []}
        for t in range(seq_len):
            if starts[t]:
                state = policy.zero_state(1)
            logits, values, state = policy.step(obs[t : t + 1], state)
            seq["logits"].append(rows(logits[0]))
            seq["values"].append(f32(values[0]))
            seq["actions"].append(int(logits[0].argmax()))
            seq["states"].append(rows(state[0]))
        sequences.append(seq)
    all_actions = [a for seq in sequences for a in seq["actions"]]
    print(f"lstm_policy: parity actions {np.bincount(all_actions, minlength=N_ACTIONS).tolist()}")
    parity = {"model": "lstm_policy", "version": VERSION, "state_layout":
              ["h_actor", "c_actor", "h_critic", "c_critic"], "sequences": sequences}
    write_json(MODELS / "lstm_policy" / "fixtures" / "parity.json", parity)

    # Golden rows: a fresh episode (zero state) and three mid-episode states.
    golden_obs = rounded_obs(gen, 4, OBS_DIM)
    warm = rounded_obs(gen, 6, 3, OBS_DIM)
    _, _, warm_state = policy.forward_sequence(warm, policy.zero_state(3))
    golden_state = torch.cat([policy.zero_state(1), warm_state])
    logits, values, next_state = policy.step(golden_obs, golden_state)
    golden = {
        "batch": 4,
        "obs": rows(golden_obs),
        "state": rows(golden_state),
        "logits": rows(logits),
        "values": rows(values),
        "actions": logits.argmax(-1).tolist(),
        "next_state": rows(next_state),
    }
    trained_by = (
        f"models/export.py: behaviour cloning on a synthetic moving-average signal "
        f"(seed {seed}, {steps} Adam steps, 64 sequences x {seq_len} steps)"
    )
    export_version("lstm_policy", policy, golden, trained_by)


if __name__ == "__main__":
    export_mlp()
    export_lstm()
