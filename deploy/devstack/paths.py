"""Where the dev stack keeps things: caches shared by every checkout, state per stack."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"


def cache_dir() -> Path:
    """Downloads that outlive a checkout (Kafka jars, the Maven repository)."""
    base = os.environ.get("BRUG_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root if os.environ.get("BRUG_CACHE_DIR") else root / "brug"


def default_state_dir() -> Path:
    """One folder for a running stack's data, logs and pid files."""
    return Path(os.environ.get("BRUG_STATE_DIR", REPO_ROOT / ".brug")).resolve()
