"""The onboarding core is pure and is the only place that builds a nextAction."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import get_args

from service.onboarding.actions import NextAction
from tests.conftest import ROOT

IO_LIBRARIES = ("redis", "httpx", "aiohttp", "litestar", "structlog", "stamina", "jwt", "opentelemetry")


def test_importing_the_core_imports_no_io_library() -> None:
    probe = (
        "import sys, pkgutil, importlib, service.onboarding as core\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module('service.onboarding.' + m.name)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.split()
    assert [name for name in IO_LIBRARIES if name.encode() in loaded] == []
    assert b"msgspec" in loaded  # the probe did import the core


def test_every_next_action_is_constructed_inside_the_core() -> None:
    variants = {t.__name__ for t in get_args(NextAction)}
    outside: list[str] = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(("service/onboarding/", "service/emulator/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if name in variants:
                    outside.append(f"{relative}:{node.lineno} {name}")
    assert outside == []
