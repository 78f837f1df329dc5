"""How the production server is started: uvicorn with the measured options and the read deadlines, start-up objects
out of the collector."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service import server


def test_run_freezes_what_start_up_made_then_serves_with_the_shared_options(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        served.update(app=app, frozen=gc.get_freeze_count(), **options)

    monkeypatch.setattr(server.uvicorn, "run", fake_run)
    app = object()
    gc.unfreeze()
    try:
        server.run(app, host="127.0.0.1", port=8000, read_timeout_seconds=3.0)
    finally:
        gc.unfreeze()  # the rest of the suite collects as usual
    assert served.pop("app") is app
    # Without the freeze every full collection walked the modules and the app again (~60 ms a time).
    assert served.pop("frozen") > 10_000
    protocol = served.pop("http")
    assert served == {"host": "127.0.0.1", "port": 8000, **server.UVICORN_OPTIONS}
    # uvicorn's httptools protocol with the header deadline uvicorn has no option for (tests/test_slow_clients.py).
    assert issubclass(protocol, HttpToolsProtocol) and protocol is not HttpToolsProtocol
