"""The flows page: messages per topic per minute, consumer lag, dead letters and webhook
deliveries. It refreshes itself by fetching ``?fragment=1``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.web import ConsoleDep

router = APIRouter()


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/flows", status_code=303)


@router.get("/flows", response_class=HTMLResponse)
async def flows_page(request: Request, console: ConsoleDep, fragment: bool = False) -> Response:
    me = await console.sessions.current(request)
    flows = await console.flows()
    template = "flows_body.html" if fragment else "flows.html"
    return console.page(request, template, me, flows=flows)
