#!/usr/bin/env bash
# Usage: scripts/setup.sh [full|demo]
#   full (default; `make setup`, `make test`): everything the tests need: the system packages
#     they use (redis-server, rabbitmq-server, SoftHSM2, openssl, chromium, CJK fonts) when
#     missing, and the package with its dev extras;
#   demo (`make demo`, `make doctor`): only what the demo needs: the package itself (no
#     system packages but python3-venv where the interpreter lacks it).
# Either installs into the right environment:
#   - inside an active virtual environment or conda environment: into that environment;
#   - otherwise (Debian/Ubuntu's own Python, which refuses `pip install` by PEP 668, pyenv,
#     a plain system Python): into the project's own `.venv` (created here, git-ignored).
# `scripts/python.sh` prints the interpreter this picks; the Makefile runs everything with it.
# Environment: PYTHON (interpreter to start from, default python3), DINGSKILL_VENV=0 (install
# into PYTHON even outside a virtual environment), DINGSKILL_SKIP_BROWSER=1, DINGSKILL_REINSTALL=1.
# A run whose environment is already current (same interpreter, same pyproject.toml, same
# mode, the package importable) skips `pip install` (a stamp under .dingskill-setup/).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PY=${PYTHON:-python3}
MODE=${1:-full}
case "$MODE" in
  full) EXTRAS=".[dev]"; CHECK="import dingskill, pytest, nbval" ;;
  demo) EXTRAS="."; CHECK="import dingskill" ;;
  *) echo "setup: unknown mode '$MODE' (use full or demo)" >&2; exit 2 ;;
esac

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {
  echo "setup: installing system packages: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
if [ "$MODE" = full ]; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  # a PKCS#11 token for the HSM key tests (SoftHSM2: softhsm2-util and libsofthsm2.so)
  command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
  # the broker tests start their own node; the package's own service is not used (and is
  # stopped below if the package started it)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1 \
    || need+=(rabbitmq-server)
  # docs/broker.md makes its TLS certificates with the openssl command line (checked by tests/docs)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  if [ "${DINGSKILL_SKIP_BROWSER:-0}" != 1 ]; then
    command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
    # Chinese glyphs for the browser test's screenshots and for matplotlib's plot labels
    { command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh | grep -q .; } || need+=(fonts-noto-cjk)
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}"
  if [[ " ${need[*]} " == *" rabbitmq-server "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
  fi
fi

PY=$(PYTHON="$BASE_PY" bash scripts/python.sh)
if [ "$PY" = "$PWD/.venv/bin/python" ] && [ ! -x "$PY" ]; then
  echo "setup: creating the project environment .venv (from $(command -v "$BASE_PY"))"
  if ! "$BASE_PY" -m venv .venv >/dev/null 2>&1; then
    # Debian/Ubuntu ship venv's pip bootstrap separately (python3.X-venv)
    rm -rf .venv
    ver=$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    apt_install "python${ver}-venv"
    "$BASE_PY" -m venv .venv
  fi
fi

# the stamp: interpreter + mode + pyproject.toml; a full install also satisfies demo
hash_of() { { echo "$PY"; cat pyproject.toml; } | sha256sum | cut -d' ' -f1; }
STAMPS=.dingskill-setup
current() {
  [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$(hash_of)" ]
}
if [ "${DINGSKILL_REINSTALL:-0}" != 1 ] && { current "$MODE" || { [ "$MODE" = demo ] && current full; }; } \
  && "$PY" -c "$CHECK" >/dev/null 2>&1; then
  echo "setup: environment current ($MODE); pip install skipped"
  exit 0
fi
if ! "$PY" -c "$CHECK" >/dev/null 2>&1 || [ "${DINGSKILL_REINSTALL:-0}" = 1 ]; then
  echo "setup: installing the dingskill package ($EXTRAS) into $("$PY" -c 'import sys; print(sys.prefix)')"
  start=$(date +%s)
  "$PY" -m pip install -q -e "$EXTRAS" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "setup: installed in $(($(date +%s) - start)) s"
else
  # keep the editable install in step with pyproject.toml
  "$PY" -m pip install -q -e "$EXTRAS" >/dev/null 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
mkdir -p "$STAMPS"
hash_of > "$STAMPS/$MODE"
