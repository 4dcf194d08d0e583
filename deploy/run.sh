#!/usr/bin/env bash
# Brug's main job on this machine: install what is missing, start Kafka, PostgreSQL and
# every service as local processes, and push a sample referral through them.
# Stop everything with `.venv/bin/brug dev down`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$BRUG_ROOT"

brug dev up
echo
brug demo
