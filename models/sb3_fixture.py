#!/usr/bin/env python3
"""Writes the import fixtures of `fudo models import` without PyTorch installed.

From `ppo_mlp/1/model.safetensors` (a stable-baselines3 PPO `MlpPolicy` state_dict) it writes,
in `ppo_mlp/fixtures/`:

- `state_dict.pth`: the state_dict as `torch.save(policy.state_dict(), path)` writes it (the zip
  format of PyTorch >= 1.6: `archive/data.pkl` pickled with protocol 2, one raw little-endian
  storage per tensor under `archive/data/`, `archive/version`, `archive/byteorder`);
- `ppo_sb3.zip`: the file `PPO.save(path)` writes (stable-baselines3 >= 1.0): `data` (JSON),
  `policy.pth` (as above), `policy.optimizer.pth` (empty state), `pytorch_variables.pth`,
  `_stable_baselines3_version` and `system_info.txt`.

The pickles name `torch._utils._rebuild_tensor_v2`, `torch.FloatStorage` and
`collections.OrderedDict` exactly as torch does; this script registers stand-ins for those
names so that the standard library's pickler can write them. Since the weights are version 1's,
a correct import reproduces version 1's PyTorch golden outputs (checked by the Rust tests).

Usage: python3 models/sb3_fixture.py   (from the repository root)
"""

import collections
import json
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "ppo_mlp" / "1" / "model.safetensors"
OUT = ROOT / "ppo_mlp" / "fixtures"

# Stand-ins for the names torch pickles refer to.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


class FloatStorage:  # noqa: D101 - a name only
    pass


FloatStorage.__module__ = "torch"
FloatStorage.__qualname__ = "FloatStorage"


def _rebuild_tensor_v2(*args):  # noqa: D103 - a name only
    raise RuntimeError("stand-in")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch.FloatStorage = FloatStorage
torch._utils = torch_utils
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for dim in reversed(self.shape):
            stride.insert(0, acc)
            acc *= dim
        return (
            _rebuild_tensor_v2,
            (self.storage, 0, self.shape, tuple(stride), False, collections.OrderedDict()),
        )


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def read_safetensors(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    tensors = collections.OrderedDict()
    for name in sorted(k for k in header if k != "__metadata__"):
        info = header[name]
        assert info["dtype"] == "F32", name
        start, end = info["data_offsets"]
        tensors[name] = (info["shape"], body[start:end])
    return tensors


def torch_save_bytes(tensors):
    """The bytes `torch.save(state_dict)` writes for these tensors."""
    state = collections.OrderedDict()
    blobs = {}
    for i, (name, (shape, data)) in enumerate(tensors.items()):
        key = str(i)
        state[name] = Tensor(Storage(key, len(data) // 4), shape)
        blobs[key] = data
    import io

    pkl = io.BytesIO()
    TorchPickler(pkl, protocol=2).dump(state)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, data in blobs.items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def main():
    tensors = read_safetensors(SOURCE)
    OUT.mkdir(parents=True, exist_ok=True)
    pth = torch_save_bytes(tensors)
    (OUT / "state_dict.pth").write_bytes(pth)
    obs_dim = tensors["mlp_extractor.policy_net.0.weight"][0][1]
    n_actions = tensors["action_net.weight"][0][0]
    data = {
        "policy_class": {":type:": "<class 'abc.ABCMeta'>", "__module__": "stable_baselines3.common.policies"},
        "observation_space": {":type:": "<class 'gymnasium.spaces.box.Box'>", "_shape": [obs_dim], "dtype": "float32"},
        "action_space": {":type:": "<class 'gymnasium.spaces.discrete.Discrete'>", "n": n_actions, "_shape": []},
        "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
        "n_envs": 1,
        "num_timesteps": 0,
    }
    with zipfile.ZipFile(OUT / "ppo_sb3.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data", json.dumps(data, indent=4))
        z.writestr("policy.pth", pth)
        z.writestr("policy.optimizer.pth", torch_save_bytes(collections.OrderedDict()))
        z.writestr("pytorch_variables.pth", torch_save_bytes(collections.OrderedDict()))
        z.writestr("_stable_baselines3_version", "2.4.0")
        z.writestr("system_info.txt", "- OS: fixture written by models/sb3_fixture.py\n")
    print(f"wrote {OUT / 'state_dict.pth'} and {OUT / 'ppo_sb3.zip'}")


if __name__ == "__main__":
    main()
