#!/usr/bin/env bash
# Reproduces the numbers in SLA.md on this machine: builds the release binary, starts
# `fudo serve`, and runs `fudo bench` three times per scenario (medians reported), then measures
# shard restart latency under light load. Prints one JSON document; progress goes to stderr.
#   ./scripts/bench.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
OUT=$(mktemp -d)
log() { printf '[bench.sh] %s\n' "$*" >&2; }
log "building release binary"
cargo build --release --locked --bin fudo >&2
BIN=target/release/fudo
PORT=18001; MPORT=18002
$BIN serve --grpc-addr 127.0.0.1:$PORT --metrics-addr 127.0.0.1:$MPORT \
  --set chaos.enabled=true --set models.restart_backoff_initial_us=0 --set models.restart_backoff_max_ms=0 \
  --set log.level=warn >"$OUT/serve.out" 2>"$OUT/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
T=http://127.0.0.1:$PORT
run() { # name, then bench args
  local name=$1; shift
  for i in 1 2 3; do
    log "$name run $i/3"
    $BIN bench --target $T --duration "$DUR" --warmup 2 --quiet --out "$OUT/$name-$i.json" "$@" >/dev/null
  done
}
run open2000 --mode open --rate 2000
run closed_b1 --mode closed --concurrency 32 --connections 4
run closed_b16 --mode closed --concurrency 16 --connections 4 --batch 16
run lstm_sessions --mode closed --sessions 32 --model lstm_policy --connections 4
log "restart latency: 200 panics (100 in the actor, 100 inside the forward pass) under light load"
$BIN bench --target $T --mode open --rate 500 --duration 12 --warmup 0 --quiet --out "$OUT/restart-load.json" >/dev/null &
LOAD=$!
for i in $(seq 100); do
  $BIN ctl --target $T panic ppo_mlp/shard-$((i % 2)) >/dev/null 2>&1 || true
  sleep 0.02
  $BIN ctl --target $T panic ppo_mlp/shard-$(((i + 1) % 2)) --in-forward >/dev/null 2>&1 || true
  sleep 0.03
done
wait $LOAD
$BIN ctl --target $T --json tree >"$OUT/tree.json"
python3 - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(name):
    return [json.loads((out / f"{name}-{i}.json").read_text()) for i in (1, 2, 3)]
def summary(runs):
    med = lambda f: statistics.median(f(r) for r in runs)
    return {
        "throughput_rps": med(lambda r: r["throughput_rps"]),
        "inferences_per_s": med(lambda r: r["inferences_per_s"]),
        "p50_ms": med(lambda r: r["latency_ms"]["p50"]),
        "p99_ms": med(lambda r: r["latency_ms"]["p99"]),
        "p999_ms": med(lambda r: r["latency_ms"]["p999"]),
        "failed": sum(r["requests"]["failed"] for r in runs),
        "runs": [{"rps": round(r["throughput_rps"]), "p99_ms": r["latency_ms"]["p99"]} for r in runs],
    }
doc = {name: summary(load(name)) for name in ("open2000", "closed_b1", "closed_b16", "lstm_sessions")}
restart_load = json.loads((out / "restart-load.json").read_text())
doc["restart"] = json.loads((out / "tree.json").read_text())["shard_restarts"]
doc["restart"]["load_failed"] = restart_load["requests"]["failed"]
doc["restart"]["load_ok"] = restart_load["requests"]["ok"]
print(json.dumps(doc, indent=2))
PY
