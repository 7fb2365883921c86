#!/usr/bin/env bash
# The whole test suite, with its set-up, on a fresh Debian machine (run as root or with sudo):
#   ./scripts/test.sh
# 1. installs what the tests need (redis-server; a Python virtualenv with tritonclient[grpc]),
# 2. checks formatting and lints,
# 3. runs every Rust test (unit, property, integration against real processes and Redis),
# 4. runs the Python tests, in which an unmodified Triton client drives `fudo serve`,
# 5. checks the infrastructure code offline (terraform/ and deploy/k8s/: HCL parse, checkov,
#    invariant tests and broken copies, kubernetes-validate --strict),
# 6. runs every chaos scenario in its short form against a local cluster (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
{ command -v redis-server && command -v redis-sentinel; } >/dev/null 2>&1 || apt_install redis-server redis-sentinel
if [ "$(id -u)" -eq 0 ]; then
  # Network namespaces and nftables for the netlab tests and the partition scenarios.
  { command -v ip && command -v nft; } >/dev/null 2>&1 || apt_install iproute2 nftables
  export FUDO_REQUIRE_NETNS=1
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
redis-server --version
VENV=${FUDO_TEST_VENV:-$HOME/.cache/fudo/test-venv}
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c 'import tritonclient.grpc' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'tritonclient[grpc]' numpy pytest
fi
"$VENV/bin/python" -c 'import tritonclient, numpy; print("tritonclient", tritonclient.__version__ if hasattr(tritonclient, "__version__") else "ok")'
# The infrastructure checks: python-hcl2, kubernetes-validate and pytest in one virtualenv,
# checkov in its own (it pins a fork of python-hcl2 that would shadow the real one).
INFRA_VENV=${FUDO_INFRA_VENV:-$HOME/.cache/fudo/infra-venv}
CHECKOV_VENV=${FUDO_CHECKOV_VENV:-$HOME/.cache/fudo/checkov-venv}
if ! "$INFRA_VENV/bin/python" -c 'import hcl2, kubernetes_validate, pytest' 2>/dev/null; then
  python3 -m venv "$INFRA_VENV"
  "$INFRA_VENV/bin/pip" install -q --disable-pip-version-check -r tests/infra/requirements.txt
fi
if ! "$CHECKOV_VENV/bin/checkov" --version >/dev/null 2>&1; then
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check -r tests/infra/requirements-checkov.txt
fi
echo "checkov $("$CHECKOV_VENV/bin/checkov" --version)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (unit, property and integration tests)"
export FUDO_REQUIRE_REDIS=1
cargo test --all-targets --locked

step "python: tritonclient[grpc] against fudo serve"
cargo build --locked --bin fudo
FUDO_BIN="$PWD/target/debug/fudo" "$VENV/bin/pytest" -q tests/python

step "infrastructure, offline: HCL parse, checkov, invariants, broken copies, kubernetes-validate --strict"
FUDO_CHECKOV="$CHECKOV_VENV/bin/checkov" "$INFRA_VENV/bin/pytest" -q tests/infra

step "chaos scenarios, short forms (release build)"
./scripts/chaos.sh --short
