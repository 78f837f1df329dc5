"""The card-issuer namespace: looking a customer up by any identifier and the full customer read."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from service.emulator.clock import iso
from service.emulator.store import Customer, Refusal, Store, normalize_email

FLOW_STEPS: Final = {
    "otp_requested": 1,
    "otp_verified": 2,
    "kyc_initiated": 3,
    "kyc_completed": 4,
    "safe_deploying": 5,
    "active": 6,
}
LOOKUP_IDENTIFIERS: Final = ("id", "yativo_card_id", "customer_id", "card_id", "external_id", "email")

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


class Issuer:
    """GET /card-issuer/lookup-customer and /card-issuer/customers/{id}."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def lookup(self, query: Mapping[str, str]) -> dict[str, Any]:
        given = {key: query[key] for key in LOOKUP_IDENTIFIERS if query.get(key)}
        if len(given) != 1:
            raise Refusal(400, "MISSING_IDENTIFIER", f"Provide one of: {', '.join(LOOKUP_IDENTIFIERS)}")
        ((key, value),) = given.items()
        customer = self._store.find(_lookup_predicate(key, value))
        customer = self._store.settle(customer, self._store.clock.now())
        approved = customer.kyc_status == "approved"
        return {
            "yativo_card_id": customer.yativo_card_id,
            "external_id": customer.external_customer_id,
            "email": customer.email,
            "flow_status": customer.flow_status,
            "currency": "USD" if approved else None,
            "token": "USDC" if approved else None,
            "safe_deployed": customer.safe_deployed_at is not None,
            "cards_count": len(customer.cards),
            "cards": [
                {
                    "card_id": card.card_id,
                    "last_four": card.last_four,
                    "card_type": card.card_type,
                    "is_frozen": card.status == "frozen",
                    "is_lost": False,
                    "is_blocked": False,
                    "status": card.status,
                }
                for card in customer.cards
            ],
            "created_at": iso(customer.created_at),
        }

    def customer(self, customer_key: str) -> dict[str, Any]:
        customer = self._store.find(
            lambda c: (
                customer_key in (c.yativo_card_id, c.customer_id)
                or (c.external_customer_id is not None and c.external_customer_id == customer_key)
            )
        )
        customer = self._store.settle(customer, self._store.clock.now())
        status = customer.flow_status
        deployed_at = customer.safe_deployed_at
        return {
            "yativo_card_id": customer.yativo_card_id,
            "external_id": customer.external_customer_id,
            "email": customer.email,
            "flow_status": status,
            "step": FLOW_STEPS[status],
            "next_action": _next_action(customer),
            "kyc_status": customer.kyc_status,
            "currency": "USD" if customer.kyc_status == "approved" else None,
            "safe_deployed": deployed_at is not None,
            "ledger_balance": None if deployed_at is None else 0.0,
            "available_balance": None if deployed_at is None else 0.0,
            "pending_balance": None if deployed_at is None else 0.0,
            "balance_freshness": None if deployed_at is None else "realtime",
            "balance_updated_at": None if deployed_at is None else iso(deployed_at),
            "cards_count": len(customer.cards),
            "pin_set": False,
            "cards": [
                {
                    "card_id": card.card_id,
                    "last_four": card.last_four,
                    "card_type": card.card_type,
                    "status": card.status,
                    "is_frozen": card.status == "frozen",
                    "is_lost": False,
                    "is_stolen": False,
                    "is_blocked": False,
                    "is_void": False,
                    "pin_set": False,
                    "activated_at": iso(card.created_at),
                    "created_at": iso(card.created_at),
                }
                for card in customer.cards
            ],
            "created_at": iso(customer.created_at),
        }


def _lookup_predicate(key: str, value: str) -> Callable[[Customer], bool]:
    if key == "yativo_card_id":
        return lambda c: c.yativo_card_id == value
    if key == "customer_id":
        # Documented: a customer_id that is not an ObjectId falls back to a yativo_card_id lookup.
        if _OBJECT_ID.match(value):
            return lambda c: c.customer_id == value
        return lambda c: c.yativo_card_id == value
    if key == "id":
        return lambda c: c.customer_id == value
    if key == "card_id":
        return lambda c: any(card.card_id == value for card in c.cards)
    if key == "external_id":
        return lambda c: c.external_customer_id == value
    wanted = normalize_email(value)
    return lambda c: c.email == wanted


def _next_action(customer: Customer) -> str:
    status = customer.flow_status
    if status == "otp_requested":
        return "Customer must verify the OTP sent to their email"
    if status == "otp_verified":
        return "Complete KYC verification"
    if status == "kyc_initiated":
        return "Awaiting KYC verification"
    if status == "safe_deploying":
        return "Account wallet is being deployed, wait a few minutes"
    if status == "active":
        return "Card is active, customer can spend"
    if customer.sof_submitted_at is None:
        return "Submit source-of-funds questionnaire"
    if not customer.phone_verified:
        return "Verify phone number"
    return "Create virtual card"
