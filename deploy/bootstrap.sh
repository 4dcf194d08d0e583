#!/usr/bin/env bash
# Installs what Brug needs on a fresh Debian machine, idempotently, and fast when warm:
# Python 3.11+ deps into .venv (uv, from uv.lock), Java 17 + Maven for the Kafka jars,
# npm for the Compose schema check. Kafka's jars and PostgreSQL are installed on first
# use by deploy/devstack (so `brug dev up` alone works too). Sourced by run.sh / test.sh.
set -euo pipefail

BRUG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BRUG_CACHE="${BRUG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/brug}"
UV_VERSION="0.13.9"
export BRUG_ROOT BRUG_CACHE

say() { printf '[brug] %s\n' "$*" >&2; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  command -v apt-get >/dev/null || { say "missing $*; install it and retry"; exit 1; }
  say "installing Debian packages: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  say "Python 3.11 or newer is required"
  exit 1
}

ensure_system_tools() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)  # tests/hapi/Validate.java
  command -v mvn >/dev/null || missing+=(maven)
  command -v npm >/dev/null || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

ensure_python_env() {
  local python uv="$BRUG_CACHE/bootstrap/bin/uv"
  python="$(find_python)"
  if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    say "installing uv $UV_VERSION into $BRUG_CACHE/bootstrap"
    "$python" -m venv "$BRUG_CACHE/bootstrap"
    "$BRUG_CACHE/bootstrap/bin/pip" install -q "uv==$UV_VERSION"
  fi
  (cd "$BRUG_ROOT" && "$uv" sync --frozen --quiet --python "$python")
}

ensure_system_tools
ensure_python_env
# Python may keep its bytecode cache (some shells set PYTHONDONTWRITEBYTECODE): without it
# every service and CLI process compiles each module it imports again, about 3 s of CPU
# per service start, and the test suite starts well over a hundred processes.
unset PYTHONDONTWRITEBYTECODE
export PATH="$BRUG_ROOT/.venv/bin:$PATH"
