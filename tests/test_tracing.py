"""Tracing: spans for inbound requests and upstream calls when an OTLP endpoint is set, nothing when it is not."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import JWT_SECRET, ROOT, FakeClock, Harness, free_port, serve_env, start_module, stop
from tests.journey import EMAIL
from tests.leakguard import SINK, configure_suite_logging

GATEWAY_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
GATEWAY_TRACEPARENT = f"00-{GATEWAY_TRACE_ID}-00f067aa0ba902b7-01"


class TraceparentRecorder:
    """Sits in front of the emulator and remembers the traceparent header of every upstream request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append(headers[b"traceparent"].decode() if b"traceparent" in headers else None)
        await self.app(scope, receive, send)


@pytest.fixture
async def traced(
    emulator_app: Any, control: httpx.AsyncClient, redis_url: str, redis_admin: Any
) -> AsyncIterator[tuple[Harness, Any, TraceparentRecorder]]:
    from litestar.testing import AsyncTestClient
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from service.app import create_app
    from service.ops.tracing import Tracing
    from service.settings import load_settings

    settings = load_settings(
        {
            "AUTH_JWT_SECRET": JWT_SECRET,
            "YATIVO_BASE_URL": "http://emulator/api/v1",
            "YATIVO_API_KEY": "yativo_test",
            "YATIVO_API_SECRET": "s3cret",
            "REDIS_URL": redis_url,
        }
    )
    exporter = InMemorySpanExporter()
    tracing = Tracing.from_settings(settings, exporter=exporter)
    upstream = TraceparentRecorder(emulator_app)
    app = create_app(settings, upstream_transport=httpx.ASGITransport(app=upstream), clock=FakeClock(), tracing=tracing)
    async with AsyncTestClient(app=app) as client:
        yield Harness(client, control, FakeClock(), redis_admin), Spans(tracing, exporter), upstream


class Spans:
    def __init__(self, tracing: Any, exporter: Any) -> None:
        self.tracing = tracing
        self.exporter = exporter

    def finished(self) -> list[Any]:
        """Every span ended so far (the batch processor is flushed first)."""
        assert self.tracing.provider.force_flush(5_000)
        return list(self.exporter.get_finished_spans())


async def test_a_request_and_its_upstream_calls_share_one_trace(traced: tuple[Harness, Any, Any]) -> None:
    from opentelemetry.trace import SpanKind

    bff, recorded, upstream = traced
    response = await bff.post("", {"email": EMAIL})
    assert response.status_code == 200
    spans = recorded.finished()

    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    clients = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert [s.name for s in servers] == ["POST /v1/card-onboarding"]
    server = servers[0]
    assert server.attributes.get("http.response.status_code", server.attributes.get("http.status_code")) == 200
    assert clients, "no span for the upstream calls"
    assert {s.context.trace_id for s in clients} == {server.context.trace_id}
    by_id = {s.context.span_id: s for s in spans}
    for client in clients:  # every upstream span hangs below the inbound request's span
        parent = client.parent
        while parent is not None and parent.span_id != server.context.span_id:
            parent = by_id[parent.span_id].parent
        assert parent is not None, f"{client.name} is not under the request span"
    assert any(s.attributes.get("url.full", s.attributes.get("http.url", "")).endswith("/onboard") for s in clients)
    # The upstream sees the same trace in its traceparent header, so its own traces can join ours.
    sent = [header for header in upstream.seen if header is not None]
    assert sent and all(header.split("-")[1] == f"{server.context.trace_id:032x}" for header in sent)
    assert all(s.resource.attributes["service.name"] == "card-onboarding-bff" for s in spans)


def logged_since(before: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in "".join(SINK.lines[before:]).splitlines() if line.startswith("{")]


async def test_every_line_a_traced_request_logs_carries_its_trace_and_span_ids(
    traced: tuple[Harness, Any, Any],
) -> None:
    from opentelemetry.trace import SpanKind

    bff, recorded, _ = traced
    before = len(SINK.lines)
    response = await bff.post("", {"email": EMAIL}, headers={"traceparent": GATEWAY_TRACEPARENT})
    assert response.status_code == 200
    (server,) = [s for s in recorded.finished() if s.kind == SpanKind.SERVER]
    lines = logged_since(before)
    request = [line for line in lines if line["event"] == "request"]
    upstream = [line for line in lines if line["event"] == "upstream_call"]
    assert len(request) == 1 and upstream
    # The request line is written once the server span has ended: it names that span, in the gateway's trace.
    assert (request[0]["trace_id"], request[0]["span_id"]) == (GATEWAY_TRACE_ID, f"{server.context.span_id:016x}")
    assert {line["trace_id"] for line in upstream} == {GATEWAY_TRACE_ID}
    assert all(len(line["span_id"]) == 16 and int(line["span_id"], 16) for line in upstream)


async def test_without_tracing_no_line_carries_a_trace_id(bff: Harness) -> None:
    before = len(SINK.lines)
    response = await bff.post("", {"email": EMAIL}, headers={"traceparent": GATEWAY_TRACEPARENT})
    assert response.status_code == 200
    lines = logged_since(before)
    assert [line["event"] for line in lines if line["event"] == "request"] == ["request"]
    assert not [line for line in lines if "trace_id" in line or "span_id" in line]


def test_the_trace_id_processor_is_in_the_logging_chain_only_when_tracing_is_configured() -> None:
    import io

    import structlog

    from service.ops.logs import configure_logging
    from service.settings import load_settings

    def chain(**env: str) -> list[str]:
        configure_logging(load_settings({"AUTH_JWT_SECRET": "x" * 32, **env}), stream=io.BytesIO())
        return [getattr(p, "__name__", type(p).__name__) for p in structlog.get_config()["processors"]]

    try:
        assert "add_trace_ids" not in chain()
        assert "add_trace_ids" in chain(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318")
    finally:
        configure_suite_logging()


async def test_probes_and_metrics_make_no_spans(traced: tuple[Harness, Any, Any]) -> None:
    bff, recorded, _ = traced
    for path in ("/livez", "/readyz", "/metrics"):
        assert (await bff.client.get(path)).status_code == 200
    assert (await bff.client.get("/v1/card-onboarding")).status_code == 401  # refused, but traced
    roots = [s.name for s in recorded.finished() if s.parent is None]
    assert roots == ["GET /v1/card-onboarding"]


OFF_PROBE = """
import json, sys
from service.app import create_app
from service.settings import load_settings

app = create_app(load_settings({"AUTH_JWT_SECRET": "x" * 32, "REDIS_URL": "memory://"}))
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
from opentelemetry import trace

print(json.dumps({
    "loaded": loaded,
    "provider": type(trace.get_tracer_provider()).__name__,
    "handler": type(app.asgi_handler).__module__,
    "plugins": [type(p).__name__ for p in app.plugins],
}))
"""


def test_without_an_endpoint_tracing_loads_and_installs_nothing() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", OFF_PROBE],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    seen = json.loads(probe.stdout)
    # Litestar 2 (building any app) and redis-py (on import) load the OpenTelemetry API and the metrics SDK
    # themselves whenever they are installed, and use them only when configured. What tracing adds - the trace
    # SDK, the exporter, the httpx instrumentation, a global provider, the middleware - stays out.
    unwanted = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.instrumentation.httpx")
    assert not [m for m in seen["loaded"] if m.startswith(unwanted)], seen["loaded"]
    assert seen["provider"] == "ProxyTracerProvider"
    assert "OpenTelemetryPlugin" not in seen["plugins"]
    assert "opentelemetry" not in seen["handler"]


class Collector:
    """A stand-in OTLP/HTTP collector on loopback: decodes every export it receives."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.paths.append(self.path)
                for resource in request.resource_spans:
                    for attribute in resource.resource.attributes:
                        if attribute.key == "service.name":
                            collector.services.add(attribute.value.string_value)
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    stub = Collector()
    try:
        yield stub
    finally:
        stub.close()


def test_the_server_process_exports_its_spans_to_the_configured_collector(
    collector: Collector, emulator_server: str, redis_url: str, redis_admin: Any
) -> None:
    from service.http.auth import issue_dev_token

    port = free_port()
    env = serve_env(
        emulator_server,
        redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_SERVICE_NAME="bff-under-test",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    process = start_module(["serve", "--host", "127.0.0.1", "--port", str(port)], port, env)
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/card-onboarding",
            json={"email": EMAIL},
            headers={
                "Authorization": f"Bearer {issue_dev_token(JWT_SECRET, 'user-otel')}",
                "traceparent": GATEWAY_TRACEPARENT,
            },
            timeout=10,
        )
        assert response.status_code == 200
    finally:
        stop(process)  # shutting down flushes whatever is still buffered
    assert set(collector.paths) == {"/v1/traces"}
    assert collector.services == {"bff-under-test"}
    trace_ids = {span.trace_id.hex() for span in collector.spans}
    # The inbound span continues the gateway's trace, and the upstream calls are in it too.
    assert trace_ids == {GATEWAY_TRACE_ID}
    kinds = {span.kind for span in collector.spans}
    assert {2, 3} <= kinds  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT


def test_tracing_is_off_by_default_and_a_bad_endpoint_stops_start_up() -> None:
    from service.settings import ConfigError, load_settings

    secret = {"AUTH_JWT_SECRET": "s" * 32}
    assert load_settings(secret).otel_exporter_otlp_endpoint == ""
    assert load_settings(secret).otel_service_name == "card-onboarding-bff"
    with pytest.raises(ConfigError, match=r"^OTEL_EXPORTER_OTLP_ENDPOINT must be a URL"):
        load_settings({**secret, "OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4318"})
