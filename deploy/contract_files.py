"""Renders every published contract file: event schemas and examples from contracts/,
and one AsyncAPI document per service from its FastStream app."""

from __future__ import annotations

import importlib
from pathlib import Path

from contracts.rendering import render_contract_files
from deploy.devstack.paths import REPO_ROOT
from deploy.devstack.stack import SERVICES

SCHEMAS_DIR = REPO_ROOT / "contracts" / "schemas"
ASYNCAPI_DIR = REPO_ROOT / "contracts" / "asyncapi"


def render_asyncapi_documents() -> dict[str, str]:
    """``<service>.yaml`` → the service's AsyncAPI 3.0 document."""
    documents = {}
    for service in SERVICES:
        app = importlib.import_module(f"services.{service}.app").app
        documents[f"{service}.yaml"] = app.schema.to_specification().to_yaml()
    return documents


def expected_files() -> dict[Path, str]:
    files = {SCHEMAS_DIR / name: text for name, text in render_contract_files().items()}
    files |= {ASYNCAPI_DIR / name: text for name, text in render_asyncapi_documents().items()}
    return files


def write_contract_files() -> list[Path]:
    written = []
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
