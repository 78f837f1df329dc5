"""Operations surface: probes, metrics, request ids, and the committed OpenAPI document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012 as DRAFT  # OpenAPI 3.1 schemas are JSON Schema 2020-12

from service.onboarding.user import User
from tests.conftest import ROOT, Harness
from tests.journey import EMAIL
from tests.leakguard import SINK
from tests.test_limits import wrong

COMMITTED = ROOT / "openapi" / "openapi.json"


async def test_livez_checks_nothing_and_needs_no_token(bff: Harness) -> None:
    response = await bff.client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_redis_and_upstream(bff: Harness) -> None:
    response = await bff.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "redis": "ok", "upstream": "ok", "openCircuits": []}


async def test_metrics_are_prometheus_text(bff: Harness) -> None:
    await bff.get()
    response = await bff.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "card_onboarding_requests_total" in response.text


async def test_a_request_id_is_taken_echoed_and_sent_upstream(bff: Harness) -> None:
    response = await bff.post("", {"email": EMAIL}, headers={"X-Request-ID": "req-abc.123"})
    assert response.headers["x-request-id"] == "req-abc.123"
    upstream = [c for c in await bff.calls() if c["path"].endswith("/onboard")]
    assert upstream[-1]["requestId"] == "req-abc.123"


async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(bff: Harness) -> None:
    plain = await bff.get()
    odd = await bff.get(headers={"X-Request-ID": "bad id\r\nInjected: yes"})
    for response in (plain, odd):
        generated = response.headers["x-request-id"]
        assert len(generated) == 32 and all(c in "0123456789abcdef" for c in generated)
    assert plain.headers["x-request-id"] != odd.headers["x-request-id"]


async def test_a_problem_carries_the_request_id(bff: Harness) -> None:
    response = await bff.client.get("/v1/card-onboarding", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 401
    assert response.json()["requestId"] == "trace-me"


async def test_an_unknown_route_is_a_problem_not_a_bare_error(bff: Harness) -> None:
    response = await bff.client.get("/v1/card-onboarding/nope", headers=bff.auth())
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"


async def test_the_served_openapi_document_is_the_committed_one(bff: Harness) -> None:
    response = await bff.client.get("/schema/openapi.json")
    assert response.status_code == 200
    served = response.json()
    committed = json.loads(COMMITTED.read_text())
    assert served == committed, "openapi/openapi.json drifted from the app: run `make openapi`"


def test_the_committed_openapi_document_is_what_the_export_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "service", "openapi"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    assert printed == COMMITTED.read_text(), "openapi/openapi.json drifted from the app: run `make openapi`"


def test_the_openapi_document_is_valid_and_precise() -> None:
    doc = json.loads(COMMITTED.read_text())
    validate(doc)
    schemas = doc["components"]["schemas"]
    operations = [op for item in doc["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) and all(ids)
    union = schemas["NextAction"]
    assert union["discriminator"]["propertyName"] == "type"
    assert len(union["oneOf"]) == len(union["discriminator"]["mapping"]) == 15
    for carrier in ("OnboardingState", "Problem"):
        assert schemas[carrier]["properties"]["nextAction"] == {"$ref": "#/components/schemas/NextAction"}
    assert "NextAction" not in json.dumps({k: v for k, v in schemas.items() if k != "NextAction"}).replace(
        '"#/components/schemas/NextAction"', ""
    ), "the union is inlined somewhere instead of referenced"
    for name in union["discriminator"]["mapping"].values():
        variant = schemas[Path(name).name]
        assert "type" in variant["required"] and variant["properties"]["type"]["const"]
        assert set(variant["required"]) == set(variant["properties"]), f"{variant['title']} has optional fields"
    assert schemas["CodeRequest"]["properties"]["code"]["pattern"] == "^[0-9]{6}$"
    assert schemas["PhoneRequest"]["properties"]["phoneNumber"]["pattern"] == r"^\+[1-9][0-9]{6,14}$"
    assert schemas["StartRequest"]["properties"]["email"]["maxLength"] == 254
    assert schemas["StartRequest"]["additionalProperties"] is False
    card = schemas["OnboardingState"]["properties"]["card"]
    assert {"type": "null"} in card["oneOf"]
    onboarding = [
        op for path, item in doc["paths"].items() if path.startswith("/v1/card-onboarding") for op in item.values()
    ]
    for op in onboarding:
        assert {"401", "422", "503"} <= set(op["responses"]), op["operationId"]
        # A 400 is only ever our own `malformed_body`, on the routes that read a body: never Litestar's generic one.
        has_body = "requestBody" in op
        assert ("400" in op["responses"]) == has_body, op["operationId"]
        if has_body:
            assert "malformed_body" in op["responses"]["400"]["description"]
            assert {"413", "415"} <= set(op["responses"]), op["operationId"]
        assert op["security"] == [{"BearerToken": []}]
        for status, answer in op["responses"].items():
            if status not in ("200", "304"):
                assert list(answer["content"]) == ["application/problem+json"]


def request_lines(request_id: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in SINK.lines if line.startswith("{") and request_id in line]
    return [e for e in events if e.get("request_id") == request_id]


async def test_every_request_logs_one_canonical_line_with_who_what_and_what_it_cost(bff: Harness) -> None:
    await bff.post("", {"email": EMAIL}, headers={"X-Request-ID": "canonical-1"})
    lines = request_lines("canonical-1")
    (line,) = [e for e in lines if e["event"] == "request"]
    assert line["method"] == "POST" and line["route"] == "/v1/card-onboarding" and line["status"] == 200
    assert line["user"] == User("user-ada").uid[:16]
    assert line["next_action"] == "verify_email_code"
    upstream = [e for e in lines if e["event"] == "upstream_call"]
    assert line["upstream_calls"] == len(upstream) >= 2  # the lookup for a new user, then the onboard
    assert {e["operation"] for e in upstream} >= {"POST /yativo-card/customers/onboard"}
    assert all(isinstance(e["duration_ms"], float) and e["status"] for e in upstream)
    assert isinstance(line["duration_ms"], float) and line["level"] == "info" and line["timestamp"]
    assert EMAIL not in json.dumps(lines)


async def test_a_refused_request_logs_its_next_action_and_no_user(bff: Harness) -> None:
    await bff.client.get("/v1/card-onboarding", headers={"X-Request-ID": "canonical-2"})
    (line,) = [e for e in request_lines("canonical-2") if e["event"] == "request"]
    assert (line["status"], line["user"], line["next_action"], line["upstream_calls"]) == (401, None, "sign_in", 0)
    await bff.client.get("/nowhere", headers={"X-Request-ID": "canonical-3"})
    (line,) = [e for e in request_lines("canonical-3") if e["event"] == "request"]
    assert (line["status"], line["route"]) == (404, "unmatched")


async def test_metrics_cover_upstream_calls_cache_breakers_and_refusals_without_user_ids(bff: Harness) -> None:
    await bff.post("", {"email": EMAIL})
    await bff.get()
    code = await bff.last_code(EMAIL, "email")
    for _ in range(6):
        await bff.post("/email-verification", {"code": wrong(code)})
    text = (await bff.client.get("/metrics")).text
    for sample in (
        'card_onboarding_requests_total{method="POST",path="/v1/card-onboarding",status_code="200"}',
        'card_onboarding_requests_total{method="POST",path="/v1/card-onboarding/email-verification",status_code="429"}',
        'card_onboarding_request_duration_seconds_bucket{le="0.005",method="GET",path="/v1/card-onboarding",',
        'card_onboarding_upstream_calls_total{operation="POST /yativo-card/customers/onboard",outcome="ok"}',
        'card_onboarding_upstream_calls_total{operation="POST /yativo-card/customers/{id}/verify-otp",outcome="rejected"}',
        'card_onboarding_upstream_call_duration_seconds_bucket{le="0.005",operation="GET /card-issuer/lookup-customer"}',
        'card_onboarding_state_cache_total{result="hit"}',
        'card_onboarding_state_cache_total{result="miss"}',
        'card_onboarding_circuit_state{circuit="onboard"}',
        'card_onboarding_circuit_state{circuit="token"}',
        'card_onboarding_circuit_state{circuit="redis"}',
        'card_onboarding_refusals_total{code="otp_attempts_exceeded",kind="email"}',
    ):
        assert sample in text, sample
    assert User("user-ada").uid not in text and "usr_" not in text and EMAIL not in text


async def test_paths_that_match_no_route_share_one_label_so_probing_cannot_grow_the_metrics(bff: Harness) -> None:
    for n in range(3):
        await bff.client.get(f"/probe-{n}/secret-{n}")
    await bff.client.request("BREW", "/v1/card-onboarding")
    text = (await bff.client.get("/metrics")).text
    assert 'card_onboarding_requests_total{method="GET",path="unmatched",status_code="404"}' in text
    assert "probe-" not in text and "BREW" not in text
    assert 'path="/metrics"' not in text


def test_every_answer_declares_its_headers_and_an_example_that_fits_its_schema() -> None:
    doc = json.loads(COMMITTED.read_text())
    registry = Registry().with_resource("urn:doc", Resource.from_contents(doc, default_specification=DRAFT))
    headers = doc["components"]["headers"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["operationId"][0].islower() and op["operationId"].isalnum(), op["operationId"]
            for status, answer in op["responses"].items():
                named = {ref["$ref"].rsplit("/", 1)[-1] for ref in answer["headers"].values()}
                assert "X-Request-ID" in named, (path, method, status)
                problem = "application/problem+json" in answer.get("content", {})
                if problem and status in ("429", "503", "504"):
                    assert "Retry-After" in named and headers["Retry-After"]["required"], (path, status)
                if status == "429":
                    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= named
                if status == "304":
                    assert "content" not in answer and "ETag" in named
                for media_type, media in answer.get("content", {}).items():
                    assert media.get("examples"), (path, method, status, media_type)
                    schema = {"$ref": "urn:doc#" + media["schema"]["$ref"][1:]} if "$ref" in media["schema"] else {}
                    validator = Draft202012Validator(schema, registry=registry)
                    for name, example in media["examples"].items():
                        errors = [e.message for e in validator.iter_errors(example["value"])]
                        assert not errors, (path, method, status, name, errors)
    get_state = doc["paths"]["/v1/card-onboarding"]["get"]["responses"]
    assert "ETag" in {ref["$ref"].rsplit("/", 1)[-1] for ref in get_state["200"]["headers"].values()}
    assert "304" in get_state
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


def test_problem_codes_and_card_statuses_are_closed_enums_of_what_the_service_sends() -> None:
    from service.http.problems import CODES
    from service.onboarding.actions import CARD_STATUSES

    schemas = json.loads(COMMITTED.read_text())["components"]["schemas"]
    assert set(schemas["Problem"]["properties"]["code"]["enum"]) == set(CODES)
    assert set(schemas["CardView"]["properties"]["status"]["enum"]) == CARD_STATUSES


def test_a_card_status_the_provider_adds_later_is_shown_as_unknown() -> None:
    from service.onboarding.actions import CardView

    assert CardView("1234", "frozen").status == "frozen"
    assert CardView("1234", "suspended_by_issuer").status == "unknown"  # type: ignore[arg-type]
