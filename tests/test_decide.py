"""The decision as a table: from what the upstream said and what we recorded to one `nextAction`.

`decide(snapshot)` is pure, so every row below is a snapshot (what the service recorded) and the one
NextAction the frontend must get. What upstream refusals do is tested as the transition table in test_machine.py.
References: CONTRACT.md ("nextAction"), yativo-api.md sections 3, 4, 6, 9, 11, and the emulator's choices
for undocumented codes (the notes atop the modules of service/emulator/).
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any, get_args

import msgspec
import pytest

from service.onboarding.actions import (
    POLL_AFTER_SECONDS,
    AnswerSourceOfFunds,
    CardView,
    CompleteKyc,
    ContactSupport,
    CreateCard,
    Done,
    Endpoint,
    NextAction,
    ProvideEmail,
    ProvidePhone,
    Question,
    RetryLater,
    SignIn,
    UseDifferentEmail,
    VerifyEmailCode,
    VerifyPhoneCode,
    WaitForAccount,
    WaitForKyc,
)
from service.onboarding.decide import Step, decide, step_of
from service.onboarding.snapshot import Snapshot

# --- what the service may have recorded ----------------------------------------------------------

CARD_ID = "yativo_card_customer_6627f3a2_1769031332068"
EMAIL_MASKED = "cu***@example.com"
OTP_EXPIRES = datetime(2026, 11, 25, 10, 10, tzinfo=UTC)
KYC_URL = "https://kyc.sumsub.com/msdk/v2?accessToken=_act-sbx-1"
KYC_URL_EXPIRES = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
PHONE_MASKED = "+1******2671"
QUESTIONS = (
    Question("EMPLOYMENT_STATUS", "What is your employment status?", ["EMPLOYED", "SELF_EMPLOYED", "RETIRED"]),
    Question("SOURCE_OF_INCOME", "What is your primary source of income?", ["SALARY", "PENSION", "OTHER"]),
)
CARD = CardView(last_four="7890", status="active")

DOCUMENTED_FLOW_STATUSES = (
    "otp_requested",
    "otp_verified",
    "kyc_initiated",
    "kyc_completed",
    "safe_deploying",
    "card_created",
    "active",
    "safe_deployed",  # named only as an "already onboarded" state (CUSTOMER_ALREADY_ONBOARDED)
    "kyc_approved",  # idem
)
UNKNOWN_FLOW_STATUSES = ("frozen", "KYC_COMPLETED", "")
KYC_STATUSES = ("pending", "in_progress", "pending_review", "approved", "rejected", "expired")
UNKNOWN_KYC_STATUS = "on_hold"

NO_CUSTOMER = Snapshot()


def customer(**fields: Any) -> Snapshot:
    """A snapshot of a started onboarding (an upstream yativo_card_id is recorded)."""
    return Snapshot(customer_id=CARD_ID, **fields)


EMAIL_CODE_SENT = customer(
    flow_status="otp_requested",
    next_step="verify_otp",
    email_masked=EMAIL_MASKED,
    otp_expires_at=OTP_EXPIRES.timestamp(),
)
EMAIL_VERIFIED = customer(
    flow_status="otp_verified",
    next_step="kyc_link",
    email_masked=EMAIL_MASKED,
    kyc_url=KYC_URL,
    kyc_url_expires_at=KYC_URL_EXPIRES.timestamp(),
)


def in_kyc(kyc_status: str | None, **fields: Any) -> Snapshot:
    """Identity check started: a link was fetched and the KYC status polled."""
    base: dict[str, Any] = dict(
        flow_status="kyc_initiated",
        next_step="kyc_status",
        email_masked=EMAIL_MASKED,
        kyc_status=kyc_status,
        kyc_url=KYC_URL,
        kyc_url_expires_at=KYC_URL_EXPIRES.timestamp(),
    )
    return customer(**{**base, **fields})


def after_kyc(**fields: Any) -> Snapshot:
    """KYC approved (the upstream's kyc-status next_step says create_virtual_card), questions offered."""
    base: dict[str, Any] = dict(
        flow_status="kyc_completed",
        next_step="create_virtual_card",
        email_masked=EMAIL_MASKED,
        kyc_status="approved",
        questions=QUESTIONS,
    )
    return customer(**{**base, **fields})


SOF_DONE = after_kyc(sof_done=True)
PHONE_CODE_SENT = after_kyc(sof_done=True, phone_masked=PHONE_MASKED)
PHONE_VERIFIED = after_kyc(sof_done=True, phone_masked=PHONE_MASKED, phone_verified=True, safe_deployed=True)
CARD_ISSUED = after_kyc(
    sof_done=True, phone_masked=PHONE_MASKED, phone_verified=True, safe_deployed=True, flow_status="active", card=CARD
)


def row(sentence: str, snapshot: Snapshot, expected: NextAction, *marks: Any) -> Any:
    return pytest.param(snapshot, expected, id=sentence, marks=marks)


# With no cooldown recorded (a snapshot from before it), a new code can be asked for once this one expires.
VERIFY_EMAIL_CODE = VerifyEmailCode(email_masked=EMAIL_MASKED, expires_at=OTP_EXPIRES, resend_available_at=OTP_EXPIRES)
COMPLETE_KYC = CompleteKyc(url=KYC_URL, expires_at=KYC_URL_EXPIRES, resubmission=False)
ANSWER_SOURCE_OF_FUNDS = AnswerSourceOfFunds(questions=list(QUESTIONS))
UNKNOWN_STATE = ContactSupport(reason="unknown_state")


# --- 3. flow_status (section 11.1) ---------------------------------------------------------------

FLOW_STATUSES = [
    row("otp requested asks for the email code", EMAIL_CODE_SENT, VERIFY_EMAIL_CODE),
    row(
        "otp requested known only by next step verify otp asks for the email code",
        customer(next_step="verify_otp", email_masked=EMAIL_MASKED),
        VerifyEmailCode(email_masked=EMAIL_MASKED, expires_at=None),
    ),
    row("otp verified asks to complete kyc with the fetched link", EMAIL_VERIFIED, COMPLETE_KYC),
    row(
        "otp verified whose link fetch failed asks to retry later",
        customer(flow_status="otp_verified", next_step="kyc_link"),
        RetryLater(retry_after_seconds=2),
    ),
    row("kyc initiated with kyc not started asks to complete kyc", in_kyc(None), COMPLETE_KYC),
    row(
        "kyc completed asks the source of funds questions",
        customer(flow_status="kyc_completed", questions=QUESTIONS),
        ANSWER_SOURCE_OF_FUNDS,
    ),
    row(
        "kyc completed whose questions fetch failed asks to retry later",
        customer(flow_status="kyc_completed"),
        RetryLater(retry_after_seconds=2),
    ),
    row(
        "safe deploying before the source of funds asks the source of funds questions",
        customer(flow_status="safe_deploying", questions=QUESTIONS),
        ANSWER_SOURCE_OF_FUNDS,
    ),
    row(
        "safe deploying after the phone with the wallet not deployed waits for the account",
        customer(flow_status="safe_deploying", sof_done=True, phone_verified=True, safe_deployed=False),
        WaitForAccount(),
    ),
    row("card created is done", customer(flow_status="card_created"), Done()),
    row("active is done", customer(flow_status="active"), Done()),
    row(
        "safe deployed asks the source of funds questions",
        customer(flow_status="safe_deployed", questions=QUESTIONS),
        ANSWER_SOURCE_OF_FUNDS,
    ),
    row(
        "kyc approved asks the source of funds questions",
        customer(flow_status="kyc_approved", questions=QUESTIONS),
        ANSWER_SOURCE_OF_FUNDS,
    ),
    row(
        "an unknown flow status sends the user to support with unknown_state",
        customer(flow_status="frozen"),
        UNKNOWN_STATE,
    ),
    row(
        "an unknown flow status with a pending kyc sends the user to support",
        customer(flow_status="frozen", kyc_status="pending", kyc_url=KYC_URL),
        UNKNOWN_STATE,
    ),
    row(
        "a differently cased flow status is unknown and sends the user to support",
        customer(flow_status="KYC_COMPLETED", questions=QUESTIONS),
        UNKNOWN_STATE,
    ),
    row("an empty flow status sends the user to support", customer(flow_status=""), UNKNOWN_STATE),
    row("a customer with no flow status and no next step sends the user to support", customer(), UNKNOWN_STATE),
    row(
        "an unknown flow status with kyc approved sends the user to support",
        customer(flow_status="suspended", kyc_status="approved", questions=QUESTIONS),
        UNKNOWN_STATE,
    ),
]


@pytest.mark.parametrize(("snapshot", "expected"), FLOW_STATUSES)
def test_a_flow_status_becomes_its_documented_next_action(snapshot: Snapshot, expected: NextAction) -> None:
    assert decide(snapshot) == expected


def test_every_documented_flow_status_is_covered_by_the_table() -> None:
    covered = {p.values[0].flow_status for p in FLOW_STATUSES}
    assert set(DOCUMENTED_FLOW_STATUSES) <= covered


# --- 4. kyc_status (section 6) -------------------------------------------------------------------

KYC = [
    row("a pending kyc asks to complete kyc as a first submission", in_kyc("pending"), COMPLETE_KYC),
    row(
        "a pending kyc right after the email code asks to complete kyc",
        customer(flow_status="otp_verified", kyc_status="pending", kyc_url=KYC_URL),
        CompleteKyc(url=KYC_URL, expires_at=None, resubmission=False),
    ),
    row(
        "a pending kyc whose link fetch failed asks to retry later",
        in_kyc("pending", kyc_url=None, kyc_url_expires_at=None),
        RetryLater(retry_after_seconds=2),
    ),
    row(
        "a kyc in progress waits for kyc and polls",
        in_kyc("in_progress"),
        WaitForKyc(poll_after_seconds=POLL_AFTER_SECONDS),
    ),
    row(
        "a kyc pending review asks to complete kyc as a resubmission",
        in_kyc("pending_review"),
        CompleteKyc(url=KYC_URL, expires_at=KYC_URL_EXPIRES, resubmission=True),
    ),
    row(
        "an approved kyc asks the source of funds even though the upstream says create virtual card",
        in_kyc("approved", next_step="create_virtual_card", questions=QUESTIONS),
        ANSWER_SOURCE_OF_FUNDS,
    ),
    row(
        "an approved kyc with a stale otp verified flow asks the source of funds",
        customer(flow_status="otp_verified", kyc_status="approved", questions=QUESTIONS),
        ANSWER_SOURCE_OF_FUNDS,
    ),
    row(
        "a rejected kyc sends the user to support because kyc was rejected",
        in_kyc("rejected"),
        ContactSupport(reason="kyc_rejected"),
    ),
    row(
        "an expired kyc sends the user to support because kyc expired",
        in_kyc("expired"),
        ContactSupport(reason="kyc_expired"),
    ),
    row(
        "an unknown kyc status sends the user to support with unknown_state", in_kyc(UNKNOWN_KYC_STATUS), UNKNOWN_STATE
    ),
]


@pytest.mark.parametrize(("snapshot", "expected"), KYC)
def test_a_kyc_status_becomes_its_documented_next_action(snapshot: Snapshot, expected: NextAction) -> None:
    assert decide(snapshot) == expected


def test_every_kyc_status_is_covered_by_the_table() -> None:
    covered = {p.values[0].kyc_status for p in KYC}
    assert {*KYC_STATUSES, UNKNOWN_KYC_STATUS} <= covered


# --- 5. source of funds, phone, account and card: what the service recorded ------------------------

AFTER_KYC = [
    row("no customer yet asks for the email", NO_CUSTOMER, ProvideEmail()),
    row("questions offered after kyc approval asks those questions", after_kyc(), ANSWER_SOURCE_OF_FUNDS),
    row("source of funds answered asks for the phone", SOF_DONE, ProvidePhone()),
    row(
        "an sms code sent asks for the sms code with the masked phone",
        PHONE_CODE_SENT,
        VerifyPhoneCode(phone_masked=PHONE_MASKED),
    ),
    row(
        "a phone verified with the wallet not deployed waits for the account",
        after_kyc(sof_done=True, phone_verified=True, safe_deployed=False),
        WaitForAccount(poll_after_seconds=POLL_AFTER_SECONDS),
    ),
    row("a phone verified with the wallet deployed offers the card", PHONE_VERIFIED, CreateCard()),
    row(
        "a phone verified with the wallet state unknown offers the card",
        after_kyc(sof_done=True, phone_verified=True, safe_deployed=None),
        CreateCard(),
    ),
    row("a card recorded is done", CARD_ISSUED, Done()),
    row("a card recorded is done whatever the stale flow status says", after_kyc(card=CARD), Done()),
]


@pytest.mark.parametrize(("snapshot", "expected"), AFTER_KYC)
def test_what_the_service_recorded_after_kyc_decides_the_next_action(snapshot: Snapshot, expected: NextAction) -> None:
    assert decide(snapshot) == expected


# --- 6. step_of: progress.step (CONTRACT: 1 email ... 6 card) --------------------------------------

STEPS = [
    pytest.param(NO_CUSTOMER, Step.EMAIL, id="no customer yet is step 1 email"),
    pytest.param(EMAIL_CODE_SENT, Step.EMAIL_CODE, id="an email code sent is step 2 email code"),
    pytest.param(EMAIL_VERIFIED, Step.IDENTITY, id="an email verified is step 3 identity"),
    pytest.param(in_kyc("pending"), Step.IDENTITY, id="a pending kyc is step 3 identity"),
    pytest.param(in_kyc("in_progress"), Step.IDENTITY, id="a kyc in progress is step 3 identity"),
    pytest.param(in_kyc("pending_review"), Step.IDENTITY, id="a kyc pending review is step 3 identity"),
    pytest.param(in_kyc("rejected"), Step.IDENTITY, id="a rejected kyc stays at step 3 identity"),
    pytest.param(
        in_kyc("approved", questions=QUESTIONS), Step.SOURCE_OF_FUNDS, id="an approved kyc is step 4 source of funds"
    ),
    pytest.param(after_kyc(), Step.SOURCE_OF_FUNDS, id="questions offered is step 4 source of funds"),
    pytest.param(
        customer(flow_status="safe_deploying"),
        Step.SOURCE_OF_FUNDS,
        id="safe deploying before the answers is step 4 source of funds",
    ),
    pytest.param(SOF_DONE, Step.PHONE, id="source of funds answered is step 5 phone"),
    pytest.param(PHONE_CODE_SENT, Step.PHONE, id="an sms code sent is step 5 phone"),
    pytest.param(
        after_kyc(sof_done=True, phone_verified=True, safe_deployed=False),
        Step.CARD,
        id="waiting for the account is step 6 card",
    ),
    pytest.param(PHONE_VERIFIED, Step.CARD, id="a phone verified is step 6 card"),
    pytest.param(CARD_ISSUED, Step.CARD, id="a card recorded is step 6 card"),
    pytest.param(customer(flow_status="active"), Step.CARD, id="an active customer is step 6 card"),
    pytest.param(customer(flow_status="card_created"), Step.CARD, id="a card created customer is step 6 card"),
]


@pytest.mark.parametrize(("snapshot", "step"), STEPS)
def test_step_of_places_the_user_at_the_documented_step(snapshot: Snapshot, step: Step) -> None:
    assert step_of(snapshot) is step
    assert 1 <= int(step_of(snapshot)) <= 6


def test_the_steps_are_numbered_one_to_six_in_contract_order() -> None:
    assert [int(s) for s in Step] == [1, 2, 3, 4, 5, 6]
    assert [s.name for s in Step] == ["EMAIL", "EMAIL_CODE", "IDENTITY", "SOURCE_OF_FUNDS", "PHONE", "CARD"]


# The screen each action shows belongs to one step (CONTRACT: "6 of 6 with done").
STEP_OF_ACTION: dict[type, set[int]] = {
    ProvideEmail: {1},
    VerifyEmailCode: {2},
    CompleteKyc: {3},
    WaitForKyc: {3},
    AnswerSourceOfFunds: {4},
    ProvidePhone: {5},
    VerifyPhoneCode: {5},
    WaitForAccount: {6},
    CreateCard: {6},
    Done: {6},
}


def test_progress_step_agrees_with_the_next_action_for_every_recorded_state() -> None:
    disagreeing = []
    for flow, kyc, next_step, sof, phone_masked, verified, deployed in itertools.product(
        (*DOCUMENTED_FLOW_STATUSES, *UNKNOWN_FLOW_STATUSES, None),
        (*KYC_STATUSES, UNKNOWN_KYC_STATUS, None),
        (None, "kyc_link", "kyc_status", "continue", "create_virtual_card"),
        (False, True),
        (None, PHONE_MASKED),
        (False, True),
        (None, False, True),
    ):
        s = customer(
            flow_status=flow,
            kyc_status=kyc,
            next_step=next_step,
            sof_done=sof,
            phone_masked=phone_masked,
            phone_verified=verified,
            safe_deployed=deployed,
            questions=QUESTIONS,
            kyc_url=KYC_URL,
        )
        action = decide(s)
        if type(action) in STEP_OF_ACTION and int(step_of(s)) not in STEP_OF_ACTION[type(action)]:
            disagreeing.append((flow, kyc, next_step, type(action).__name__, int(step_of(s))))
    assert disagreeing == []


STEP_DISAGREEMENTS = [
    pytest.param(
        customer(flow_status="kyc_approved", next_step="none", questions=QUESTIONS),
        Step.SOURCE_OF_FUNDS,
        id="an onboarded customer at kyc approved without a card is at the source of funds, 4 of 6",
    ),
    pytest.param(
        customer(next_step="none"),
        Step.CARD,
        id="done for a resumed customer without a flow status is 6 of 6",
    ),
    pytest.param(
        customer(next_step="verify_otp", email_masked=EMAIL_MASKED),
        Step.EMAIL_CODE,
        id="an email code known only by next step verify otp is step 2",
    ),
]


@pytest.mark.parametrize(("snapshot", "step"), STEP_DISAGREEMENTS)
def test_progress_step_agrees_with_the_next_action_where_next_step_alone_decides(
    snapshot: Snapshot, step: Step
) -> None:
    assert int(step_of(snapshot)) in STEP_OF_ACTION[type(decide(snapshot))]
    assert step_of(snapshot) is step


# --- 7. endpoints (CONTRACT: the step's POST; kyc-session for complete_kyc; GET for wait_*) ------------

ENDPOINTS = [
    pytest.param(
        decide(NO_CUSTOMER), "provide_email", "POST", "/v1/card-onboarding", id="provide email posts the email to start"
    ),
    pytest.param(
        decide(EMAIL_CODE_SENT),
        "verify_email_code",
        "POST",
        "/v1/card-onboarding/email-verification",
        id="verify email code posts to email verification",
    ),
    pytest.param(
        decide(in_kyc("pending")),
        "complete_kyc",
        "POST",
        "/v1/card-onboarding/kyc-session",
        id="complete kyc posts for a fresh kyc session",
    ),
    pytest.param(
        decide(in_kyc("pending_review")),
        "complete_kyc",
        "POST",
        "/v1/card-onboarding/kyc-session",
        id="a kyc resubmission posts for a fresh kyc session",
    ),
    pytest.param(
        decide(in_kyc("in_progress")), "wait_for_kyc", "GET", "/v1/card-onboarding", id="wait for kyc gets the state"
    ),
    pytest.param(
        decide(after_kyc()),
        "answer_source_of_funds",
        "POST",
        "/v1/card-onboarding/source-of-funds",
        id="answer source of funds posts the answers",
    ),
    pytest.param(
        decide(SOF_DONE), "provide_phone", "POST", "/v1/card-onboarding/phone", id="provide phone posts the phone"
    ),
    pytest.param(
        decide(PHONE_CODE_SENT),
        "verify_phone_code",
        "POST",
        "/v1/card-onboarding/phone-verification",
        id="verify phone code posts to phone verification",
    ),
    pytest.param(
        decide(msgspec.structs.replace(PHONE_VERIFIED, safe_deployed=False)),
        "wait_for_account",
        "GET",
        "/v1/card-onboarding",
        id="wait for account gets the state",
    ),
    pytest.param(
        decide(PHONE_VERIFIED), "create_card", "POST", "/v1/card-onboarding/card", id="create card posts to card"
    ),
    pytest.param(decide(CARD_ISSUED), "done", "GET", "/v1/card-onboarding", id="done gets the state"),
    pytest.param(
        UseDifferentEmail(reason="invalid"),
        "use_different_email",
        "POST",
        "/v1/card-onboarding",
        id="use a different email posts another email to start",
    ),
    pytest.param(
        decide(in_kyc("rejected")), "contact_support", "GET", "/v1/card-onboarding", id="contact support gets the state"
    ),
    pytest.param(
        decide(customer(flow_status="kyc_completed")),
        "retry_later",
        "GET",
        "/v1/card-onboarding",
        id="retry later gets the state",
    ),
    pytest.param(SignIn(), "sign_in", "GET", "/v1/card-onboarding", id="sign in gets the state once signed in"),
]


@pytest.mark.parametrize(("action", "tag", "method", "path"), ENDPOINTS)
def test_each_next_action_carries_its_documented_endpoint(action: NextAction, tag: str, method: str, path: str) -> None:
    assert type(action).__struct_config__.tag == tag
    assert action.endpoint == Endpoint(method, path)  # type: ignore[arg-type]
    assert msgspec.to_builtins(action)["endpoint"] == {"method": method, "path": path}


def test_the_endpoint_table_covers_every_variant_decide_can_return() -> None:
    tags = {p.values[1] for p in ENDPOINTS}
    variants = {t.__struct_config__.tag for t in get_args(NextAction)}
    assert variants - tags == {"fix_input"}  # fix_input carries the endpoint of the step it rejects


# --- 8. serialisation: the wire shape the frontend reads -------------------------------------------

CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)*$")

SERIALISED = [
    pytest.param(
        EMAIL_CODE_SENT,
        None,
        "verify_email_code",
        {"emailMasked": EMAIL_MASKED, "expiresAt": "2026-11-25T10:10:00Z", "resendAvailableAt": "2026-11-25T10:10:00Z"},
        id="verify email code says emailMasked expiresAt and resendAvailableAt",
    ),
    pytest.param(
        in_kyc("pending_review"),
        None,
        "complete_kyc",
        {"url": KYC_URL, "expiresAt": "2026-11-25T11:00:00Z", "resubmission": True},
        id="complete kyc says url expiresAt and resubmission",
    ),
    pytest.param(
        in_kyc("in_progress"),
        None,
        "wait_for_kyc",
        {"pollAfterSeconds": POLL_AFTER_SECONDS},
        id="wait for kyc says pollAfterSeconds",
    ),
    pytest.param(
        after_kyc(),
        None,
        "answer_source_of_funds",
        {"questions": [{"id": q.id, "label": q.label, "options": q.options} for q in QUESTIONS]},
        id="answer source of funds lists the questions with id label and options",
    ),
    pytest.param(
        PHONE_CODE_SENT,
        None,
        "verify_phone_code",
        {"phoneMasked": PHONE_MASKED},
        id="verify phone code says phoneMasked",
    ),
    pytest.param(
        msgspec.structs.replace(PHONE_VERIFIED, safe_deployed=False),
        None,
        "wait_for_account",
        {"pollAfterSeconds": POLL_AFTER_SECONDS},
        id="wait for account says pollAfterSeconds",
    ),
    pytest.param(
        customer(flow_status="kyc_completed"),
        None,
        "retry_later",
        {"retryAfterSeconds": 2},
        id="retry later says retryAfterSeconds",
    ),
    pytest.param(
        in_kyc("expired"), None, "contact_support", {"reason": "kyc_expired"}, id="contact support says the reason"
    ),
    pytest.param(NO_CUSTOMER, None, "provide_email", {}, id="provide email has only its type and endpoint"),
    pytest.param(SOF_DONE, None, "provide_phone", {}, id="provide phone has only its type and endpoint"),
    pytest.param(PHONE_VERIFIED, None, "create_card", {}, id="create card has only its type and endpoint"),
    pytest.param(CARD_ISSUED, None, "done", {}, id="done has only its type and endpoint"),
]


@pytest.mark.parametrize(("snapshot", "unused", "tag", "fields"), SERIALISED)
def test_a_next_action_serialises_with_its_type_tag_and_camel_case_fields(
    snapshot: Snapshot, unused: None, tag: str, fields: dict[str, Any]
) -> None:
    action = decide(snapshot)
    wire = msgspec.json.decode(msgspec.json.encode(action))
    assert wire["type"] == tag
    assert set(wire) == {"type", "endpoint", *fields}
    assert {k: wire[k] for k in fields} == fields
    assert all(CAMEL.match(key) for key in wire), sorted(wire)
    assert msgspec.json.decode(msgspec.json.encode(action), type=NextAction) == action


def test_a_null_expiry_is_sent_as_null_not_left_out() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(decide(customer(next_step="verify_otp"))))
    assert wire == {
        "type": "verify_email_code",
        "endpoint": {"method": "POST", "path": "/v1/card-onboarding/email-verification"},
        "emailMasked": None,
        "expiresAt": None,
        "resendAvailableAt": None,
    }


def test_a_complete_kyc_with_a_pending_status_serialises_resubmission_false() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(decide(in_kyc("pending"))))
    assert wire["type"] == "complete_kyc"
    assert wire["resubmission"] is False


# --- 9. property: every recorded state and error gives one NextAction, never an exception ------------

VARIANTS = get_args(NextAction)
TAGS = {t.__struct_config__.tag for t in VARIANTS}


def test_decide_never_raises_and_always_returns_one_next_action_variant() -> None:
    combos = itertools.product(
        (False, True),  # a customer recorded
        (*DOCUMENTED_FLOW_STATUSES, *UNKNOWN_FLOW_STATUSES, None),
        (*KYC_STATUSES, UNKNOWN_KYC_STATUS, None),
        (False, True),  # sof_done
        (False, True),  # phone_verified
        (False, True),  # links, questions, masks, wallet and card recorded
    )
    checked = 0
    for has_customer, flow, kyc, sof, verified, filled in combos:
        extra: dict[str, Any] = (
            dict(
                kyc_url=KYC_URL,
                questions=QUESTIONS,
                email_masked=EMAIL_MASKED,
                phone_masked=PHONE_MASKED,
                safe_deployed=False,
            )
            if filled
            else {}
        )
        s = Snapshot(
            customer_id=CARD_ID if has_customer else None,
            flow_status=flow,
            kyc_status=kyc,
            sof_done=sof,
            phone_verified=verified,
            **extra,
        )
        where = (has_customer, flow, kyc, sof, verified, filled)
        action = decide(s)  # an exception here fails the test with the traceback
        assert isinstance(action, VARIANTS), where
        wire = msgspec.json.decode(msgspec.json.encode(action))
        assert wire["type"] in TAGS, where
        assert wire["endpoint"]["method"] in ("GET", "POST"), where
        assert wire["endpoint"]["path"].startswith("/v1/card-onboarding"), where
        if not has_customer:
            assert isinstance(action, ProvideEmail), where
        checked += 1
    assert checked == 2 * 13 * 8 * 2 * 2 * 2


def test_an_unknown_state_without_an_error_maps_to_a_safe_action_for_every_unknown_flow_and_kyc_status() -> None:
    for flow, kyc in itertools.product((*UNKNOWN_FLOW_STATUSES, None), (UNKNOWN_KYC_STATUS, None)):
        action = decide(customer(flow_status=flow, kyc_status=kyc))
        assert isinstance(action, (ContactSupport, RetryLater)), (flow, kyc, action)
