#!/usr/bin/env bash
# Runs chaos scenarios with a release build and prints one JSON summary line per scenario.
#   ./scripts/chaos.sh [--short] [--out DIR] [scenario ...]   (default: every chaos/*.toml)
# Reports go to DIR/<scenario>/ (default target/chaos-short or target/chaos-long).
# Exits non-zero if any scenario fails. Scenarios with network = "netns" need root.
set -euo pipefail
cd "$(dirname "$0")/.."
SHORT=""; OUT=""; NAMES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --short) SHORT="--short"; shift ;;
    --out) OUT="$2"; shift 2 ;;
    *) NAMES+=("$1"); shift ;;
  esac
done
[ -n "$OUT" ] || OUT="target/chaos-${SHORT:+short}"; [ "$OUT" != "target/chaos-" ] || OUT="target/chaos-long"
[ ${#NAMES[@]} -gt 0 ] || NAMES=($(ls chaos/*.toml | xargs -n1 basename | sed 's/\.toml$//'))

cargo build --release --locked --bin fudo
FUDO=target/release/fudo
"$FUDO" chaos check ${SHORT} $(printf 'chaos/%s.toml ' "${NAMES[@]}")

failed=()
for name in "${NAMES[@]}"; do
  file="chaos/$name.toml"
  if grep -q '^network = "netns"' "$file" && [ "$(id -u)" -ne 0 ]; then
    echo "chaos: $name needs root (network namespaces); run as root" >&2
    failed+=("$name"); continue
  fi
  printf '\n==> chaos %s %s\n' "$name" "${SHORT:-(long form)}" >&2
  start=$(date +%s)
  if RUST_BACKTRACE=0 "$FUDO" chaos run "$file" $SHORT --out "$OUT/$name"; then
    echo "chaos: $name passed in $(( $(date +%s) - start )) s" >&2
  else
    echo "chaos: $name FAILED in $(( $(date +%s) - start )) s; see $OUT/$name/report.md" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  # CI shows only the tail of the log: repeat why each failed scenario failed, last.
  for name in "${failed[@]}"; do
    report="$OUT/$name/report.md"
    [ -f "$report" ] || { echo "chaos: $name wrote no report" >&2; continue; }
    echo "chaos: $name: $(head -n 1 "$report" | sed 's/^# //')" >&2
    grep -E '^\*\*Aborted:\*\*|\| \*\*no\*\* \|$' "$report" | sed "s/^/chaos: $name: /" >&2 || true
    grep -E '^\| (before|during|after) \|' "$report" | sed "s/^/chaos: $name: phase /" >&2 || true
  done
  echo "chaos: failed: ${failed[*]}" >&2
  exit 1
fi
