"""The reference handler H: one trivial Litestar route, served by the same uvicorn options as the service."""

from __future__ import annotations

import argparse

from litestar import Litestar, get

from service.server import run


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run(Litestar(route_handlers=[hello], openapi_config=None, logging_config=None), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
