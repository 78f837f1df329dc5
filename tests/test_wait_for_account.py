"""A card account still being prepared upstream: the user is told to wait, then gets the card, against the emulator."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness
from tests.journey import EMAIL, PHONE, action, drive


async def hold_account(bff: Harness, *, safe_deployed: bool) -> None:
    body = {"safe_deployed": safe_deployed}
    (await bff.control.post(f"/_emulator/customers/{EMAIL}/account", json=body)).raise_for_status()


def card_calls(calls: list[dict[str, Any]]) -> list[int | None]:
    return [call["status"] for call in calls if call["method"] == "POST" and call["path"].endswith("/cards/virtual")]


def assert_waits_for_account(response: Any) -> None:
    assert response.status_code == 200, response.text
    waiting = action(response)
    assert (waiting["type"], waiting["endpoint"]) == (
        "wait_for_account",
        {"method": "GET", "path": "/v1/card-onboarding"},
    )
    assert waiting["pollAfterSeconds"] > 0
    assert response.json()["card"] is None


async def test_a_user_whose_card_account_is_still_being_prepared_waits_and_then_gets_the_card(bff: Harness) -> None:
    await drive(bff, "verify_phone_code")
    await hold_account(bff, safe_deployed=False)

    verified = await bff.post("/phone-verification", {"code": await bff.last_code(PHONE, "sms")})
    tapped = await bff.post("/card")
    bff.clock.advance(30)
    polled = await bff.get()
    await hold_account(bff, safe_deployed=True)
    bff.clock.advance(30)
    ready = await bff.get()
    carded = await bff.post("/card")

    assert_waits_for_account(verified)
    assert_waits_for_account(tapped)
    assert_waits_for_account(polled)
    assert action(ready)["type"] == "create_card"
    assert action(carded)["type"] == "done"
    assert carded.json()["card"]["status"] == "active"
    # One refused card call while the account was held, one that issued the card: no retries in between.
    assert card_calls(await bff.calls()) == [409, 201]
