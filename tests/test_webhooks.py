"""POST /v1/webhooks/yativo: signed, fresh, de-duplicated deliveries; card events reach the user's next answer."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.emulator.webhooks import event, signature, signed_delivery
from service.onboarding.user import User
from service.settings import ConfigError, load_settings
from service.storage import keys
from tests.conftest import JWT_SECRET, WEBHOOK_SECRET, Harness, free_port
from tests.journey import EMAIL, drive
from tests.leakguard import register

URL = "/v1/webhooks/yativo"


async def deliver(client: Any, envelope: dict[str, Any], *, secret: str = WEBHOOK_SECRET, **kw: Any) -> Any:
    body, headers = signed_delivery(secret, envelope, **kw)
    return await client.post(URL, content=body, headers=headers)


async def freeze(bff: Harness, status: str = "frozen") -> dict[str, Any]:
    response = await bff.control.post(f"/_emulator/customers/{EMAIL}/card-status", json={"status": status})
    response.raise_for_status()
    return response.json()["event"]  # type: ignore[no-any-return]


def snapshot_cached(bff: Harness, sub: str = "user-ada") -> bool:
    return bool(bff.redis.exists(keys.snapshot(User(sub).uid)))


async def test_a_signed_card_frozen_event_is_applied_and_the_user_sees_it_on_the_next_read(bff: Harness) -> None:
    await drive(bff, "done")
    assert (await bff.get()).json()["card"]["status"] == "active"
    envelope = await freeze(bff)
    response = await deliver(bff.client, envelope)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "applied"}
    assert not snapshot_cached(bff)
    state = (await bff.get()).json()
    assert state["card"]["status"] == "frozen"
    assert state["nextAction"]["type"] == "done"
    await deliver(bff.client, await freeze(bff, "active"))
    assert (await bff.get()).json()["card"]["status"] == "active"


async def test_a_replayed_delivery_is_acknowledged_and_not_applied_again(bff: Harness) -> None:
    await drive(bff, "done")
    envelope = await freeze(bff)
    body, headers = signed_delivery(WEBHOOK_SECRET, envelope)
    first = await bff.client.post(URL, content=body, headers=headers)
    await bff.get()  # re-cached, frozen
    calls = len(await bff.calls())
    replay = await bff.client.post(URL, content=body, headers=headers)
    resent = await deliver(bff.client, envelope)  # Yativo's retry: same event id, fresh timestamp and signature
    assert (first.json(), replay.json(), resent.json()) == (
        {"status": "applied"},
        {"status": "duplicate"},
        {"status": "duplicate"},
    )
    assert replay.status_code == resent.status_code == 200
    assert snapshot_cached(bff), "the duplicate did not drop the snapshot again"
    assert (await bff.get()).json()["card"]["status"] == "frozen"
    assert len(await bff.calls()) == calls, "a duplicate costs no upstream call"


def tampered(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"frozen", b"active").replace(b"Frozen", b"Active"), headers


BAD_SIGNATURES = {
    "wrong secret": lambda body, h: (
        body,
        signed_delivery("whsec_someone-elses-secret-000000", {})[1] | {"X-Yativo-Timestamp": h["X-Yativo-Timestamp"]},
    ),
    "tampered body": tampered,
    "missing signature": lambda body, h: (body, {k: v for k, v in h.items() if k != "X-Yativo-Signature"}),
    "missing timestamp": lambda body, h: (body, {k: v for k, v in h.items() if k != "X-Yativo-Timestamp"}),
    "signature without sha256 prefix": lambda body, h: (body, h | {"X-Yativo-Signature": h["X-Yativo-Signature"][7:]}),
    "upper-case hex": lambda body, h: (body, h | {"X-Yativo-Signature": h["X-Yativo-Signature"].upper()}),
    "garbage signature": lambda body, h: (body, h | {"X-Yativo-Signature": "sha256=zz"}),
    "timestamp not a number": lambda body, h: (body, h | {"X-Yativo-Timestamp": "yesterday"}),
    "timestamp changed after signing": lambda body, h: (
        body,
        h | {"X-Yativo-Timestamp": str(int(h["X-Yativo-Timestamp"]) + 1)},
    ),
}


@pytest.mark.parametrize("forge", list(BAD_SIGNATURES.values()), ids=list(BAD_SIGNATURES))
async def test_a_bad_signature_is_401_and_nothing_is_applied(bff: Harness, forge: Any) -> None:
    await drive(bff, "done")
    body, headers = forge(*signed_delivery(WEBHOOK_SECRET, await freeze(bff)))
    calls = len(await bff.calls())
    response = await bff.client.post(URL, content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "webhook_signature_invalid"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert snapshot_cached(bff)
    assert (await bff.get()).json()["card"]["status"] == "active"
    assert len(await bff.calls()) == calls


@pytest.mark.parametrize("offset", [-301, 301, -3600], ids=["301 s old", "301 s ahead", "an hour old"])
async def test_a_stale_or_future_timestamp_is_401_even_with_a_valid_signature(bff: Harness, offset: int) -> None:
    await drive(bff, "done")
    response = await deliver(bff.client, await freeze(bff), timestamp=int(bff.clock()) + offset)
    assert response.status_code == 401
    assert response.json()["code"] == "webhook_signature_invalid"
    assert snapshot_cached(bff)


async def test_a_timestamp_within_five_minutes_is_accepted(bff: Harness) -> None:
    response = await deliver(bff.client, event("transaction.settled", {}), timestamp=int(bff.clock()) - 290)
    assert response.status_code == 200


@pytest.mark.parametrize("kind", ["transaction.settled", "customer.kyc.approved", "something.new.next.year"])
async def test_an_unknown_or_uninteresting_event_type_is_acknowledged_and_ignored(bff: Harness, kind: str) -> None:
    await drive(bff, "done")
    [customer] = await bff.customers()
    response = await deliver(bff.client, event(kind, {"yativo_card_id": customer["yativo_card_id"]}))
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    assert snapshot_cached(bff)


async def test_a_card_event_for_a_customer_we_do_not_know_is_ignored(bff: Harness) -> None:
    await drive(bff, "done")
    response = await deliver(bff.client, event("card.frozen", {"yativo_card_id": "yc_not_ours", "status": "Frozen"}))
    assert response.json() == {"status": "ignored"}
    assert snapshot_cached(bff)


async def test_a_signed_body_that_is_not_an_envelope_is_acknowledged_not_retried_forever(bff: Harness) -> None:
    for body in (b"not json", b'{"type": "card.frozen"}', b'{"id": 5, "type": "card.frozen"}'):
        headers = signed_delivery(WEBHOOK_SECRET, {})[1]
        headers["X-Yativo-Signature"] = signature(WEBHOOK_SECRET, headers["X-Yativo-Timestamp"], body)
        response = await bff.client.post(URL, content=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"status": "ignored"})


async def test_a_delivery_still_being_applied_elsewhere_is_503_so_it_is_retried(bff: Harness) -> None:
    envelope = event("card.frozen", {"yativo_card_id": "yc_x"})
    bff.redis.set("bff:wh:" + hashlib.sha256(envelope["id"].encode()).hexdigest()[:32], b"pending", ex=60)
    response = await deliver(bff.client, envelope)
    assert response.status_code == 503
    assert response.json()["code"] == "webhook_store_unavailable"
    assert int(response.headers["retry-after"]) >= 1


async def test_a_body_over_16_kib_is_413_before_any_signature_work(bff: Harness) -> None:
    envelope = event("card.frozen", {"padding": "x" * 17000})
    response = await deliver(bff.client, envelope)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_webhooks_need_no_user_token_and_the_onboarding_routes_still_do(bff: Harness) -> None:
    response = await deliver(bff.client, event("transaction.settled", {}))
    assert response.status_code == 200
    assert (await bff.client.get("/v1/card-onboarding")).status_code == 401


# --- configurations of their own -----------------------------------------------------------------


@pytest.fixture
async def app_with(redis_url: str) -> AsyncIterator[Any]:
    from litestar.testing import AsyncTestClient

    from service.app import create_app

    clients: list[Any] = []

    async def make(**env: str) -> Any:
        settings = load_settings({"AUTH_JWT_SECRET": JWT_SECRET, "REDIS_URL": redis_url, **env})
        register(*env.values())
        client = AsyncTestClient(app=create_app(settings))
        await client.__aenter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.__aexit__(None, None, None)


NEW, OLD = "whsec_new-rotated-in-secret-00000000", "whsec_old-rotated-out-secret-0000000"


async def test_during_a_rotation_both_the_new_and_the_previous_secret_are_accepted(
    app_with: Any, redis_admin: Any
) -> None:
    client = await app_with(YATIVO_WEBHOOK_SECRET=NEW, YATIVO_WEBHOOK_SECRET_PREVIOUS=OLD)
    new = await deliver(client, event("transaction.settled", {}), secret=NEW)
    old = await deliver(client, event("transaction.settled", {}), secret=OLD)
    other = await deliver(client, event("transaction.settled", {}), secret="whsec_never-configured-secret-00000")
    assert (new.status_code, old.status_code, other.status_code) == (200, 200, 401)
    after = await app_with(YATIVO_WEBHOOK_SECRET=NEW)  # rotation finished: the old secret is refused
    assert (await deliver(after, event("transaction.settled", {}), secret=OLD)).status_code == 401


async def test_without_a_configured_secret_every_delivery_is_503_not_accepted(app_with: Any) -> None:
    client = await app_with()
    response = await deliver(client, event("card.frozen", {}), secret="whsec_anything-at-all-000000000000")
    assert response.status_code == 503
    assert response.json()["code"] == "webhooks_not_configured"
    assert response.headers["retry-after"]


async def test_with_redis_down_a_valid_delivery_is_503_so_yativo_retries(redis_url: str) -> None:
    from litestar.testing import AsyncTestClient

    from service.app import create_app

    down = f"redis://127.0.0.1:{free_port()}/0"
    settings = load_settings(
        {"AUTH_JWT_SECRET": JWT_SECRET, "REDIS_URL": down, "YATIVO_WEBHOOK_SECRET": WEBHOOK_SECRET}
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        started = time.monotonic()
        response = await deliver(client, event("card.frozen", {"yativo_card_id": "yc_1"}))
    assert response.status_code == 503
    assert response.json()["code"] == "webhook_store_unavailable"
    assert response.json()["nextAction"]["type"] == "retry_later"
    assert int(response.headers["retry-after"]) >= 1
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"YATIVO_WEBHOOK_SECRET": "short"}, "YATIVO_WEBHOOK_SECRET"),
        ({"YATIVO_WEBHOOK_SECRET": NEW, "YATIVO_WEBHOOK_SECRET_PREVIOUS": "short"}, "YATIVO_WEBHOOK_SECRET_PREVIOUS"),
        ({"YATIVO_WEBHOOK_SECRET_PREVIOUS": OLD}, "YATIVO_WEBHOOK_SECRET_PREVIOUS"),
    ],
)
def test_a_bad_webhook_secret_setting_names_the_variable_and_not_the_value(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"AUTH_JWT_SECRET": JWT_SECRET, **env})
    assert named in str(caught.value)
    assert all(value not in str(caught.value) for value in env.values())


def test_a_webhook_secret_is_never_printed_with_the_settings() -> None:
    settings = load_settings(
        {"AUTH_JWT_SECRET": JWT_SECRET, "YATIVO_WEBHOOK_SECRET": NEW, "YATIVO_WEBHOOK_SECRET_PREVIOUS": OLD}
    )
    assert NEW not in repr(settings) and OLD not in repr(settings)
