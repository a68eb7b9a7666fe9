#!/usr/bin/env bash
# Create or reuse .venv and install captum_lmac with the tested pins (constraints.txt).
# Quick when nothing changed: a stamp records the hash of the files that decide the install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.captum_lmac_stamp"
WANT="$(cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! "$VENV/bin/python" -c "import captum_lmac" 2>/dev/null; then
    echo "[setup] installing dependencies (first run: several minutes, torch is large)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[zs,test]"
    echo "$WANT" > "$STAMP"
fi
