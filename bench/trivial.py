"""The reference handler H: one trivial Litestar route, served by the same uvicorn options as the service.

`--with-libraries`: first import every module outside the service's own packages that the service loads when it
builds its app (listed by a child process that does so), so this process's memory is what the service's libraries
alone cost: the floor of the service's RSS.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys

from litestar import Litestar, get

from service.server import run

_LIST_MODULES = """
import json, os, sys
from service.app import create_app
from service.ops.logs import configure_logging
from service.server import run
from service.settings import load_settings
settings = load_settings(os.environ)
configure_logging(settings)
create_app(settings)
own = ("service", "bench", "__main__")
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] not in own)))
"""


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}


def import_service_libraries() -> None:
    listed = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    names = json.loads(listed.strip().splitlines()[-1])
    failed = []
    for name in names:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # a module that only imports inside its package's own set-up (its package is loaded)
                failed.append(name)
    print(f"loaded {len(names)} modules; {len(failed)} would not import on their own: {failed}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--with-libraries", action="store_true", help="load the service's libraries first")
    args = parser.parse_args()
    if args.with_libraries:
        import_service_libraries()
    run(Litestar(route_handlers=[hello], openapi_config=None, logging_config=None), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
