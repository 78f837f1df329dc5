"""The service with an explicitly chosen upstream transport, for the transport comparison; same server options."""

from __future__ import annotations

import argparse
import os

import httpx

from service.app import create_app
from service.ops.logs import configure_logging
from service.server import run
from service.settings import load_settings


def transport(kind: str, max_connections: int, max_keepalive: int) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)
    if kind == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    if kind == "aiohttp":
        from service.yativo.transport import FastTransport

        return FastTransport(limits=limits)
    raise SystemExit(f"unknown transport {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], required=True)
    parser.add_argument("--max-connections", type=int, default=200)
    parser.add_argument("--max-keepalive", type=int, default=50)
    args = parser.parse_args()
    settings = load_settings(os.environ)
    configure_logging(settings)
    upstream = transport(args.transport, args.max_connections, args.max_keepalive)
    run(create_app(settings, upstream_transport=upstream), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
