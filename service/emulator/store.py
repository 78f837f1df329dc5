"""The emulator's records (customers, cards, codes, tokens, outbox, call log) and the reads every operation shares."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Final

import msgspec

from service.emulator.clock import EmulatorClock, iso
from service.emulator.config import EmulatorConfig

# Every operation is a plain (non-async) method: on the one event loop that serves the app it runs
# to completion between two awaits, so a read and the write that depends on it never interleave with
# another request. That is what makes 30 concurrent onboards of one email create one customer.
#
# Where the upstream docs are silent, the emulator chooses (the BFF must cope with any real answer);
# the choices shared by every step are here, the others sit in the module of their step:
# - A step called out of order answers 409 INVALID_FLOW_STATE, data {yativo_card_id, flow_status,
#   next_step}; next_step uses the onboard-conflict tokens (verify_otp, kyc_link, continue, none).
#   Order: verify-otp only while otp_requested; kyc-link and kyc-status after the email is verified
#   (kyc-link not after approval); source of funds after KYC approval (answers can be replaced until a
#   card exists); phone after source of funds (request refused once verified); card after the phone.
# - An unknown yativo_card_id answers 404 CUSTOMER_NOT_FOUND in the endpoint's own envelope.
# - A body that is not JSON, or has a field of the wrong type, answers 400 VALIDATION_ERROR.
# - flow_status is derived: otp_requested -> otp_verified -> kyc_initiated (first kyc-link fetch or any
#   non-pending KYC status) -> kyc_completed (KYC approved) -> active (card issued). safe_deploying shows
#   only while source of funds and phone are done and the wallet is still deploying.

MAX_OTP_ATTEMPTS: Final = 5


class Refusal(Exception):
    """An upstream error answer: HTTP status, error code, message and optional data."""

    def __init__(self, status: int, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.data = data


class SentCode(msgspec.Struct, kw_only=True):
    code: str
    expires_at: float
    sent_at: float = 0.0
    failed_attempts: int = 0

    @property
    def dead(self) -> bool:
        return self.failed_attempts >= MAX_OTP_ATTEMPTS


class Card(msgspec.Struct, kw_only=True):
    card_id: str
    last_four: str
    created_at: float
    holder_name: str
    card_type: str = "virtual"
    status: str = "active"
    status_code: int = 1000
    status_name: str = "Active"


class Customer(msgspec.Struct, kw_only=True):
    yativo_card_id: str
    customer_id: str
    external_customer_id: str | None
    email: str
    created_at: float
    applicant_id: str
    wallet_address: str
    email_code: SentCode | None = None
    email_verified: bool = False
    kyc_status: str = "pending"
    kyc_link_first_fetched_at: float | None = None
    kyc_set_by_hand: bool = False
    kyc_approved_at: float | None = None
    safe_deployed_at: float | None = None
    # Set through the control plane: False holds the wallet in deployment, True deploys it as soon as KYC
    # is approved; None leaves it to the deploy timer (safe_deploy_seconds after approval).
    safe_deployed_by_hand: bool | None = None
    sof_submitted_at: float | None = None
    sof_answers: list[dict[str, str]] = msgspec.field(default_factory=list)
    phone_number: str | None = None
    phone_code: SentCode | None = None
    phone_verified: bool = False
    cards: list[Card] = msgspec.field(default_factory=list)

    @property
    def flow_status(self) -> str:
        if self.cards:
            return "active"
        if not self.email_verified:
            return "otp_requested"
        if self.kyc_status == "approved":
            if self.sof_submitted_at is not None and self.phone_verified and self.safe_deployed_at is None:
                return "safe_deploying"
            return "kyc_completed"
        if self.kyc_link_first_fetched_at is not None or self.kyc_status != "pending":
            return "kyc_initiated"
        return "otp_verified"


class OutboxMessage(msgspec.Struct, kw_only=True, rename="camel"):
    to: str
    kind: str
    code: str
    sent_at: str


class CallRecord(msgspec.Struct, kw_only=True, rename="camel"):
    method: str
    path: str
    query: str
    status: int | None
    idempotency_key: str | None
    request_id: str | None
    at: str
    fault_id: str | None = None
    dropped: bool = False


def normalize_email(email: str) -> str:
    return email.strip().lower()


def resume_step(flow_status: str) -> str:
    """The machine next_step token the upstream puts on onboard conflicts."""
    return {"otp_requested": "verify_otp", "otp_verified": "kyc_link", "active": "none"}.get(flow_status, "continue")


def six_digits() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def out_of_order(customer: Customer, message: str) -> Refusal:
    status = customer.flow_status
    return Refusal(
        409,
        "INVALID_FLOW_STATE",
        message,
        {"yativo_card_id": customer.yativo_card_id, "flow_status": status, "next_step": resume_step(status)},
    )


def not_found() -> Refusal:
    return Refusal(404, "CUSTOMER_NOT_FOUND", "Customer not found")


def customer_record(customer: Customer) -> dict[str, Any]:
    """What the control plane shows of one customer."""
    return {
        "yativo_card_id": customer.yativo_card_id,
        "customer_id": customer.customer_id,
        "external_customer_id": customer.external_customer_id,
        "email": customer.email,
        "flow_status": customer.flow_status,
        "kyc_status": customer.kyc_status,
        "sof_completed": customer.sof_submitted_at is not None,
        "phone_verified": customer.phone_verified,
        "safe_deployed": customer.safe_deployed_at is not None,
        "cards": [
            {
                "card_id": card.card_id,
                "last_four": card.last_four,
                "card_type": card.card_type,
                "status": card.status,
            }
            for card in customer.cards
        ],
    }


class Store:
    """Everything the emulator holds, with its settings and clock; `clear` forgets all of it."""

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock) -> None:
        self.config = config
        self.clock = clock
        self.customers: dict[str, Customer] = {}
        self.tokens: dict[str, float] = {}
        self.outbox: list[OutboxMessage] = []
        self.calls: list[CallRecord] = []
        self.burned_emails: set[str] = set()

    def clear(self) -> None:
        self.customers.clear()
        self.tokens.clear()
        self.outbox.clear()
        self.calls.clear()
        self.burned_emails.clear()

    def record_call(self, call: CallRecord) -> None:
        self.calls.append(call)

    def customer(self, yativo_card_id: str) -> tuple[Customer, float]:
        """The customer with its timers applied, and the time they were applied at."""
        customer = self.customers.get(yativo_card_id)
        if customer is None:
            raise not_found()
        now = self.clock.now()
        return self.settle(customer, now), now

    def find(self, predicate: Callable[[Customer], bool]) -> Customer:
        for customer in self.customers.values():
            if predicate(customer):
                return customer
        raise not_found()

    def by_email(self, email: str) -> Customer:
        wanted = normalize_email(email)
        return self.find(lambda c: c.email == wanted)

    def send_code(self, to: str, kind: str, now: float) -> SentCode:
        """A fresh code for `to`, "sent" by putting it in the outbox."""
        code = SentCode(code=six_digits(), expires_at=now + self.config.otp_ttl_seconds, sent_at=now)
        self.outbox.append(OutboxMessage(to=to, kind=kind, code=code.code, sent_at=iso(now)))
        return code

    def settle(self, customer: Customer, now: float) -> Customer:
        """Apply the timers (KYC auto-approval, wallet deployment) that are due by `now`."""
        delay = self.config.kyc_auto_approve_seconds
        started = customer.kyc_link_first_fetched_at
        if (
            delay is not None
            and started is not None
            and not customer.kyc_set_by_hand
            and customer.kyc_status in ("pending", "in_progress")
            and now >= started + delay
        ):
            customer.kyc_status = "approved"
            customer.kyc_approved_at = started + delay
        approved_at = customer.kyc_approved_at
        held = customer.safe_deployed_by_hand is False
        if approved_at is not None and customer.safe_deployed_at is None and not held:
            deploy_delay = 0.0 if customer.safe_deployed_by_hand else self.config.safe_deploy_seconds
            deployed_at = approved_at + deploy_delay
            if now >= deployed_at:
                customer.safe_deployed_at = deployed_at
        return customer
