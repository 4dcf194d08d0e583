"""What the console's pages share, built once by the composition root (``app.py``): the
settings, who may log in, the sessions, the ledger's engines and the templates.

Routes receive it with ``Depends(console)`` (the ``ConsoleDep`` annotation); the helpers
here render a page, read the flows, check a reveal and write the audit trail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from kafka.errors import KafkaError
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.repository import Ledger
from adapters.operators import WatchedOperators
from adapters.sealing import Sealer
from services.console.auth import Forbidden, Sessions, SignedIn, check_csrf
from services.console.flows import Flows, FlowsCache, ledger_counts
from services.console.settings import ConsoleSettings
from services.console.throttle import LoginThrottle


@dataclass(frozen=True)
class Console:
    settings: ConsoleSettings
    operators: WatchedOperators  # read again when the file changes
    engine: AsyncEngine
    # Replays use kafka-python and a plain engine: the same code serves `brug dlq`.
    sync_engine: Engine
    sessions: Sessions
    login_throttle: LoginThrottle
    flows_cache: FlowsCache
    templates: Jinja2Templates
    sealer: Sealer  # dead letters' originals (BRUG_DEAD_LETTER_KEYS)

    def page(
        self,
        request: Request,
        template: str,
        signed_in: SignedIn | None,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        context = {"me": signed_in, "now": datetime.now(UTC), **values}
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    async def flows(self) -> Flows:
        """Kafka's figures and the ledger's; a broker that does not answer is shown, not a 500."""
        problem = ""
        try:
            topic_flows, lag = await self.flows_cache.kafka(self.settings.kafka_bootstrap_servers)
        except (KafkaError, OSError) as error:
            topic_flows, lag = [], []
            problem = f"Kafka did not answer ({type(error).__name__}); see Health."
        async with self.engine.connect() as connection:
            dead, webhooks = await connection.run_sync(ledger_counts)
        return Flows(topic_flows, lag, dead, webhooks, datetime.now(UTC), problem)

    async def revealer(self, request: Request, csrf: str, reason: str) -> SignedIn:
        """Personal data is shown only to a privacy officer who says why (the reason is
        audited)."""
        me = await self.sessions.current(request)
        check_csrf(me, csrf)
        if not me.may_reveal:
            raise Forbidden("Only a privacy officer may reveal personal data.")
        if len(reason.strip()) < 10:
            raise Forbidden(
                "Give the reason for revealing (at least a short sentence); it is audited."
            )
        return me


def console(request: Request) -> Console:
    """The console the composition root put on the app."""
    wired: Console = request.app.state.console
    return wired


ConsoleDep = Annotated[Console, Depends(console)]


def audit(
    connection: Connection,
    me: SignedIn,
    action: str,
    referral_id: uuid.UUID | None,
    detail: dict[str, Any],
) -> None:
    Ledger(connection).audit(actor=me.actor, action=action, referral_id=referral_id, detail=detail)


def done(request: Request) -> str:
    """The outcome of the last action, carried to the page it redirected to."""
    return request.query_params.get("done", "")[:300]
