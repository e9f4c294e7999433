#!/usr/bin/env bash
# Prints the Python interpreter dingskill's set-up installs into and the Makefile runs with:
# the active virtual environment or conda environment if $PYTHON (default python3) runs
# inside one, else the project's own .venv (created by scripts/setup.sh).
# DINGSKILL_VENV=0 uses $PYTHON as it is (you manage its packages yourself).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PY=${PYTHON:-python3}
if [ "${DINGSKILL_VENV:-1}" = 0 ]; then
  "$BASE_PY" -c 'import sys; print(sys.executable)'
  exit 0
fi
"$BASE_PY" - "$PWD/.venv/bin/python" <<'EOF'
import os
import sys

in_venv = sys.prefix != sys.base_prefix
# an activated conda environment: CONDA_PREFIX names the environment this python lives in
in_conda = os.path.isdir(os.path.join(sys.prefix, "conda-meta")) and os.path.realpath(
    os.environ.get("CONDA_PREFIX", "")
) == os.path.realpath(sys.prefix)
print(sys.executable if in_venv or in_conda else sys.argv[1])
EOF
