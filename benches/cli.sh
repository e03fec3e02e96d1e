#!/usr/bin/env bash
# Process-level cost of the CLI as scripts use it: N runs of `token`
# (file backend, sealed backend with the key from a file, and env) and of
# `login` (file and sealed backends, with fsyncs).
# Usage: benches/cli.sh [N]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
cargo build --release --quiet
bin=./target/release/credstore
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export CREDSTORE_HOME="$home/store"
token_file=examples/demo-agent-identity.jwt
"$bin" login --with-agent-identity --backend file < "$token_file" 2>/dev/null
# The sealed backend's key: a throwaway identity outside the credential
# directory (its path in the environment, never the key).
mkdir -m 700 "$home/keys"
"$bin" seal keygen --out "$home/keys/id.txt" >/dev/null 2>&1
export CREDSTORE_SEAL_IDENTITY_FILE="$home/keys/id.txt"
"$bin" login --with-agent-identity --backend sealed < "$token_file" 2>/dev/null
"$bin" token --backend sealed >/dev/null

per_run() { # label, command...
  local label=$1; shift
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  printf '%-48s %8.2f ms/run (%d runs)\n' "$label" "$(echo "($end - $start) / 1000000 / $n" | bc -l)" "$n"
}

per_run "token (file backend)" "$bin" token --backend file
per_run "token (sealed backend, key from a file)" "$bin" token --backend sealed
per_run "token (CREDSTORE_AGENT_IDENTITY_FILE)" env CREDSTORE_AGENT_IDENTITY_FILE="$token_file" "$bin" token
per_run "status --json (file backend)" "$bin" status --json --backend file
per_run "login (file backend, fsync + rename)" sh -c "\"$bin\" login --with-agent-identity --backend file < $token_file"
# The signing agent: `headers` asking it, against resolving the file itself.
sock="$home/agent.sock"
"$bin" agent --backend file --socket "$sock" > "$home/agent.env" 2>/dev/null &
agent_pid=$!
for _ in $(seq 100); do [ -s "$home/agent.env" ] && break; sleep 0.05; done
per_run "headers --task-id t (file backend)" "$bin" headers --task-id t --backend file
per_run "headers --task-id t (via the agent)" env CREDSTORE_AGENT_SOCK="$sock" "$bin" headers --task-id t
kill -TERM "$agent_pid"; wait "$agent_pid" || true
per_run "login (sealed backend, fsync + rename)" sh -c "\"$bin\" login --with-agent-identity --backend sealed < $token_file"
# Sealed against file, interleaved (file, sealed, file, …) so that load
# from other work on the machine hits both alike: the medians, and their ratio
# (the target: under 2x).
python3 - "$bin" "$n" <<'PY'
import statistics, subprocess, sys, time
bin, n = sys.argv[1], int(sys.argv[2])
times = {"file": [], "sealed": []}
for _ in range(n):
    for backend in ("file", "sealed"):
        start = time.perf_counter()
        r = subprocess.run([bin, "token", "--backend", backend], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
        if r.returncode: sys.exit(f"{backend}: exit {r.returncode}: {r.stderr.decode()}")
        times[backend].append(time.perf_counter() - start)
med = {b: statistics.median(t) * 1000 for b, t in times.items()}
print(f"{'token, interleaved: file (median)':<48} {med['file']:8.2f} ms/run ({n} runs)")
print(f"{'token, interleaved: sealed (median)':<48} {med['sealed']:8.2f} ms/run ({n} runs)")
print(f"{'sealed / file':<48} {med['sealed'] / med['file']:8.2f}x")
PY
rss=$( { /usr/bin/time -f '%M' "$bin" token --backend file >/dev/null; } 2>&1 | tail -1 )
echo "peak RSS of token: ${rss} KiB"
rss=$( { /usr/bin/time -f '%M' "$bin" token --backend sealed >/dev/null; } 2>&1 | tail -1 )
echo "peak RSS of token --backend sealed: ${rss} KiB"
