"""Phone verification: the SMS code (sent to the outbox) and its check, after source of funds."""

from __future__ import annotations

import re
import secrets
from typing import Any

from service.emulator.clock import iso
from service.emulator.store import Refusal, Store, out_of_order

# The emulator's choices where the docs are silent:
# - A phone number that is not E.164 answers 400 INVALID_PHONE_NUMBER; a wrong SMS code 400
#   INVALID_VERIFICATION_CODE; an SMS code older than otp_ttl_seconds 400 VERIFICATION_CODE_EXPIRED.
#   Requesting again sends a new code and replaces the old one. No attempt limit on SMS codes.

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def mask_phone(phone: str) -> str:
    return f"{phone[:6]}****"


class Phone:
    """POST /phone/request-verification and /phone/verify of the customer namespace."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def request_code(self, yativo_card_id: str, phone_number: str | None) -> dict[str, Any]:
        customer, now = self._store.customer(yativo_card_id)
        if customer.sof_submitted_at is None or customer.kyc_status != "approved":
            raise out_of_order(customer, "Submit source of funds before verifying a phone number")
        if customer.phone_verified:
            raise out_of_order(customer, "The phone number is already verified")
        if phone_number is None or not _E164.match(phone_number):
            raise Refusal(400, "INVALID_PHONE_NUMBER", "Phone number must be in international E.164 format")
        customer.phone_number = phone_number
        customer.phone_code = self._store.send_code(phone_number, "sms", now)
        return {
            "yativo_card_id": customer.yativo_card_id,
            "phone_number": mask_phone(phone_number),
            "otp_requested_at": iso(now),
            "next_step": "Verify OTP using POST /phone/verify",
        }

    def verify(self, yativo_card_id: str, code: str) -> dict[str, Any]:
        customer, now = self._store.customer(yativo_card_id)
        pending = customer.phone_code
        if pending is None or customer.phone_number is None or customer.phone_verified:
            raise out_of_order(customer, "Request a phone verification code first")
        if now >= pending.expires_at:
            raise Refusal(400, "VERIFICATION_CODE_EXPIRED", "Verification code has expired. Request a new one.")
        if not secrets.compare_digest(code.strip().encode(), pending.code.encode()):
            pending.failed_attempts += 1
            raise Refusal(400, "INVALID_VERIFICATION_CODE", "Invalid verification code")
        customer.phone_verified = True
        customer.phone_code = None
        return {
            "yativo_card_id": customer.yativo_card_id,
            "phone_number": mask_phone(customer.phone_number),
            "is_verified": True,
            "next_step": "Create virtual card using POST /cards/virtual",
        }
