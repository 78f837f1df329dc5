"""Running and watching the service: logs, metrics, tracing, request context and circuit breakers."""
