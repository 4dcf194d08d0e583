"""Renders every published contract file: event schemas and examples from contracts/, the
monitor's dataset contract (contracts/monitor), and one AsyncAPI document per service from
its FastStream app."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from unittest import mock

import yaml
from fastapi import FastAPI
from faststream import FastStream
from faststream.specification import AsyncAPI
from faststream.specification.base import SpecificationFactory

from contracts.monitor.rendering import render_monitor_contract
from contracts.rendering import render_contract_files
from deploy.devstack.paths import REPO_ROOT
from deploy.devstack.stack import SERVICES

SCHEMAS_DIR = REPO_ROOT / "contracts" / "schemas"
ASYNCAPI_DIR = REPO_ROOT / "contracts" / "asyncapi"
OPENAPI_DIR = REPO_ROOT / "contracts" / "openapi"
MONITOR_DIR = REPO_ROOT / "contracts" / "monitor"
# The dev stack's services and the edges it does not run (yet): the monitor API.
DOCUMENTED_SERVICES = (*SERVICES, "monitor_api")


# The documents describe production, where every service authenticates by SASL/SCRAM over
# TLS, whatever the environment the generator runs in says (the test suite sets its own).
DOCUMENTED_KAFKA_SECURITY = {
    "BRUG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "BRUG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "BRUG_KAFKA_USERNAME": "brug-service",
    "BRUG_KAFKA_PASSWORD": "not-published",
}


def render_service_documents() -> dict[Path, str]:
    """Per service: its AsyncAPI 3.0 document (Kafka side) and OpenAPI document (HTTP side)."""
    with mock.patch.dict(os.environ, DOCUMENTED_KAFKA_SECURITY):
        return _render_service_documents()


def _render_service_documents() -> dict[Path, str]:
    documents: dict[Path, str] = {}
    for service in DOCUMENTED_SERVICES:
        module = importlib.import_module(f"services.{service}.app")
        # A service with a composition root builds its app on demand (no I/O until run).
        app = module.create_app() if hasattr(module, "create_app") else module.app
        if isinstance(app, FastStream):
            documents[ASYNCAPI_DIR / f"{service}.yaml"] = _stable_yaml(app.schema)
        # An HTTP service's Kafka side: at module level, or built by its composition root.
        asyncapi = getattr(module, "asyncapi", None)
        if isinstance(app, FastAPI):
            asyncapi = getattr(app.state, "asyncapi", asyncapi)
        if isinstance(asyncapi, AsyncAPI):
            documents[ASYNCAPI_DIR / f"{service}.yaml"] = _stable_yaml(asyncapi)
        if isinstance(app, FastAPI):
            openapi = json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
            documents[OPENAPI_DIR / f"{service}.json"] = openapi
    return documents


def _stable_yaml(specification: SpecificationFactory) -> str:
    """FastStream orders channels as Python hashes them, which changes between processes;
    sorted keys make the published document the same on every run."""
    document = specification.to_specification().to_jsonable()
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)


def expected_files() -> dict[Path, str]:
    files = {SCHEMAS_DIR / name: text for name, text in render_contract_files().items()}
    monitor = {MONITOR_DIR / name: text for name, text in render_monitor_contract().items()}
    return files | monitor | render_service_documents()


def write_contract_files() -> list[Path]:
    written = []
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
