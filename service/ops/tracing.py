"""OpenTelemetry tracing of inbound requests and upstream calls, switched on by OTEL_EXPORTER_OTLP_ENDPOINT only."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from service.ops.context import request_info_var

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from service.settings import Settings

# Probes and scrapes arrive every few seconds from every kubelet and Prometheus: tracing them is noise.
UNTRACED_PATHS = ["^/livez$", "^/readyz$", "^/metrics$"]
# Bounded so a collector that is down cannot hold a shutting-down pod past its grace period.
EXPORT_TIMEOUT_SECONDS = 2.0


class Tracing:
    """What create_app wires in: middleware plugins, the provider for the upstream client, and a flush on shutdown.

    Off (no endpoint), it holds nothing and imports nothing, so the request path pays nothing for it.
    """

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.plugins: list[Any] = []
        if provider is not None:
            from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

            config = OpenTelemetryConfig(
                tracer_provider=provider,
                exclude=UNTRACED_PATHS,
                exclude_spans=["receive"],
                server_request_hook_handler=_remember_server_span,
            )
            self.plugins.append(OpenTelemetryPlugin(config))

    @classmethod
    def from_settings(cls, settings: Settings, *, exporter: SpanExporter | None = None) -> Tracing:
        """Tracing for these settings; `exporter` replaces the OTLP exporter (tests pass an in-memory one)."""
        if not settings.otel_exporter_otlp_endpoint and exporter is None:
            return cls()
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Like the SDK's own reading of the variable: it names the collector's base, traces go to /v1/traces.
            endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
            exporter = OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_SECONDS)
        # The SDK reads OTEL_TRACES_SAMPLER(_ARG), OTEL_RESOURCE_ATTRIBUTES and OTEL_BSP_* itself.
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter, export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000))
        return cls(provider)

    async def shutdown(self) -> None:
        """Export what is still buffered; the SDK blocks, so do it off the event loop."""
        if self.provider is not None:
            await asyncio.to_thread(self.provider.shutdown)


def _remember_server_span(span: Any, _scope: Any) -> None:
    """Keep the request's server span for its log line, which is written outside it (service/ops/logs.py)."""
    info = request_info_var.get()
    if info is not None:
        info.span = span


def instrument_upstream(transport: Any, provider: TracerProvider | None) -> Any:
    """The upstream transport, giving each request a client span, child of the inbound request's span."""
    if provider is None:
        return transport
    from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

    return AsyncOpenTelemetryTransport(transport, tracer_provider=provider)
