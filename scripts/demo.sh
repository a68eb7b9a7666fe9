#!/usr/bin/env bash
# The demo: set up .venv if needed, then run `captum-lmac demo` on the built-in synthetic data.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/captum-lmac" demo "$@"
