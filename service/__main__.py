"""Command line: `python -m service serve | emulator | dev | dev-token | openapi`."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence


def _busy(host: str, port: int) -> bool:
    """Whether something already listens on host:port (SO_REUSEADDR: a closed connection's TIME_WAIT is no owner)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _refuse_busy(what: str, host: str, port: int, flag: str) -> bool:
    if not _busy(host, port):
        return False
    print(
        f"error: the {what} cannot listen on {host}:{port}: the port is already in use"
        f" (`make run` serves the service on 8000 and its emulator on 8090); choose another with {flag}",
        file=sys.stderr,
    )
    return True


def _serve(args: argparse.Namespace) -> int:
    from service.server import serve
    from service.settings import ConfigError, load_settings

    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    serve(settings, host=args.host, port=args.port)
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from service.emulator import EmulatorConfig, run_emulator

    if _refuse_busy("emulator", args.host, args.port, "--port"):
        return 2
    auto = None if args.kyc_auto_approve_seconds < 0 else args.kyc_auto_approve_seconds
    run_emulator(args.host, args.port, EmulatorConfig(kyc_auto_approve_seconds=auto))
    return 0


def _dev(args: argparse.Namespace) -> int:
    from service.devstack import run_dev
    from service.settings import ConfigError

    if _refuse_busy("service", args.host, args.port, "--port") or _refuse_busy(
        "emulator", args.host, args.emulator_port, "--emulator-port"
    ):
        return 2
    try:
        return run_dev(host=args.host, port=args.port, emulator_port=args.emulator_port)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


def _dev_token(args: argparse.Namespace) -> int:
    """Print a development token for a user: signed with AUTH_JWT_SECRET, or the dev stack's secret when unset."""
    from service.http.auth import issue_dev_token
    from service.settings import DEV_JWT_SECRET

    print(issue_dev_token(os.environ.get("AUTH_JWT_SECRET") or DEV_JWT_SECRET, args.sub))
    return 0


def _openapi(args: argparse.Namespace) -> int:
    """Print the OpenAPI document of an app built with placeholder settings (no I/O happens without a lifespan)."""
    from service.app import create_app
    from service.http.openapi import dumps
    from service.settings import load_settings

    sys.stdout.write(dumps(create_app(load_settings({"AUTH_JWT_SECRET": "openapi-export-placeholder-secret-000"}))))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # The same commands run as `python -m service` and as the `card-onboarding-bff` console script.
    prog = "python -m service" if sys.argv[0].endswith("__main__.py") else None
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the production server (the container's entry point)")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - in a container, listening on all interfaces is the point
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    emulator = commands.add_parser("emulator", help="run the bundled Yativo emulator")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8090)
    emulator.add_argument(
        "--kyc-auto-approve-seconds",
        type=float,
        default=3.0,
        help="approve KYC this long after the link is fetched; negative = never",
    )
    emulator.set_defaults(run=_emulator)

    dev = commands.add_parser("dev", help="run the whole local stack: service + emulator (+ Redis if reachable)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--emulator-port", type=int, default=8090)
    dev.set_defaults(run=_dev)

    token = commands.add_parser(
        "dev-token", help="print a 24 h development token for a user (AUTH_JWT_SECRET, default the dev stack's)"
    )
    token.add_argument("sub", help="the user id, the token's `sub`")
    token.set_defaults(run=_dev_token)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document (committed as openapi/openapi.json)")
    openapi.set_defaults(run=_openapi)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
