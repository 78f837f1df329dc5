"""Customer onboarding: creating a customer, its email code (sent to the outbox), verifying it, and reset."""

from __future__ import annotations

import re
import secrets
from typing import Any, Final

from service.emulator.store import (
    Customer,
    Refusal,
    Store,
    normalize_email,
    out_of_order,
    resume_step,
)

# The emulator's choices where the docs are silent:
# - An email burned by a reset answers 409 EMAIL_ALREADY_REGISTERED.
# - The fifth wrong try of one email code answers 400 OTP_ATTEMPTS_EXCEEDED and the code is dead from
#   then on. Repeating onboard while otp_requested sends a new code, which replaces the old one, when the
#   current code is expired, dead or older than otp_resend_seconds (60); sooner, nothing is sent. The docs
#   name no resend endpoint for card customers: starting again is how the service renews a code (the
#   assumption it is built on), and it does so only after its own resend cooldown or for a dead code.
# - A reset once a card exists answers 409 CARD_ALREADY_ISSUED.

MAX_EMAIL_LENGTH: Final = 254
ONBOARDED_FLOW_STATUSES: Final = frozenset({"active", "safe_deployed", "kyc_approved"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:2]}***@{domain}"


def _solana_address() -> str:
    return "".join(secrets.choice(_BASE58) for _ in range(44))


class Customers:
    """POST /onboard, /verify-otp and /reset of the customer namespace."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def onboard(self, email: str | None, external_customer_id: str | None) -> dict[str, Any]:
        store = self._store
        if email is None or not _EMAIL.match(email.strip()) or len(email.strip()) > MAX_EMAIL_LENGTH:
            raise Refusal(400, "INVALID_EMAIL", "A valid email address is required")
        normalized = normalize_email(email)
        if normalized == normalize_email(store.config.issuer_email):
            raise Refusal(
                400, "ISSUER_EMAIL_NOT_ALLOWED", "The issuer's own account email cannot be used for a customer card"
            )
        if normalized == normalize_email(store.config.own_card_email):
            raise Refusal(
                400,
                "EMAIL_ALREADY_IN_USE",
                "This email is already used by the issuer's personal card",
                {"account_type": "user", "flow_status": "card_created"},
            )
        if normalized in store.burned_emails:
            raise Refusal(
                409,
                "EMAIL_ALREADY_REGISTERED",
                "This email belonged to a customer that was reset and cannot be registered again",
            )
        now = store.clock.now()
        for customer in store.customers.values():
            if customer.email == normalized:
                raise self._repeat(store.settle(customer, now), found_by_email=True, now=now)
        if external_customer_id is not None:
            for customer in store.customers.values():
                if customer.external_customer_id == external_customer_id:
                    raise self._repeat(store.settle(customer, now), found_by_email=False, now=now)

        customer = Customer(
            yativo_card_id=f"yativo_card_customer_{secrets.token_hex(8)}_{int(now * 1000)}",
            customer_id=secrets.token_hex(12),
            external_customer_id=external_customer_id,
            email=normalized,
            created_at=now,
            applicant_id=secrets.token_hex(12),
            wallet_address=_solana_address(),
        )
        store.customers[customer.yativo_card_id] = customer
        customer.email_code = store.send_code(customer.email, "email", now)
        return {
            "yativo_card_id": customer.yativo_card_id,
            "customer_id": customer.customer_id,
            "external_customer_id": customer.external_customer_id,
            "email_masked": mask_email(customer.email),
            "next_step": "verify_otp",
            "otp_expires_in_seconds": store.config.otp_ttl_seconds,
        }

    def verify_otp(self, yativo_card_id: str, otp: str) -> dict[str, Any]:
        customer, now = self._store.customer(yativo_card_id)
        if customer.flow_status != "otp_requested" or customer.email_code is None:
            raise out_of_order(customer, "The email is already verified")
        code = customer.email_code
        if code.dead:
            raise Refusal(
                400, "OTP_ATTEMPTS_EXCEEDED", "Too many failed attempts. Restart onboarding to get a new code."
            )
        if now >= code.expires_at:
            raise Refusal(400, "OTP_EXPIRED", "OTP has expired. Request a new one.")
        if not secrets.compare_digest(otp.strip().encode(), code.code.encode()):
            code.failed_attempts += 1
            if code.dead:
                raise Refusal(
                    400, "OTP_ATTEMPTS_EXCEEDED", "Too many failed attempts. Restart onboarding to get a new code."
                )
            raise Refusal(400, "OTP_VERIFICATION_FAILED", "Invalid OTP")
        customer.email_verified = True
        customer.email_code = None
        return {"yativo_card_id": customer.yativo_card_id, "flow_status": customer.flow_status, "next_step": "kyc_link"}

    def reset(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._store.customer(yativo_card_id)
        if customer.cards:
            raise Refusal(
                409, "CARD_ALREADY_ISSUED", "A card was already issued to this customer; contact support for a reset"
            )
        del self._store.customers[customer.yativo_card_id]
        self._store.burned_emails.add(customer.email)
        return {
            "deleted_card_id": customer.yativo_card_id,
            "email_masked": mask_email(customer.email),
            "external_customer_id": customer.external_customer_id,
            "next_step": "POST /api/yativo-card/customers/onboard",
            "email_warning": (
                "The email address used previously remains registered with the card network and cannot be reused. "
                "Use a different email address when re-onboarding this customer."
            ),
        }

    def _repeat(self, customer: Customer, *, found_by_email: bool, now: float) -> Refusal:
        status = customer.flow_status
        if status in ONBOARDED_FLOW_STATUSES:
            return Refusal(
                409,
                "CUSTOMER_ALREADY_ONBOARDED",
                "Customer has already completed onboarding",
                {
                    "yativo_card_id": customer.yativo_card_id,
                    "flow_status": status,
                    "external_customer_id": customer.external_customer_id,
                    "next_step": "none",
                },
            )
        code = customer.email_code
        resend_due = (
            code is None
            or code.dead
            or now >= min(code.expires_at, code.sent_at + self._store.config.otp_resend_seconds)
        )
        if status == "otp_requested" and resend_due:
            customer.email_code = self._store.send_code(customer.email, "email", now)
        data = {"yativo_card_id": customer.yativo_card_id, "flow_status": status, "next_step": resume_step(status)}
        if found_by_email:
            return Refusal(
                409,
                "CUSTOMER_CARD_ALREADY_ACTIVE",
                "A customer card with this email already exists",
                data | {"external_customer_id": customer.external_customer_id},
            )
        # Documented quirk: the same code as 400, and without external_customer_id, when found by that id.
        return Refusal(400, "CUSTOMER_CARD_ALREADY_ACTIVE", "Customer card onboarding already in progress", data)
