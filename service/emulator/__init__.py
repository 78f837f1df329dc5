"""Bundled Yativo emulator: a stateful stand-in for Yativo's card-customer API with a control plane."""

from service.emulator.app import create_emulator_app
from service.emulator.clock import EmulatorClock
from service.emulator.config import EmulatorConfig
from service.emulator.server import run_emulator

__all__ = ["EmulatorClock", "EmulatorConfig", "create_emulator_app", "run_emulator"]
