"""The transition tables as rules: each row through the pure core, and each reached through a real request.

service/onboarding/machine.py says, per route, when it may run, what a success leads to and what every upstream
refusal means. The first half checks the pure functions row by row; the second makes the emulator answer each
refusal code on the real call and checks the service answers what the row says.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import pytest

from service.onboarding import machine
from service.onboarding.actions import NextAction
from service.onboarding.decide import decide
from service.onboarding.refusals import Refusal
from service.onboarding.snapshot import Snapshot
from service.onboarding.user import User
from tests.conftest import Harness
from tests.journey import EMAIL, PHONE, action, drive
from tests.test_decide import (
    CARD_ISSUED,
    EMAIL_CODE_SENT,
    NO_CUSTOMER,
    PHONE_CODE_SENT,
    PHONE_VERIFIED,
    SOF_DONE,
    after_kyc,
    in_kyc,
)

NOW = 1_790_000_000.0
TAGS = sorted(t.__struct_config__.tag for t in get_args(NextAction))

# A snapshot at each state, to ask every route at every state.
AT = {
    "provide_email": NO_CUSTOMER,
    "verify_email_code": EMAIL_CODE_SENT,
    "complete_kyc": in_kyc("pending"),
    "wait_for_kyc": in_kyc("in_progress"),
    "answer_source_of_funds": after_kyc(),
    "provide_phone": SOF_DONE,
    "verify_phone_code": PHONE_CODE_SENT,
    "wait_for_account": msgspec.structs.replace(PHONE_VERIFIED, safe_deployed=False),
    "create_card": PHONE_VERIFIED,
    "done": CARD_ISSUED,
    "contact_support": in_kyc("rejected"),
}


def test_every_state_snapshot_reads_as_its_state() -> None:
    for state, snapshot in AT.items():
        assert machine.tag(decide(snapshot)) == state


@pytest.mark.parametrize("route", [r for r in machine.ROUTES if r != "current"])
@pytest.mark.parametrize("state", sorted(AT))
def test_a_route_runs_only_at_its_states_resumes_at_its_resumes_and_otherwise_says_where_the_user_is(
    route: str, state: str
) -> None:
    rule = machine.ROUTES[route]
    snapshot = AT[state]
    if state in rule.allowed:
        assert machine.step_check(route, snapshot) is None
    elif state in rule.answers_as_is:
        resumed = machine.step_check(route, snapshot)
        assert resumed is not None and machine.tag(resumed.next_action) == state
    else:
        with pytest.raises(Refusal) as refused:
            machine.step_check(route, snapshot)
        assert refused.value.code == "step_not_available"
        assert refused.value.action == decide(snapshot)


def test_every_route_names_real_states() -> None:
    for route in machine.ROUTES.values():
        assert set(route.allowed) | set(route.leads_to) | set(route.answers_as_is) <= set(TAGS)
    for source, targets in machine.POLLED.items():
        assert {source, *targets} <= set(TAGS)


# --- repeats: starting again ---------------------------------------------------------------------

SENT = machine.code_sent(NO_CUSTOMER, EMAIL, "cust_1", "verify_otp", 600, NOW, 60)


@pytest.mark.parametrize(
    ("sentence", "snapshot", "email", "now", "resumes"),
    [
        ("the same email inside the cooldown is a resume", SENT, EMAIL, NOW + 59, True),
        ("the same email in another case is the same email", SENT, EMAIL, NOW + 1, True),
        ("the same email once the cooldown is over sends a new code", SENT, EMAIL, NOW + 60, False),
        ("another email starts over", SENT, "eve@example.com", NOW + 1, False),
        (
            "an expired code sends a new one",
            msgspec.structs.replace(SENT, otp_expires_at=NOW + 10),
            EMAIL,
            NOW + 11,
            False,
        ),
        (
            "a spent code sends a new one at once",
            msgspec.structs.replace(SENT, email_code_spent=True),
            EMAIL,
            NOW + 1,
            False,
        ),
        ("nothing started yet starts", NO_CUSTOMER, EMAIL, NOW, False),
    ],
)
def test_starting_again(sentence: str, snapshot: Snapshot, email: str, now: float, resumes: bool) -> None:
    assert machine.start_resumes(snapshot, email.lower(), now) is resumes, sentence


def test_a_sent_code_offers_a_resend_after_the_cooldown_and_at_once_when_spent() -> None:
    shown = decide(SENT)
    assert shown.resend_available_at.timestamp() == NOW + 60  # type: ignore[union-attr]
    spent = decide(msgspec.structs.replace(SENT, email_code_spent=True))
    assert spent.resend_available_at.timestamp() == NOW  # type: ignore[union-attr]


# --- what each upstream refusal means: the table, row by row -----------------------------------

# (route, the state it runs at, upstream code) -> what the shell does, the problem code answered and the nextAction
# the user sees next (None: wherever the upstream, re-read, says the user is).
RULES = [
    ("start", "provide_email", "INVALID_EMAIL", machine.REFUSE, "email_invalid", "use_different_email"),
    ("start", "provide_email", "ISSUER_EMAIL_NOT_ALLOWED", machine.REFUSE, "email_unavailable", "use_different_email"),
    ("start", "provide_email", "EMAIL_ALREADY_IN_USE", machine.REFUSE, "email_unavailable", "use_different_email"),
    ("start", "provide_email", "EMAIL_ALREADY_REGISTERED", machine.REFUSE, "email_unavailable", "use_different_email"),
    ("start", "verify_email_code", "CUSTOMER_CARD_ALREADY_ACTIVE", machine.RESUME, None, "verify_email_code"),
    ("start", "verify_email_code", "CUSTOMER_ALREADY_ONBOARDED", machine.RESUME, None, "verify_email_code"),
    (
        "verify_email",
        "verify_email_code",
        "OTP_VERIFICATION_FAILED",
        machine.REFUSE,
        "otp_invalid",
        "verify_email_code",
    ),
    ("verify_email", "verify_email_code", "OTP_ATTEMPTS_EXCEEDED", machine.REFUSE, "otp_invalid", "verify_email_code"),
    ("verify_email", "verify_email_code", "OTP_EXPIRED", machine.REFUSE, "otp_expired", "verify_email_code"),
    ("verify_email", "verify_email_code", "INVALID_FLOW_STATE", machine.STALE, None, None),
    ("verify_email", "verify_email_code", "CUSTOMER_NOT_FOUND", machine.STALE, None, None),
    ("source_of_funds", "answer_source_of_funds", "INVALID_ANSWER", machine.REFUSE, "validation_failed", "fix_input"),
    ("source_of_funds", "answer_source_of_funds", "INVALID_ANSWERS", machine.REFUSE, "validation_failed", "fix_input"),
    ("source_of_funds", "answer_source_of_funds", "INVALID_QUESTION", machine.REFUSE, "validation_failed", "fix_input"),
    (
        "source_of_funds",
        "answer_source_of_funds",
        "INVALID_SOMETHING_NEW",
        machine.REFUSE,
        "validation_failed",
        "fix_input",
    ),
    (
        "source_of_funds",
        "answer_source_of_funds",
        "INVALID_FLOW_STATE",
        machine.REFUSE,
        "validation_failed",
        "fix_input",
    ),
    ("phone", "provide_phone", "INVALID_PHONE_NUMBER", machine.REFUSE, "validation_failed", "fix_input"),
    ("phone", "provide_phone", "PHONE_ALREADY_VERIFIED", machine.ANSWER, None, "create_card"),
    (
        "phone",
        "provide_phone",
        "INVALID_FLOW_STATE",
        machine.ANSWER,
        None,
        "create_card",
    ),  # verified before our records were lost
    (
        "verify_phone",
        "verify_phone_code",
        "INVALID_VERIFICATION_CODE",
        machine.REFUSE,
        "otp_invalid",
        "verify_phone_code",
    ),
    (
        "verify_phone",
        "verify_phone_code",
        "PHONE_VERIFICATION_FAILED",
        machine.REFUSE,
        "otp_invalid",
        "verify_phone_code",
    ),
    ("verify_phone", "verify_phone_code", "INVALID_CODE", machine.REFUSE, "otp_invalid", "verify_phone_code"),
    ("verify_phone", "verify_phone_code", "VERIFICATION_CODE_EXPIRED", machine.REFUSE, "otp_expired", "provide_phone"),
    ("verify_phone", "verify_phone_code", "PHONE_CODE_EXPIRED", machine.REFUSE, "otp_expired", "provide_phone"),
    ("verify_phone", "verify_phone_code", "CUSTOMER_NOT_FOUND", machine.STALE, None, None),
    ("card", "create_card", "SAFE_NOT_DEPLOYED", machine.ANSWER, None, "wait_for_account"),
    ("card", "create_card", "WALLET_NOT_READY", machine.ANSWER, None, "wait_for_account"),
    ("card", "create_card", "VIRTUAL_CARD_LIMIT_REACHED", machine.ANSWER, None, "done"),
    ("card", "create_card", "INVALID_FLOW_STATE", machine.STALE, None, None),
    ("card", "create_card", "SOMETHING_NEW_UPSTREAM", machine.UNEXPECTED, "upstream_bad_response", "contact_support"),
    (
        "start",
        "provide_email",
        "otp_expired",
        machine.UNEXPECTED,
        "upstream_bad_response",
        "contact_support",
    ),  # codes are exact
]


@pytest.mark.parametrize(("route", "state", "code", "kind", "problem", "then"), RULES)
def test_an_upstream_refusal_means_what_the_table_says(
    route: str, state: str, code: str, kind: str, problem: str | None, then: str | None
) -> None:
    did, snapshot, refusal = machine.rejected(route, code, AT[state], NOW)
    assert did == kind
    assert (refusal.code if refusal else None) == problem
    if refusal is not None:
        assert machine.tag(refusal.action) == then
        if then not in ("fix_input", "use_different_email", "contact_support"):
            assert refusal.action == decide(snapshot)  # what GET will say of the snapshot it leaves
    elif kind == machine.ANSWER:
        assert machine.tag(decide(snapshot)) == then


def test_every_row_of_the_refusal_table_is_a_rule_here() -> None:
    tested = {(route, code) for route, _, code, *_ in RULES}
    assert set(machine.REJECTIONS) - tested == set()


def test_the_spending_try_and_an_expired_code_stay_on_the_code_screen_offering_a_new_code() -> None:
    for code in ("OTP_ATTEMPTS_EXCEEDED", "OTP_EXPIRED"):
        _, snapshot, refusal = machine.rejected("verify_email", code, SENT, NOW + 5)
        assert refusal is not None and machine.tag(refusal.action) == "verify_email_code"
        assert refusal.action.resend_available_at.timestamp() <= NOW + 5  # type: ignore[union-attr]
        assert machine.start_resumes(snapshot, EMAIL, NOW + 5) is False


def test_an_expired_sms_code_asks_for_the_phone_again() -> None:
    _, snapshot, refusal = machine.rejected("verify_phone", "VERIFICATION_CODE_EXPIRED", PHONE_CODE_SENT, NOW)
    assert refusal is not None and machine.tag(refusal.action) == "provide_phone"
    assert machine.tag(decide(snapshot)) == "provide_phone"


@pytest.mark.parametrize(
    ("hourly", "route", "state", "expected"),
    [
        (False, "verify_email", "verify_email_code", "verify_email_code"),
        (False, "verify_phone", "verify_phone_code", "provide_phone"),
        (True, "verify_email", "verify_email_code", "retry_later"),
        (True, "verify_phone", "verify_phone_code", "retry_later"),
    ],
)
def test_one_spent_code_offers_a_new_code_and_only_the_hourly_limit_says_retry_later(
    hourly: bool, route: str, state: str, expected: str
) -> None:
    refusal = machine.limit_refusal("otp_attempts_exceeded", route, AT[state], retry_after=3600, limit=5, hourly=hourly)
    assert machine.tag(refusal.action) == expected
    assert refusal.retry_after == (3600 if hourly else 1)


@pytest.mark.parametrize(
    ("failure", "code", "wait"),
    [
        (machine.TIMEOUT, "upstream_timeout", 3),
        (machine.UNAVAILABLE, "upstream_unavailable", 3),
        (machine.CREDENTIALS_REFUSED, "upstream_unavailable", 30),
        (machine.BAD_RESPONSE, "upstream_bad_response", 3),
    ],
)
def test_an_upstream_failure_asks_to_try_the_same_call_again_later(failure: str, code: str, wait: int) -> None:
    refusal = machine.upstream_failure("card", failure, 2.5)
    assert refusal.code == code
    assert machine.tag(refusal.action) == "retry_later"
    assert refusal.action.endpoint == machine.ROUTES["card"].endpoint
    assert refusal.action.retry_after_seconds == wait  # type: ignore[union-attr]


# --- the same rows, reached through real requests ------------------------------------------------

UPSTREAM_PATH = {
    "start": ("POST", "/yativo-card/customers/onboard"),
    "verify_email": ("POST", "/yativo-card/customers/*/verify-otp"),
    "source_of_funds": ("POST", "/yativo-card/customers/*/source-of-funds"),
    "phone": ("POST", "/yativo-card/customers/*/phone/request-verification"),
    "verify_phone": ("POST", "/yativo-card/customers/*/phone/verify"),
    "card": ("POST", "/yativo-card/customers/*/cards/virtual"),
}
STATUS = {
    "email_invalid": 422,
    "email_unavailable": 409,
    "otp_invalid": 422,
    "otp_expired": 422,
    "validation_failed": 422,
    "upstream_bad_response": 502,
}


async def _request(bff: Harness, route: str, state_answer: Any) -> Any:
    if route == "start":
        return await bff.post("", {"email": EMAIL})
    if route in ("verify_email", "verify_phone"):
        return await bff.post(
            "/email-verification" if route == "verify_email" else "/phone-verification", {"code": "123456"}
        )
    if route == "source_of_funds":
        questions = action(state_answer)["questions"]
        return await bff.post(
            "/source-of-funds", {"answers": [{"question": q["id"], "answer": q["options"][0]} for q in questions]}
        )
    if route == "phone":
        return await bff.post("/phone", {"phoneNumber": PHONE})
    return await bff.post("/card")


@pytest.mark.slow
@pytest.mark.parametrize(("route", "state", "code", "kind", "problem", "then"), RULES)
async def test_each_refusal_row_is_reached_through_a_real_request(
    bff: Harness, route: str, state: str, code: str, kind: str, problem: str | None, then: str | None
) -> None:
    reached = await drive(bff, state)
    data: dict[str, Any] = {}
    if kind == machine.RESUME:
        [customer] = await bff.customers()
        data = {
            "yativo_card_id": customer["yativo_card_id"],
            "external_customer_id": User("user-ada").external_customer_id,
            "flow_status": "otp_requested",
            "next_step": "verify_otp",
        }
        bff.clock.advance(61)  # past the resend cooldown, so the start really asks the upstream
    method, path = UPSTREAM_PATH[route]
    await bff.fault(
        {
            "path": path,
            "method": method,
            "status": 409 if kind == machine.RESUME else 400,
            "body": {"success": False, "error_code": code, "message": "injected", "data": data},
            "times": 1,
        }
    )
    response = await _request(bff, route, reached)
    if kind in (machine.REFUSE, machine.UNEXPECTED):
        assert (response.status_code, response.json()["code"]) == (STATUS[problem or ""], problem), response.text
    elif kind == machine.STALE:
        assert (response.status_code, response.json()["code"]) == (409, "step_not_available"), response.text
    else:
        assert response.status_code == 200, response.text
    if then is None:
        assert action(response) == action(await bff.get())  # the refusal says where GET says the user is
    else:
        assert action(response)["type"] == then
    if then in ("verify_email_code", "verify_phone_code", "provide_phone"):
        assert action(response) == action(await bff.get())


@pytest.mark.parametrize(
    ("read", "state", "degrades"),
    [
        (machine.KYC_STATUS, "wait_for_kyc", True),  # the last known review state is still true enough to show
        (machine.ACCOUNT, "wait_for_account", True),
        (machine.KYC_STATUS, "verify_email_code", False),  # never read: nothing known to fall back on
        (machine.KYC_LINK, "complete_kyc", False),  # a link is needed to show the screen at all
        (machine.QUESTIONS, "answer_source_of_funds", False),
        (machine.CARDS, "done", False),
    ],
)
def test_only_a_refresh_of_something_known_may_fail_into_the_last_known_state(
    read: str, state: str, degrades: bool
) -> None:
    assert machine.may_degrade(read, AT[state]) is degrades
