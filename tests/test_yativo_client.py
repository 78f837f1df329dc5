"""The upstream client against the emulator, in-process and over a real loopback socket."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.ops.breaker import State
from service.ops.context import request_id_var
from service.yativo import (
    SofAnswer,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    YativoClient,
    parse_retry_after,
)
from service.yativo.circuits import Circuits
from tests.conftest import free_port

pytestmark = pytest.mark.retries  # these tests are about the upstream retries


class Upstream:
    """A client plus the emulator control plane it talks to, over one of the two transports."""

    def __init__(self, client: YativoClient, control: httpx.AsyncClient) -> None:
        self.client = client
        self.control = control

    async def outbox_code(self, to: str, kind: str) -> str:
        messages = (await self.control.get("/_emulator/outbox")).json()["messages"]
        codes = [m["code"] for m in messages if m["to"] == to and m["kind"] == kind]
        assert codes, f"no {kind} was sent to {to}"
        return str(codes[-1])

    async def calls(self, path_suffix: str) -> list[dict[str, Any]]:
        calls = (await self.control.get("/_emulator/calls")).json()["calls"]
        return [c for c in calls if c["path"].endswith(path_suffix)]

    async def fault(self, **spec: Any) -> None:
        (await self.control.post("/_emulator/faults", json=spec)).raise_for_status()

    async def kyc(self, email: str, status: str) -> None:
        (await self.control.post(f"/_emulator/customers/{email}/kyc", json={"status": status})).raise_for_status()


@pytest.fixture(params=["in-process", "loopback"])
async def upstream(
    request: pytest.FixtureRequest, emulator_app: Any, control: httpx.AsyncClient, remote_control: httpx.AsyncClient
) -> AsyncIterator[Upstream]:
    if request.param == "in-process":
        client = YativoClient(
            "http://emulator/api/v1", "yativo_test", "s3cret", transport=httpx.ASGITransport(app=emulator_app)
        )
        plane = control
    else:
        base = str(remote_control.base_url).rstrip("/")
        client = YativoClient(f"{base}/api/v1", "yativo_test", "s3cret")
        plane = remote_control
    async with client:
        yield Upstream(client, plane)


@pytest.fixture
async def socket_upstream(remote_control: httpx.AsyncClient) -> AsyncIterator[Upstream]:
    base = str(remote_control.base_url).rstrip("/")
    async with YativoClient(f"{base}/api/v1", "yativo_test", "s3cret", timeout_seconds=0.5) as client:
        yield Upstream(client, remote_control)


async def onboarded(up: Upstream, email: str = "ada@example.com", ext: str = "usr_ada") -> str:
    answer = await up.client.onboard(email, ext)
    return answer.yativo_card_id


async def test_a_customer_goes_from_onboarding_to_a_virtual_card(upstream: Upstream) -> None:
    up = upstream
    started = await up.client.onboard("ada@example.com", "usr_ada")
    assert started.yativo_card_id.startswith("yativo_card_customer_")
    assert started.next_step == "verify_otp"
    assert started.external_customer_id == "usr_ada"
    assert started.otp_expires_in_seconds == 600
    card_id = started.yativo_card_id

    verified = await up.client.verify_otp(card_id, await up.outbox_code("ada@example.com", "email"))
    assert (verified.flow_status, verified.next_step) == ("otp_verified", "kyc_link")

    link = await up.client.kyc_link(card_id)
    assert link.url.startswith("https://")
    assert (await up.client.kyc_status(card_id)).kyc_status == "pending"

    await up.kyc("ada@example.com", "approved")
    status = await up.client.kyc_status(card_id)
    # Documented quirk: approval says create_virtual_card although source of funds and phone are due.
    assert (status.kyc_status, status.next_step) == ("approved", "create_virtual_card")

    questions = await up.client.source_of_funds_questions(card_id)
    assert [q.question for q in questions.questions] == ["EMPLOYMENT_STATUS", "SOURCE_OF_INCOME"]
    answers = [SofAnswer(question=q.question, answer=q.options[0]) for q in questions.questions]
    assert (await up.client.submit_source_of_funds(card_id, answers)).status == "completed"

    requested = await up.client.request_phone_verification(card_id, "+14155552671")
    assert requested.phone_number is not None and "2671" not in requested.phone_number
    phone = await up.client.verify_phone(card_id, await up.outbox_code("+14155552671", "sms"))
    assert phone.is_verified is True

    card = await up.client.create_virtual_card(card_id, idempotency_key="card-1")
    assert card.card_type == "virtual" and card.status == "active"

    listed = await up.client.list_cards(card_id)
    assert len(listed.cards) == 1
    last4 = listed.cards[0].last4
    assert last4 is not None and len(last4) == 4 and last4.isdigit()

    found = await up.client.lookup_customer(external_id="usr_ada")
    assert found is not None
    assert (found.yativo_card_id, found.external_ref, found.flow_status) == (card_id, "usr_ada", "active")
    assert found.cards[0].last4 == last4

    full = await up.client.get_customer(card_id)
    assert full is not None and full.kyc_status == "approved" and full.external_ref == "usr_ada"


async def test_a_repeated_email_is_a_409_resume_signal_that_names_the_owner(upstream: Upstream) -> None:
    card_id = await onboarded(upstream)
    with pytest.raises(UpstreamRejected) as caught:
        await upstream.client.onboard("ADA@example.com ", "usr_other")
    error = caught.value
    assert (error.status, error.code) == (409, "CUSTOMER_CARD_ALREADY_ACTIVE")
    assert error.data.yativo_card_id == card_id
    assert error.data.external_customer_id == "usr_ada"
    assert (error.data.flow_status, error.data.next_step) == ("otp_requested", "verify_otp")


async def test_a_repeated_external_id_is_a_400_with_the_same_code_and_no_owner(upstream: Upstream) -> None:
    card_id = await onboarded(upstream)
    with pytest.raises(UpstreamRejected) as caught:
        await upstream.client.onboard("someone-else@example.com", "usr_ada")
    error = caught.value
    assert (error.status, error.code) == (400, "CUSTOMER_CARD_ALREADY_ACTIVE")
    assert error.data.yativo_card_id == card_id
    assert error.data.external_customer_id is None
    assert error.data.next_step == "verify_otp"


async def test_an_onboarded_customer_is_a_409_with_next_step_none(upstream: Upstream) -> None:
    up = upstream
    card_id = await onboarded(up)
    await up.client.verify_otp(card_id, await up.outbox_code("ada@example.com", "email"))
    await up.client.kyc_link(card_id)
    await up.kyc("ada@example.com", "approved")
    questions = await up.client.source_of_funds_questions(card_id)
    await up.client.submit_source_of_funds(
        card_id, [SofAnswer(question=q.question, answer=q.options[-1]) for q in questions.questions]
    )
    await up.client.request_phone_verification(card_id, "+447700900123")
    await up.client.verify_phone(card_id, await up.outbox_code("+447700900123", "sms"))
    await up.client.create_virtual_card(card_id)
    with pytest.raises(UpstreamRejected) as caught:
        await up.client.onboard("ada@example.com", "usr_ada")
    assert (caught.value.status, caught.value.code) == (409, "CUSTOMER_ALREADY_ONBOARDED")
    assert (caught.value.data.next_step, caught.value.data.flow_status) == ("none", "active")
    with pytest.raises(UpstreamRejected) as second:
        await up.client.create_virtual_card(card_id)
    assert second.value.code == "VIRTUAL_CARD_LIMIT_REACHED"


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("not-an-email", "INVALID_EMAIL"),
        ("issuer@emulator.yativo.test", "ISSUER_EMAIL_NOT_ALLOWED"),
        ("own-card@emulator.yativo.test", "EMAIL_ALREADY_IN_USE"),
    ],
)
async def test_refused_emails_raise_their_documented_codes(upstream: Upstream, email: str, code: str) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await upstream.client.onboard(email, "usr_x")
    assert (caught.value.status, caught.value.code) == (400, code)
    if code == "EMAIL_ALREADY_IN_USE":
        assert caught.value.data.account_type == "user"


async def test_a_wrong_email_code_and_an_expired_one_are_told_apart(upstream: Upstream) -> None:
    card_id = await onboarded(upstream)
    right = await upstream.outbox_code("ada@example.com", "email")
    wrong = "000000" if right != "000000" else "111111"
    with pytest.raises(UpstreamRejected) as caught:
        await upstream.client.verify_otp(card_id, wrong)
    assert (caught.value.status, caught.value.code) == (400, "OTP_VERIFICATION_FAILED")
    (await upstream.control.post("/_emulator/clock", json={"advanceSeconds": 601})).raise_for_status()
    with pytest.raises(UpstreamRejected) as expired:
        await upstream.client.verify_otp(card_id, right)
    assert expired.value.code == "OTP_EXPIRED"


async def test_both_kyc_link_shapes_are_accepted(upstream: Upstream) -> None:
    card_id = await onboarded(upstream)
    await upstream.client.verify_otp(card_id, await upstream.outbox_code("ada@example.com", "email"))
    for shape, field in (("sumsub", "sumsub_link"), ("kyc_url", "kyc_url")):
        (await upstream.control.put("/_emulator/config", json={"kycLinkShape": shape})).raise_for_status()
        link = await upstream.client.kyc_link(card_id)
        assert getattr(link, field) == link.url and link.url.startswith("https://")


async def test_lookup_and_get_of_an_unknown_customer_return_none(upstream: Upstream) -> None:
    assert await upstream.client.lookup_customer(external_id="usr_nobody") is None
    assert await upstream.client.get_customer("usr_nobody") is None
    with pytest.raises(TypeError):
        await upstream.client.lookup_customer()


async def test_card_issuer_errors_use_the_error_field_and_are_normalised(upstream: Upstream) -> None:
    await upstream.fault(
        path="/card-issuer/lookup-customer",
        status=403,
        body={"success": False, "error": "NOT_APPROVED", "message": "Card issuer program not approved"},
    )
    with pytest.raises(UpstreamRejected) as caught:
        await upstream.client.lookup_customer(external_id="usr_ada")
    assert (caught.value.status, caught.value.code) == (403, "NOT_APPROVED")


async def test_concurrent_first_calls_fetch_one_token(upstream: Upstream) -> None:
    results = await asyncio.gather(*(upstream.client.lookup_customer(external_id=f"usr_{i}") for i in range(20)))
    assert results == [None] * 20
    assert len(await upstream.calls("/auth/token")) == 1


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(upstream: Upstream) -> None:
    await upstream.client.lookup_customer(external_id="usr_a")
    # The upstream expires the token early (clock moves past its lifetime); we still think it is fresh.
    (await upstream.control.post("/_emulator/clock", json={"advanceSeconds": 3700})).raise_for_status()
    assert await upstream.client.lookup_customer(external_id="usr_a") is None
    assert len(await upstream.calls("/auth/token")) == 2
    statuses = [c["status"] for c in await upstream.calls("/lookup-customer")]
    assert statuses == [404, 401, 404]


async def test_a_401_after_a_fresh_token_is_an_auth_failure_not_a_loop(upstream: Upstream) -> None:
    await upstream.fault(
        path="/card-issuer/lookup-customer", status=401, body={"success": False, "error": "unauthorized"}
    )
    with pytest.raises(UpstreamAuthFailed):
        await upstream.client.lookup_customer(external_id="usr_a")
    assert len(await upstream.calls("/auth/token")) == 2


async def test_refused_credentials_are_an_auth_failure(upstream: Upstream) -> None:
    await upstream.fault(
        path="/auth/token", status=401, body={"success": False, "error": "Invalid, expired, or revoked API key"}
    )
    with pytest.raises(UpstreamAuthFailed):
        await upstream.client.onboard("ada@example.com", "usr_ada")
    assert await upstream.calls("/onboard") == []


async def test_the_token_is_refreshed_before_it_expires() -> None:
    from service.emulator import EmulatorConfig, create_emulator_app

    now = [1000.0]
    app = create_emulator_app(EmulatorConfig(kyc_auto_approve_seconds=None))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as control,
        YativoClient(
            "http://emulator/api/v1", "k", "s", transport=httpx.ASGITransport(app=app), clock=lambda: now[0]
        ) as client,
    ):
        await client.lookup_customer(external_id="usr_a")
        now[0] += 3600 - 300 - 1  # still inside the refresh margin the token answer recommends
        await client.lookup_customer(external_id="usr_a")
        now[0] += 2
        await client.lookup_customer(external_id="usr_a")
        calls = (await control.get("/_emulator/calls")).json()["calls"]
        assert sum(c["path"].endswith("/auth/token") for c in calls) == 2


async def test_request_id_and_idempotency_key_are_sent_upstream(upstream: Upstream) -> None:
    token = request_id_var.set("req-1234")
    try:
        await upstream.client.onboard("ada@example.com", "usr_ada", idempotency_key="onboard:usr_ada:1")
    finally:
        request_id_var.reset(token)
    [call] = await upstream.calls("/onboard")
    assert call["requestId"] == "req-1234"
    assert call["idempotencyKey"] == "onboard:usr_ada:1"


async def test_a_500_with_an_html_body_is_unavailable_and_keeps_nothing_of_the_body(upstream: Upstream) -> None:
    await upstream.fault(
        path="/card-issuer/lookup-customer", status=500, body="<html>oops</html>", contentType="text/html"
    )
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.client.lookup_customer(external_id="usr_a")
    assert caught.value.status == 500
    assert "oops" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"success": true, "data": {"yativo_card_id": "x", "flow_st', "application/json"),
        ('{"success": true, "data": {"yativo_card_id": "x"}}', "application/json"),
        ('{"success": true, "data": {"yativo_card_id": 7, "flow_status": "active"}}', "application/json"),
        ("<html>maintenance</html>", "text/html"),
    ],
    ids=["truncated", "missing-field", "wrong-type", "html"],
)
async def test_a_garbled_success_answer_is_a_bad_response(upstream: Upstream, body: str, content_type: str) -> None:
    await upstream.fault(path="/card-issuer/lookup-customer", status=200, body=body, contentType=content_type)
    with pytest.raises(UpstreamBadResponse):
        await upstream.client.lookup_customer(external_id="usr_a")


async def test_a_4xx_without_an_error_code_is_a_bad_response(upstream: Upstream) -> None:
    await upstream.fault(
        path="/card-issuer/lookup-customer", status=404, body="<html>not here</html>", contentType="text/html"
    )
    with pytest.raises(UpstreamBadResponse):
        await upstream.client.lookup_customer(external_id="usr_a")


async def test_a_redirect_is_not_followed(upstream: Upstream) -> None:
    await upstream.fault(path="/card-issuer/lookup-customer", status=302, body="")
    with pytest.raises(UpstreamBadResponse):
        await upstream.client.lookup_customer(external_id="usr_a")


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("7", 7.0), ("garbage", None), ("100000", 60.0)],
)
async def test_a_429_is_unavailable_with_the_retry_after_it_asked_for(
    upstream: Upstream, retry_after: str, expected: float | None
) -> None:
    await upstream.fault(
        path="/card-issuer/lookup-customer",
        status=429,
        body={"error": "rate_limit_exceeded", "retry_after": 7},
        headers={"Retry-After": retry_after},
    )
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.client.lookup_customer(external_id="usr_a")
    assert (caught.value.status, caught.value.retry_after) == (429, expected)


def test_retry_after_accepts_an_http_date() -> None:
    now = time.time()
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("١٢") is None  # non-ASCII digits are not a number of seconds
    assert parse_retry_after("") is None


async def test_a_connection_dropped_after_commit_is_unavailable_and_maybe_committed(socket_upstream: Upstream) -> None:
    up = socket_upstream
    await up.fault(path="/yativo-card/customers/onboard", drop=True, after=True, times=1)
    with pytest.raises(UpstreamUnavailable) as caught:
        await up.client.onboard("ada@example.com", "usr_ada")
    assert caught.value.maybe_committed is True
    # It did commit: the customer exists and can be found to reconcile.
    assert (await up.client.lookup_customer(external_id="usr_ada")) is not None


async def test_a_stalled_post_times_out_once_and_is_not_resent(socket_upstream: Upstream) -> None:
    up = socket_upstream
    await up.client.lookup_customer(external_id="usr_a")  # token first, so only the onboard stalls
    await up.fault(path="/yativo-card/customers/onboard", latencyMs=900, times=1)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        await up.client.onboard("ada@example.com", "usr_ada")
    assert time.monotonic() - started < 0.8
    assert caught.value.maybe_committed is True
    await asyncio.sleep(0.6)  # the emulator records a call when it has answered it
    assert len(await up.calls("/customers/onboard")) == 1


async def test_a_stalled_read_is_retried_and_answers(socket_upstream: Upstream) -> None:
    up = socket_upstream
    await up.client.lookup_customer(external_id="usr_a")
    await up.fault(path="/card-issuer/lookup-customer", latencyMs=2000, times=1)
    assert await up.client.lookup_customer(external_id="usr_a") is None
    assert len(await up.calls("/lookup-customer")) == 3  # the first, the stalled one, the retry


async def test_a_read_answered_500_is_retried_but_a_post_is_not(upstream: Upstream) -> None:
    await up_token(upstream)
    await upstream.fault(path="/card-issuer/lookup-customer", status=500, body="<html>oops</html>", times=1)
    assert await upstream.client.lookup_customer(external_id="usr_x") is None
    await upstream.fault(path="/yativo-card/customers/onboard", status=500, body="<html>oops</html>", times=1)
    with pytest.raises(UpstreamUnavailable):
        await upstream.client.onboard("ada@example.com", "usr_ada")
    assert len(await upstream.calls("/customers/onboard")) == 1


async def test_a_short_429_is_waited_out_even_for_a_post(upstream: Upstream) -> None:
    await up_token(upstream)
    await upstream.fault(
        path="/yativo-card/customers/onboard", status=429, headers={"Retry-After": "0"}, body="{}", times=1
    )
    answer = await upstream.client.onboard("ada@example.com", "usr_ada")
    assert answer.yativo_card_id
    assert len(await upstream.calls("/customers/onboard")) == 2


async def test_a_long_429_is_passed_on_without_waiting(upstream: Upstream) -> None:
    await up_token(upstream)
    await upstream.fault(path="/card-issuer/lookup-customer", status=429, headers={"Retry-After": "30"}, body="{}")
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.client.lookup_customer(external_id="usr_x")
    assert time.monotonic() - started < 0.5
    assert caught.value.retry_after == 30
    asked = [c for c in await upstream.calls("/lookup-customer") if c["query"] == "external_id=usr_x"]
    assert len(asked) == 1


async def test_a_refused_connection_is_retried_a_bounded_number_of_times() -> None:
    async with YativoClient(f"http://127.0.0.1:{free_port()}/api/v1", "k", "s") as client:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await client.lookup_customer(external_id="usr_x")
        assert time.monotonic() - started < 2.5


async def test_the_breaker_opens_after_repeated_failures_and_recovers_by_itself(upstream: Upstream) -> None:
    now = [1000.0]
    client = upstream.client
    client._circuits = Circuits(threshold=3, cooldown=5.0, clock=lambda: now[0])
    await up_token(upstream)
    await upstream.fault(path="/yativo-card/customers/*", status=503, body="down")
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await client.kyc_status("yc_1")  # a read: retried, so one call here may be several upstream
    assert client.circuits["kyc_status"].state is State.OPEN
    before = len(await upstream.calls("/kyc-status"))
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.kyc_status("yc_1")
    assert time.monotonic() - started < 0.05
    assert caught.value.circuit_open and caught.value.retry_after is not None
    assert len(await upstream.calls("/kyc-status")) == before  # answered without calling
    # A 4xx is an answer, not a failure: it would not have opened the circuit (see below). Now recover.
    (await upstream.control.delete("/_emulator/faults")).raise_for_status()
    now[0] += 5.0
    with pytest.raises(UpstreamRejected):
        await client.kyc_status("yc_1")  # the probe reaches the upstream, which answers "not found"
    assert client.circuits["kyc_status"].state is State.CLOSED


async def test_business_refusals_never_open_the_breaker(upstream: Upstream) -> None:
    upstream.client._circuits = Circuits(threshold=2, minimum_calls=2)
    for _ in range(5):
        with pytest.raises(UpstreamRejected):
            await upstream.client.kyc_status("yc_unknown")
    assert upstream.client.circuits["kyc_status"].state is State.CLOSED


async def test_a_huge_answer_is_refused_without_being_buffered_whole(upstream: Upstream) -> None:
    await up_token(upstream)
    await upstream.fault(path="/card-issuer/lookup-customer", status=200, body="x" * (300 * 1024), times=1)
    with pytest.raises(UpstreamBadResponse) as caught:
        await upstream.client.lookup_customer(external_id="usr_x")
    assert "too large" in caught.value.reason


async def up_token(up: Upstream) -> None:
    """Fetch the access token first, so a fault on a wide path hits only the call under test."""
    await up.client.lookup_customer(external_id="usr_warmup")


async def test_a_refused_connection_is_unavailable_and_certainly_not_committed() -> None:
    async with YativoClient(f"http://127.0.0.1:{free_port()}/api/v1", "k", "s") as client:
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.onboard("ada@example.com", "usr_ada")
    assert caught.value.maybe_committed is False
