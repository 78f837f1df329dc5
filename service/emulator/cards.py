"""Cards and the card account: issuing the virtual card, listing, status changes and the wallet's deployment."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from service.emulator.clock import iso
from service.emulator.store import Card, Refusal, Store, customer_record, out_of_order
from service.emulator.webhooks import CARD_STATUS_EVENTS, event

# The emulator's choices where the docs are silent:
# - A second virtual card answers 400 VIRTUAL_CARD_LIMIT_REACHED; a card while the wallet is still
#   deploying 409 SAFE_NOT_DEPLOYED.
# - The wallet deploys safe_deploy_seconds after KYC approval, unless the control plane holds it
#   (safe_deployed false) or releases it (safe_deployed true: deployed now, or at KYC approval if later).


class Cards:
    """POST /cards/virtual and GET /cards of the customer namespace, and the control plane's card and account."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create_virtual(self, yativo_card_id: str) -> dict[str, Any]:
        customer, now = self._store.customer(yativo_card_id)
        if any(card.card_type == "virtual" for card in customer.cards):
            raise Refusal(400, "VIRTUAL_CARD_LIMIT_REACHED", "Virtual card limit reached for this customer")
        if customer.kyc_status != "approved" or customer.sof_submitted_at is None or not customer.phone_verified:
            raise out_of_order(customer, "Complete KYC, source of funds and phone verification before creating a card")
        if customer.safe_deployed_at is None:
            raise Refusal(
                409, "SAFE_NOT_DEPLOYED", "The customer's card wallet is still being deployed. Try again shortly."
            )
        card = Card(
            card_id=str(uuid.uuid4()),
            last_four=f"{secrets.randbelow(10_000):04d}",
            created_at=now,
            holder_name="EMULATOR CUSTOMER",
        )
        customer.cards.append(card)
        return {
            "yativo_card_id": customer.yativo_card_id,
            "card_id": card.card_id,
            "card_type": card.card_type,
            "status": card.status,
            "status_code": card.status_code,
            "status_name": card.status_name,
            "activated_at": iso(card.created_at),
            "total_cards": len(customer.cards),
            "funding_wallet": {"address": customer.wallet_address, "network": "solana", "asset": "USDC"},
        }

    def list_for(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._store.customer(yativo_card_id)
        cards = [
            {
                "card_id": card.card_id,
                "card_type": card.card_type,
                "status_name": card.status_name,
                "is_frozen": card.status == "frozen",
                "last_four_digits": card.last_four,
                "holder_name": card.holder_name,
                "activated_at": iso(card.created_at),
            }
            for card in customer.cards
        ]
        return {"cards": cards, "total": len(cards)}

    def set_status(self, email: str, status: str) -> dict[str, Any]:
        """Change the customer's first card's status; returns the webhook event Yativo would send for it."""
        if status not in CARD_STATUS_EVENTS:
            raise Refusal(400, "INVALID_CARD_STATUS", f"status must be one of {', '.join(CARD_STATUS_EVENTS)}")
        customer = self._store.by_email(email)
        if not customer.cards:
            raise Refusal(409, "NO_CARD", "the customer has no card")
        card = customer.cards[0]
        kind, shown = CARD_STATUS_EVENTS[status]
        card.status, card.status_name = status, shown
        now = self._store.clock.now()
        data = {
            "yativo_card_id": customer.yativo_card_id,
            "card_id": f"tok_{card.card_id}",  # webhooks carry a card token, not the API card id
            "status": shown,
            "timestamp": iso(now),
        }
        return event(kind, data, now=now)

    def set_account(self, email: str, *, safe_deployed: bool) -> dict[str, Any]:
        """Hold the customer's card wallet in deployment (False) or deploy it (True); returns the customer record."""
        store = self._store
        customer = store.by_email(email)
        now = store.clock.now()
        store.settle(customer, now)
        if not safe_deployed and customer.cards:
            raise Refusal(409, "CARD_ALREADY_ISSUED", "the customer has a card, so its wallet is deployed")
        customer.safe_deployed_by_hand = safe_deployed
        if not safe_deployed:
            customer.safe_deployed_at = None
        elif customer.kyc_approved_at is not None and customer.safe_deployed_at is None:
            customer.safe_deployed_at = now
        return customer_record(store.settle(customer, now))
