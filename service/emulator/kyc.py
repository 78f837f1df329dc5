"""Identity checks: the KYC link and status routes, and the control plane's way to set a status."""

from __future__ import annotations

import secrets
from typing import Any, Final

from service.emulator.store import Refusal, Store, customer_record, out_of_order

# The emulator's choices where the docs are silent:
# - Fetching a kyc-link while KYC is "expired" starts a new check (status back to pending, timer
#   restarted); "rejected" stays rejected (links are still handed out). A status set through the control
#   plane switches the auto-approve timer off for that customer. (The timer itself is `Store.settle`.)

KYC_STATUSES: Final = ("pending", "in_progress", "pending_review", "approved", "rejected", "expired")


class Kyc:
    """GET /kyc-link and /kyc-status of the customer namespace, and POST /_emulator/customers/{email}/kyc."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def link(self, yativo_card_id: str) -> dict[str, Any]:
        customer, now = self._store.customer(yativo_card_id)
        if not customer.email_verified:
            raise out_of_order(customer, "Verify the email OTP before requesting a KYC link")
        if customer.kyc_status == "approved":
            raise out_of_order(customer, "KYC is already approved")
        if customer.kyc_status == "expired":
            customer.kyc_status = "pending"
            customer.kyc_set_by_hand = False
            customer.kyc_link_first_fetched_at = None
        if customer.kyc_link_first_fetched_at is None:
            customer.kyc_link_first_fetched_at = now
        data: dict[str, Any] = {"yativo_card_id": customer.yativo_card_id}
        shape = self._store.config.kyc_link_shape
        if shape in ("sumsub", "both"):
            sdk_token = f"_act-sbx-{secrets.token_urlsafe(24)}"
            data["sumsub_link"] = f"https://kyc.sumsub.com/msdk/v2?accessToken={sdk_token}"
            data["sumsub_sdk_token"] = sdk_token
            data["applicant_id"] = customer.applicant_id
        if shape in ("kyc_url", "both"):
            data["kyc_url"] = f"https://kyc.yativo.com/verify?token={secrets.token_urlsafe(24)}"
            data["instructions"] = (
                "Direct the customer to open this URL to upload a government ID and complete the liveness check."
            )
        if shape == "both":
            data["kyc_type"] = "sumsub"
        data["next_step"] = "kyc_status"
        return data

    def status(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._store.customer(yativo_card_id)
        if not customer.email_verified:
            raise out_of_order(customer, "Verify the email OTP before checking KYC")
        data: dict[str, Any] = {"yativo_card_id": customer.yativo_card_id, "kyc_status": customer.kyc_status}
        if customer.kyc_status == "approved":
            # Documented quirk: "create_virtual_card" although source of funds and phone are still due.
            data |= {"verification_level": "STANDARD", "terms_accepted": True, "next_step": "create_virtual_card"}
        else:
            data |= {"verification_level": None, "terms_accepted": False, "next_step": None}
        if customer.kyc_status == "rejected":
            data["rejection_reason"] = "Document not accepted"
        return data

    def set_status(self, email: str, status: str) -> dict[str, Any]:
        if status not in KYC_STATUSES:
            raise Refusal(400, "INVALID_KYC_STATUS", f"status must be one of {', '.join(KYC_STATUSES)}")
        store = self._store
        customer = store.by_email(email)
        now = store.clock.now()
        store.settle(customer, now)
        customer.kyc_set_by_hand = True
        if status == "approved" and customer.kyc_status != "approved":
            customer.kyc_approved_at = now
        elif status != "approved" and not customer.cards:
            customer.kyc_approved_at = None
            customer.safe_deployed_at = None
        customer.kyc_status = status
        return customer_record(store.settle(customer, now))
