#!/usr/bin/env bash
# Installs everything dingskill needs on a fresh machine: the Python package with its dev
# extras, and the system packages the tests use (redis-server, chromium) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# a PKCS#11 token for the HSM key tests (SoftHSM2: softhsm2-util and libsofthsm2.so)
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
# the broker tests start their own node; the package's own service is not used (and is
# stopped below if the package started it)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1 \
  || need+=(rabbitmq-server)
if [ "${DINGSKILL_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
  # Chinese glyphs for the browser test's screenshots and for matplotlib's plot labels
  { command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh | grep -q .; } || need+=(fonts-noto-cjk)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [[ " ${need[*]} " == *" rabbitmq-server "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
  fi
fi

if ! $PY -c "import dingskill, pytest, nbval" >/dev/null 2>&1 || [ "${DINGSKILL_REINSTALL:-0}" = 1 ]; then
  echo "setup: installing the dingskill package with its dev extras"
  $PY -m pip install -q -e ".[dev]"
else
  # keep the editable install in step with pyproject.toml (fast when nothing changed)
  $PY -m pip install -q -e ".[dev]" >/dev/null
fi
