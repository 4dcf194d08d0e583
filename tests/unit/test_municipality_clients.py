"""A municipality client names its municipality by CBS code, and may be granted only its
monitor reads (``system/MonitorReport.r``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.clients import Client, ClientKind
from adapters.smart import allowed, format_scopes


def test_a_municipality_is_named_by_its_cbs_code() -> None:
    client = Client(
        client_id="gemeente-x", kind=ClientKind.MUNICIPALITY, organisation="GM0363", name="X"
    )
    assert format_scopes(allowed(client)) == "system/MonitorReport.r"
    with pytest.raises(ValidationError, match="CBS code"):
        Client(
            client_id="gemeente-y", kind=ClientKind.MUNICIPALITY, organisation="Amsterdam", name="Y"
        )
