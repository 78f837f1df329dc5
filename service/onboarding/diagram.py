"""docs/flow.md, drawn from the transition tables: `python -m service.onboarding.diagram > docs/flow.md`."""

from __future__ import annotations

import sys

from service.onboarding.machine import POLLED, REJECTIONS, ROUTES
from service.onboarding.refusals import ACTION_OF_CODE

_INTRO = """# The onboarding flow

Generated from the transition tables in `service/onboarding/machine.py` and `service/onboarding/refusals.py` by
`python -m service.onboarding.diagram > docs/flow.md` (`make flow`); a test fails when this file is stale.
Each state is a `nextAction.type`; each arrow is the call its `endpoint` names (a POST step) or what a `GET`
sees change once the upstream moves (labelled `GET (polled)`).
"""


def mermaid() -> str:
    lines = ["stateDiagram-v2", "    [*] --> provide_email"]
    for route in ROUTES.values():
        for source in sorted(route.allowed):
            for target in route.leads_to:
                lines.append(f"    {source} --> {target} : {route.endpoint.method} {route.endpoint.path}")
    for source, targets in POLLED.items():
        for target in targets:
            lines.append(f"    {source} --> {target} : GET (polled)")
    lines.append("    done --> [*]")
    return "\n".join(lines)


def document() -> str:
    routes = ["| route | call | may run at | a success leads to | resume (no effect) at |", "|---|---|---|---|---|"]
    for name, route in ROUTES.items():
        routes.append(
            f"| `{name}` | `{route.endpoint.method} {route.endpoint.path}` | "
            f"{', '.join(f'`{a}`' for a in sorted(route.allowed)) or 'any'} | "
            f"{', '.join(f'`{a}`' for a in route.leads_to) or 'the current state'} | "
            f"{', '.join(f'`{a}`' for a in sorted(route.answers_as_is)) or '—'} |"
        )
    rejections = ["| route | upstream code | the shell | problem code |", "|---|---|---|---|"]
    for (route, code), (kind, problem) in sorted(REJECTIONS.items()):
        rejections.append(f"| `{route}` | `{code}` | {kind} | {f'`{problem}`' if problem else '—'} |")
    codes = ["| problem code | nextAction |", "|---|---|"]
    for code, kind in sorted(ACTION_OF_CODE.items()):
        codes.append(f"| `{code}` | `{kind}` |")
    return "\n".join(
        [
            _INTRO,
            "```mermaid",
            mermaid(),
            "```",
            "",
            "## The routes",
            "",
            "A call at a state it may not run at is refused `step_not_available` (409) before its input is read.",
            "",
            *routes,
            "",
            "## What an upstream refusal means",
            "",
            "`refuse`: the problem code is answered with the nextAction decide() gives for the new snapshot; "
            "`answer`: a resume, answered 200; `resume`: an existing customer, confirmed as the caller's, is resumed; "
            "`stale`: the snapshot is re-read from the upstream and the call refused `step_not_available`. Any other "
            "code: `stale` for `INVALID_FLOW_STATE`/`CUSTOMER_NOT_FOUND`, else `contact_support`.",
            "",
            *rejections,
            "",
            "## Problem codes whose nextAction follows from the code",
            "",
            *codes,
            "",
        ]
    )


if __name__ == "__main__":
    sys.stdout.write(document())
