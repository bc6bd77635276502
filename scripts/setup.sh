#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: Python deps, bun for Reflex, Debian's HAProxy
# for the scaled setup, and (with --browser) Debian's Chromium: its headless shell for the
# end-to-end tests, the full browser for `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
BUN_VERSION=1.4.4
AXE_VERSION=4.14.1

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing Python dependencies"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch .venv/.installed
fi

# Reflex downloads bun from a host this machine cannot reach; the npm registry has it.
if ! .tools/node_modules/.bin/bun --version 2>/dev/null | grep -qx "$BUN_VERSION"; then
  echo "setup: installing bun $BUN_VERSION from the npm registry"
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "bun@$BUN_VERSION"
fi

# axe-core, the accessibility engine the end-to-end suite injects into the page (e2e/test_accessibility.py).
if [ "${1:-}" = "--browser" ] && ! grep -qs "\"version\": \"$AXE_VERSION\"" .tools/node_modules/axe-core/package.json; then
  echo "setup: installing axe-core $AXE_VERSION from the npm registry"
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "axe-core@$AXE_VERSION"
fi

# A Debian package, installed without questions (refreshing the package lists once if needed).
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null; }
}

# The scaled setup's load balancer (deploy/haproxy.cfg); haproxy lives in /usr/sbin.
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  echo "setup: installing Debian's haproxy"
  apt_install haproxy
fi

# The end-to-end tests drive the headless shell (e2e/conftest.py); `make bench` the full browser.
for package in chromium chromium-headless-shell; do
  if [ "${1:-}" = "--browser" ] && ! command -v "$package" >/dev/null 2>&1; then
    echo "setup: installing Debian's $package"
    apt_install "$package"
  fi
done
