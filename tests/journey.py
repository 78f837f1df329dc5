"""Drives one user through the real API up to a given nextAction, the way a frontend would."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness

EMAIL = "ada@example.com"
PHONE = "+14155552671"
ORDER = [
    "provide_email",
    "verify_email_code",
    "complete_kyc",
    "wait_for_kyc",
    "answer_source_of_funds",
    "provide_phone",
    "verify_phone_code",
    "create_card",
    "done",
]


def action(response: Any) -> dict[str, Any]:
    return response.json()["nextAction"]  # type: ignore[no-any-return]


async def drive(bff: Harness, until: str, *, sub: str = "user-ada", email: str = EMAIL, phone: str = PHONE) -> Any:
    response = await bff.get(sub)
    for _ in range(12):
        kind = action(response)["type"]
        if kind == until:
            return response
        if kind == "provide_email":
            response = await bff.post("", {"email": email}, sub)
        elif kind == "verify_email_code":
            response = await bff.post("/email-verification", {"code": await bff.last_code(email, "email")}, sub)
        elif kind in ("complete_kyc", "wait_for_kyc"):
            await bff.set_kyc(email, "in_progress" if until == "wait_for_kyc" else "approved")
            bff.clock.advance(6)
            response = await bff.get(sub)
        elif kind == "answer_source_of_funds":
            questions = action(response)["questions"]
            answers = [{"question": q["id"], "answer": q["options"][0]} for q in questions]
            response = await bff.post("/source-of-funds", {"answers": answers}, sub)
        elif kind == "provide_phone":
            response = await bff.post("/phone", {"phoneNumber": phone}, sub)
        elif kind == "verify_phone_code":
            response = await bff.post("/phone-verification", {"code": await bff.last_code(phone, "sms")}, sub)
        elif kind == "create_card":
            response = await bff.post("/card", sub=sub)
        else:
            raise AssertionError(f"stuck at {kind}: {response.text}")
        assert response.status_code == 200, response.text
    raise AssertionError(f"never reached {until}")
