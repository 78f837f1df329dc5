"""Schemathesis against the app's own OpenAPI document: every operation and phase, valid and invalid data,
requests without the token, and every check, in-process over ASGI with the real emulator and Redis."""

from __future__ import annotations

import time
from typing import Any

import httpx
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from service.app import create_app
from service.emulator import EmulatorConfig, create_emulator_app
from service.http.auth import issue_dev_token
from service.settings import load_settings
from tests.conftest import JWT_SECRET, WEBHOOK_SECRET
from tests.leakguard import register

# All generation modes (positive and negative) and every check are Schemathesis' defaults; only the volume is
# bounded, so the run stays well under a minute on a shared 2-core machine.
CONFIG = """
headers = {{ Authorization = "Bearer {token}" }}
[generation]
mode = "all"
max-examples = 20
database = "none"

# A schema-valid code can still be the wrong one (`otp_invalid`) and a schema-valid email undeliverable
# (`email_invalid`): the document lists 422 for both. A generated If-None-Match of `*` is answered 304, as
# documented. Everything else keeps Schemathesis' defaults.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "304", "401", "403", "404", "409", "422", "429", "5xx"]
"""
BUDGET_SECONDS = 60


def describe(recorder: Any) -> list[str]:
    found = []
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status != Status.SUCCESS and check.failure_info is not None:
                case = recorder.cases[case_id].value
                interaction = recorder.interactions.get(case_id)
                status = interaction.response.status_code if interaction and interaction.response else None
                found.append(
                    f"{recorder.label}: {check.name} failed ({status}) for "
                    f"{case.method} {case.formatted_path} body={str(case.body)[:200]!r} "
                    f"headers={ {k: v for k, v in (case.headers or {}).items() if k.lower() != 'authorization'} }: "
                    f"{check.failure_info.failure.title}"
                )
    return found


def test_schemathesis_finds_nothing_wrong_with_the_api_against_its_own_document(
    redis_url: str, redis_admin: Any
) -> None:
    token = issue_dev_token(JWT_SECRET, "fuzz-user")
    register(token)
    settings = load_settings(
        {
            "AUTH_JWT_SECRET": JWT_SECRET,
            "YATIVO_BASE_URL": "http://emulator/api/v1",
            "YATIVO_API_KEY": "yativo_test",
            "YATIVO_API_SECRET": "s3cret",
            "YATIVO_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REDIS_URL": redis_url,
        }
    )
    emulator = create_emulator_app(EmulatorConfig(kyc_auto_approve_seconds=None))
    app = create_app(settings, upstream_transport=httpx.ASGITransport(app=emulator))
    config = SchemathesisConfig.from_str(CONFIG.format(token=token))
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)

    started = time.monotonic()
    failures: list[str] = []
    scenarios = 0
    operations: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            scenarios += 1
            operations.add(event.recorder.label)
            failures.extend(describe(event.recorder))
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: error {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            failures.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            failures.extend(f"after run: {f.title}" for f in event.failures)
    elapsed = time.monotonic() - started

    assert not failures, "\n".join(sorted(set(failures))[:30])
    # Every operation of the document was exercised, the webhook and the probes included.
    assert {"GET /v1/card-onboarding", "POST /v1/webhooks/yativo", "POST /v1/card-onboarding/card"} <= operations
    assert scenarios > len(operations)
    assert elapsed < BUDGET_SECONDS, f"the fuzz run took {elapsed:.0f} s"
