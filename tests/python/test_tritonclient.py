"""An unmodified Triton client (tritonclient[grpc]) drives `fudo serve`.

Run by ./scripts/test.sh with FUDO_BIN pointing at the built binary. Checks server and model
metadata, stateless MLP inference against the PyTorch parity fixtures, and a 20-step LSTM
sequence (Triton's sequence_id / sequence_start / sequence_end) against PyTorch step by step.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOL = 1e-5


def fixture(model):
    return json.loads((ROOT / "models" / model / "fixtures" / "parity.json").read_text())


@pytest.fixture(scope="module")
def server():
    binary = os.environ.get("FUDO_BIN", str(ROOT / "target" / "debug" / "fudo"))
    proc = subprocess.Popen(
        [binary, "serve", "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if '"listening"' in line:
                addr = json.loads(line)["grpc"]
                break
        else:
            raise RuntimeError("fudo serve exited before listening")
        client = grpcclient.InferenceServerClient(url=addr)
        yield client
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def obs_input(rows):
    rows = np.asarray(rows, dtype=np.float32)
    inp = grpcclient.InferInput("obs", list(rows.shape), "FP32")
    inp.set_data_from_numpy(rows)
    return inp


def test_metadata(server):
    assert server.is_server_live()
    assert server.is_server_ready()
    meta = server.get_server_metadata(as_json=True)
    assert meta["name"] == "fudo"
    for model in ("ppo_mlp", "lstm_policy"):
        assert server.is_model_ready(model)
        m = server.get_model_metadata(model, as_json=True)
        assert m["inputs"][0]["name"] == "obs"
        assert m["inputs"][0]["datatype"] == "FP32"
        assert [o["name"] for o in m["outputs"]] == ["action", "logits", "value"]


def test_stateless_mlp_matches_pytorch(server):
    fx = fixture("ppo_mlp")
    obs = np.asarray(fx["obs"], dtype=np.float32)
    # The whole batch in one request.
    result = server.infer("ppo_mlp", [obs_input(obs)])
    logits = result.as_numpy("logits")
    np.testing.assert_allclose(logits, np.asarray(fx["full_batch"]["logits"]), atol=TOL, rtol=0)
    np.testing.assert_allclose(
        result.as_numpy("value")[:, 0], np.asarray(fx["full_batch"]["values"]), atol=TOL, rtol=0
    )
    assert result.as_numpy("action").tolist() == fx["full_batch"]["actions"]
    # Row by row, asking for one output only.
    for i in range(8):
        r = server.infer(
            "ppo_mlp", [obs_input(obs[i : i + 1])], outputs=[grpcclient.InferRequestedOutput("logits")]
        )
        np.testing.assert_allclose(
            r.as_numpy("logits")[0], np.asarray(fx["batch1"]["logits"][i]), atol=TOL, rtol=0
        )


def test_lstm_sequence_matches_pytorch_step_by_step(server):
    fx = fixture("lstm_policy")
    for n, seq in enumerate(fx["sequences"]):
        session = 1000 + n
        steps = len(seq["obs"])
        assert steps == 20
        for t in range(steps):
            if seq["episode_starts"][t] and t > 0:
                session += 100  # a new episode is a new Triton sequence
            r = server.infer(
                "lstm_policy",
                [obs_input([seq["obs"][t]])],
                sequence_id=session,
                sequence_start=bool(seq["episode_starts"][t]),
                sequence_end=(t == steps - 1),
            )
            np.testing.assert_allclose(
                r.as_numpy("logits")[0], np.asarray(seq["logits"][t]), atol=TOL, rtol=0,
                err_msg=f"sequence {n} step {t}",
            )
            assert abs(float(r.as_numpy("value")[0, 0]) - seq["values"][t]) <= TOL
            assert int(r.as_numpy("action")[0]) == seq["actions"][t]


def test_bad_input_is_invalid_argument(server):
    with pytest.raises(InferenceServerException) as e:
        server.infer("ppo_mlp", [obs_input(np.zeros((1, 31)))])
    assert "StatusCode.INVALID_ARGUMENT" in str(e.value.status())
    with pytest.raises(InferenceServerException) as e:
        server.infer("no_such_model", [obs_input(np.zeros((1, 32)))])
    assert "StatusCode.NOT_FOUND" in str(e.value.status())
