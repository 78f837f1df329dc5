"""docs/flow.md is drawn from the transition tables and never goes stale."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_committed_flow_diagram_is_the_one_the_tables_draw() -> None:
    drawn = subprocess.run(
        [sys.executable, "-m", "service.onboarding.diagram"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    assert drawn == (ROOT / "docs" / "flow.md").read_text(), "docs/flow.md is stale: run `make flow`"


def test_the_diagram_has_a_state_for_every_next_action_a_step_can_lead_to() -> None:
    from service.onboarding.actions import NextAction
    from service.onboarding.diagram import mermaid

    drawn = mermaid()
    states = {t.__struct_config__.tag for t in NextAction.__args__}  # type: ignore[attr-defined]
    steps = states - {"use_different_email", "retry_later", "fix_input", "sign_in"}  # refusals, not states
    for state in steps:
        assert f" {state} " in drawn or f" {state}\n" in drawn or drawn.endswith(f" {state}"), state
