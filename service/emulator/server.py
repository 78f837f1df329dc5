"""Serving the emulator with uvicorn (what `python -m service emulator` runs)."""

from __future__ import annotations

import uvicorn

from service.emulator.app import create_emulator_app
from service.emulator.config import EmulatorConfig


def run_emulator(host: str, port: int, config: EmulatorConfig) -> None:
    """Serve a fresh emulator on host:port until interrupted."""
    uvicorn.run(create_emulator_app(config), host=host, port=port, log_level="warning", access_log=False)
