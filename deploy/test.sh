#!/usr/bin/env bash
# Every check CI runs: install what is missing, lint, type-check, then all tests
# (unit, and integration/end-to-end against a real Kafka broker and PostgreSQL that
# tests/conftest.py starts). Extra arguments go to pytest, e.g. `deploy/test.sh tests/unit`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$BRUG_ROOT"

# The console's browser tests drive Debian's Chromium (Playwright talks to it over CDP).
command -v chromium >/dev/null || apt_install chromium

echo "[brug] ruff" >&2
ruff check .
ruff format --check .
echo "[brug] mypy" >&2
mypy
# HAPI FHIR's R4 validator (Maven Central jars + tests/hapi/Validate.java) into ~/.cache/brug.
python -m tests.hapi_validator
# helm (built from the Go module proxy), the operators' CRDs and Strimzi's model, likewise.
python -m deploy.render.chart
echo "[brug] pytest" >&2
# Two workers (pytest-xdist): the suite mostly waits on brokers, stacks and timers, so a
# second worker, with its own Kafka and PostgreSQL, overlaps that waiting.
# tests/conftest.py keeps the end-to-end tests on one worker, and each other module whole.
# BRUG_TEST_WORKERS=0 runs it in one process.
exec pytest -n "${BRUG_TEST_WORKERS:-2}" --dist loadscope "$@"
