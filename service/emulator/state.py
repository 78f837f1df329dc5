"""In-memory model of Yativo's card-customer program: customers, codes, tokens, outbox and call log."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from service.emulator.config import EmulatorConfig

# Every operation is a plain (non-async) method: on the one event loop that serves the app it runs
# to completion between two awaits, so a read and the write that depends on it never interleave with
# another request. That is what makes 30 concurrent onboards of one email create one customer.
#
# Where the upstream docs are silent, the emulator chooses (the BFF must cope with any real answer):
# - A step called out of order answers 409 INVALID_FLOW_STATE, data {yativo_card_id, flow_status,
#   next_step}; next_step uses the onboard-conflict tokens (verify_otp, kyc_link, continue, none).
#   Order: verify-otp only while otp_requested; kyc-link and kyc-status after the email is verified
#   (kyc-link not after approval); source of funds after KYC approval (answers can be replaced until a
#   card exists); phone after source of funds (request refused once verified); card after the phone.
# - An unknown yativo_card_id answers 404 CUSTOMER_NOT_FOUND in the endpoint's own envelope.
# - A body that is not JSON, or has a field of the wrong type, answers 400 VALIDATION_ERROR.
# - An email burned by a reset answers 409 EMAIL_ALREADY_REGISTERED.
# - The fifth wrong try of one email code answers 400 OTP_ATTEMPTS_EXCEEDED and the code is dead from
#   then on. Repeating onboard while otp_requested sends a new code only when the current one is expired
#   or dead (the assumption the service is built on); otherwise nothing is sent.
# - Source-of-funds answers must answer every offered question exactly once with one of its options,
#   else 400 INVALID_SOURCE_OF_FUNDS_ANSWERS. Reading the questions again once answered says
#   status "completed" instead of "questions_retrieved".
# - A phone number that is not E.164 answers 400 INVALID_PHONE_NUMBER; a wrong SMS code 400
#   INVALID_VERIFICATION_CODE; an SMS code older than otp_ttl_seconds 400 VERIFICATION_CODE_EXPIRED.
#   Requesting again sends a new code and replaces the old one. No attempt limit on SMS codes.
# - A second virtual card answers 400 VIRTUAL_CARD_LIMIT_REACHED; a card while the wallet is still
#   deploying 409 SAFE_NOT_DEPLOYED; a reset once a card exists 409 CARD_ALREADY_ISSUED.
# - flow_status is derived: otp_requested -> otp_verified -> kyc_initiated (first kyc-link fetch or any
#   non-pending KYC status) -> kyc_completed (KYC approved) -> active (card issued). safe_deploying shows
#   only while source of funds and phone are done and the wallet is still deploying.
# - Fetching a kyc-link while KYC is "expired" starts a new check (status back to pending, timer
#   restarted); "rejected" stays rejected (links are still handed out). A status set through the control
#   plane switches the auto-approve timer off for that customer.

MAX_EMAIL_LENGTH: Final = 254
MAX_OTP_ATTEMPTS: Final = 5
KYC_STATUSES: Final = ("pending", "in_progress", "pending_review", "approved", "rejected", "expired")
ONBOARDED_FLOW_STATUSES: Final = frozenset({"active", "safe_deployed", "kyc_approved"})
FLOW_STEPS: Final = {
    "otp_requested": 1,
    "otp_verified": 2,
    "kyc_initiated": 3,
    "kyc_completed": 4,
    "safe_deploying": 5,
    "active": 6,
}
SOURCE_OF_FUNDS_QUESTIONS: Final = (
    {
        "question": "EMPLOYMENT_STATUS",
        "label": "What is your employment status?",
        "options": ["EMPLOYED", "SELF_EMPLOYED", "UNEMPLOYED", "STUDENT", "RETIRED"],
    },
    {
        "question": "SOURCE_OF_INCOME",
        "label": "What is your primary source of income?",
        "options": ["SALARY", "BUSINESS_INCOME", "INVESTMENT", "PENSION", "OTHER"],
    },
)
LOOKUP_IDENTIFIERS: Final = ("id", "yativo_card_id", "customer_id", "card_id", "external_id", "email")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class Refusal(Exception):
    """An upstream error answer: HTTP status, error code, message and optional data."""

    def __init__(self, status: int, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.data = data


class EmulatorClock:
    """Wall-clock time plus an offset that tests move forward."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> float:
        return self._source() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds


class SentCode(msgspec.Struct, kw_only=True):
    code: str
    expires_at: float
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


def iso(timestamp: float) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as the upstream writes its times."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:2]}***@{domain}"


def mask_phone(phone: str) -> str:
    return f"{phone[:6]}****"


def resume_step(flow_status: str) -> str:
    """The machine next_step token the upstream puts on onboard conflicts."""
    return {"otp_requested": "verify_otp", "otp_verified": "kyc_link", "active": "none"}.get(flow_status, "continue")


def _six_digits() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def _solana_address() -> str:
    return "".join(secrets.choice(_BASE58) for _ in range(44))


def _out_of_order(customer: Customer, message: str) -> Refusal:
    status = customer.flow_status
    return Refusal(
        409,
        "INVALID_FLOW_STATE",
        message,
        {"yativo_card_id": customer.yativo_card_id, "flow_status": status, "next_step": resume_step(status)},
    )


def _not_found() -> Refusal:
    return Refusal(404, "CUSTOMER_NOT_FOUND", "Customer not found")


class Emulator:
    """The whole upstream state plus the operations the routes call."""

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock) -> None:
        self.config = config
        self.clock = clock
        self._customers: dict[str, Customer] = {}
        self._tokens: dict[str, float] = {}
        self._outbox: list[OutboxMessage] = []
        self._calls: list[CallRecord] = []
        self._burned_emails: set[str] = set()

    # --- control ------------------------------------------------------------------------------

    def reset(self) -> None:
        self._customers.clear()
        self._tokens.clear()
        self._outbox.clear()
        self._calls.clear()
        self._burned_emails.clear()

    def reconfigure(self, **changes: Any) -> EmulatorConfig:
        self.config = msgspec.structs.replace(self.config, **changes)
        return self.config

    def outbox(self, to: str | None = None) -> list[OutboxMessage]:
        if to is None:
            return list(self._outbox)
        wanted = normalize_email(to)
        return [message for message in self._outbox if message.to.lower() == wanted]

    def record_call(self, call: CallRecord) -> None:
        self._calls.append(call)

    def calls(self) -> list[CallRecord]:
        return list(self._calls)

    def customers(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [self._control_view(self._settle(customer, now)) for customer in self._customers.values()]

    def set_kyc_status(self, email: str, status: str) -> dict[str, Any]:
        if status not in KYC_STATUSES:
            raise Refusal(400, "INVALID_KYC_STATUS", f"status must be one of {', '.join(KYC_STATUSES)}")
        customer = self._find(lambda c: c.email == normalize_email(email))
        now = self.clock.now()
        self._settle(customer, now)
        customer.kyc_set_by_hand = True
        if status == "approved" and customer.kyc_status != "approved":
            customer.kyc_approved_at = now
        elif status != "approved" and not customer.cards:
            customer.kyc_approved_at = None
            customer.safe_deployed_at = None
        customer.kyc_status = status
        return self._control_view(self._settle(customer, now))

    def set_card_status(self, email: str, status: str) -> dict[str, Any]:
        """Change the customer's first card's status; returns the webhook event Yativo would send for it."""
        from service.emulator.webhooks import CARD_STATUS_EVENTS, event

        if status not in CARD_STATUS_EVENTS:
            raise Refusal(400, "INVALID_CARD_STATUS", f"status must be one of {', '.join(CARD_STATUS_EVENTS)}")
        customer = self._find(lambda c: c.email == normalize_email(email))
        if not customer.cards:
            raise Refusal(409, "NO_CARD", "the customer has no card")
        card = customer.cards[0]
        kind, shown = CARD_STATUS_EVENTS[status]
        card.status, card.status_name = status, shown
        data = {
            "yativo_card_id": customer.yativo_card_id,
            "card_id": f"tok_{card.card_id}",  # webhooks carry a card token, not the API card id
            "status": shown,
            "timestamp": iso(self.clock.now()),
        }
        return event(kind, data, now=self.clock.now())

    # --- auth ---------------------------------------------------------------------------------

    def issue_token(self) -> tuple[str, float]:
        token = f"emu_{secrets.token_urlsafe(32)}"
        expires_at = self.clock.now() + self.config.token_ttl_seconds
        self._tokens[token] = expires_at
        return token, expires_at

    def authenticate(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        expires_at = self._tokens.get(token.strip())
        return expires_at is not None and self.clock.now() < expires_at

    # --- customer namespace -------------------------------------------------------------------

    def onboard(self, email: str | None, external_customer_id: str | None) -> dict[str, Any]:
        if email is None or not _EMAIL.match(email.strip()) or len(email.strip()) > MAX_EMAIL_LENGTH:
            raise Refusal(400, "INVALID_EMAIL", "A valid email address is required")
        normalized = normalize_email(email)
        if normalized == normalize_email(self.config.issuer_email):
            raise Refusal(
                400, "ISSUER_EMAIL_NOT_ALLOWED", "The issuer's own account email cannot be used for a customer card"
            )
        if normalized == normalize_email(self.config.own_card_email):
            raise Refusal(
                400,
                "EMAIL_ALREADY_IN_USE",
                "This email is already used by the issuer's personal card",
                {"account_type": "user", "flow_status": "card_created"},
            )
        if normalized in self._burned_emails:
            raise Refusal(
                409,
                "EMAIL_ALREADY_REGISTERED",
                "This email belonged to a customer that was reset and cannot be registered again",
            )
        now = self.clock.now()
        for customer in self._customers.values():
            if customer.email == normalized:
                raise self._repeat(self._settle(customer, now), found_by_email=True, now=now)
        if external_customer_id is not None:
            for customer in self._customers.values():
                if customer.external_customer_id == external_customer_id:
                    raise self._repeat(self._settle(customer, now), found_by_email=False, now=now)

        customer = Customer(
            yativo_card_id=f"yativo_card_customer_{secrets.token_hex(8)}_{int(now * 1000)}",
            customer_id=secrets.token_hex(12),
            external_customer_id=external_customer_id,
            email=normalized,
            created_at=now,
            applicant_id=secrets.token_hex(12),
            wallet_address=_solana_address(),
        )
        self._customers[customer.yativo_card_id] = customer
        self._send_email_code(customer, now)
        return {
            "yativo_card_id": customer.yativo_card_id,
            "customer_id": customer.customer_id,
            "external_customer_id": customer.external_customer_id,
            "email_masked": mask_email(customer.email),
            "next_step": "verify_otp",
            "otp_expires_in_seconds": self.config.otp_ttl_seconds,
        }

    def verify_otp(self, yativo_card_id: str, otp: str) -> dict[str, Any]:
        customer, now = self._customer(yativo_card_id)
        if customer.flow_status != "otp_requested" or customer.email_code is None:
            raise _out_of_order(customer, "The email is already verified")
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

    def kyc_link(self, yativo_card_id: str) -> dict[str, Any]:
        customer, now = self._customer(yativo_card_id)
        if not customer.email_verified:
            raise _out_of_order(customer, "Verify the email OTP before requesting a KYC link")
        if customer.kyc_status == "approved":
            raise _out_of_order(customer, "KYC is already approved")
        if customer.kyc_status == "expired":
            customer.kyc_status = "pending"
            customer.kyc_set_by_hand = False
            customer.kyc_link_first_fetched_at = None
        if customer.kyc_link_first_fetched_at is None:
            customer.kyc_link_first_fetched_at = now
        data: dict[str, Any] = {"yativo_card_id": customer.yativo_card_id}
        shape = self.config.kyc_link_shape
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

    def kyc_status(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._customer(yativo_card_id)
        if not customer.email_verified:
            raise _out_of_order(customer, "Verify the email OTP before checking KYC")
        data: dict[str, Any] = {"yativo_card_id": customer.yativo_card_id, "kyc_status": customer.kyc_status}
        if customer.kyc_status == "approved":
            # Documented quirk: "create_virtual_card" although source of funds and phone are still due.
            data |= {"verification_level": "STANDARD", "terms_accepted": True, "next_step": "create_virtual_card"}
        else:
            data |= {"verification_level": None, "terms_accepted": False, "next_step": None}
        if customer.kyc_status == "rejected":
            data["rejection_reason"] = "Document not accepted"
        return data

    def source_of_funds_questions(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._customer(yativo_card_id)
        if customer.kyc_status != "approved" or not customer.email_verified:
            raise _out_of_order(customer, "Source of funds is available after KYC approval")
        return {
            "yativo_card_id": customer.yativo_card_id,
            # Once answered the questionnaire reads "completed" (the emulator's choice; the docs show only the
            # first read), which is how a client that lost its own records can tell.
            "status": "completed" if customer.sof_submitted_at is not None else "questions_retrieved",
            "questions": [dict(question, options=list(question["options"])) for question in SOURCE_OF_FUNDS_QUESTIONS],
            "next_step": "Submit answers using POST /source-of-funds",
        }

    def submit_source_of_funds(self, yativo_card_id: str, answers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        customer, now = self._customer(yativo_card_id)
        if customer.kyc_status != "approved" or not customer.email_verified:
            raise _out_of_order(customer, "Source of funds is available after KYC approval")
        if customer.cards:
            raise _out_of_order(customer, "The card is already issued")
        given = list(answers)
        problems = _answer_problems(given)
        if problems:
            raise Refusal(
                400, "INVALID_SOURCE_OF_FUNDS_ANSWERS", f"Invalid source of funds answers: {'; '.join(problems)}"
            )
        customer.sof_answers = [{"question": question, "answer": answer} for question, answer in given]
        customer.sof_submitted_at = now
        return {
            "yativo_card_id": customer.yativo_card_id,
            "status": "completed",
            "submitted_at": iso(now),
            "next_step": "Verify phone number using POST /phone/request-verification",
        }

    def request_phone_code(self, yativo_card_id: str, phone_number: str | None) -> dict[str, Any]:
        customer, now = self._customer(yativo_card_id)
        if customer.sof_submitted_at is None or customer.kyc_status != "approved":
            raise _out_of_order(customer, "Submit source of funds before verifying a phone number")
        if customer.phone_verified:
            raise _out_of_order(customer, "The phone number is already verified")
        if phone_number is None or not _E164.match(phone_number):
            raise Refusal(400, "INVALID_PHONE_NUMBER", "Phone number must be in international E.164 format")
        customer.phone_number = phone_number
        customer.phone_code = SentCode(code=_six_digits(), expires_at=now + self.config.otp_ttl_seconds)
        self._outbox.append(OutboxMessage(to=phone_number, kind="sms", code=customer.phone_code.code, sent_at=iso(now)))
        return {
            "yativo_card_id": customer.yativo_card_id,
            "phone_number": mask_phone(phone_number),
            "otp_requested_at": iso(now),
            "next_step": "Verify OTP using POST /phone/verify",
        }

    def verify_phone(self, yativo_card_id: str, code: str) -> dict[str, Any]:
        customer, now = self._customer(yativo_card_id)
        pending = customer.phone_code
        if pending is None or customer.phone_number is None or customer.phone_verified:
            raise _out_of_order(customer, "Request a phone verification code first")
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

    def create_virtual_card(self, yativo_card_id: str) -> dict[str, Any]:
        customer, now = self._customer(yativo_card_id)
        if any(card.card_type == "virtual" for card in customer.cards):
            raise Refusal(400, "VIRTUAL_CARD_LIMIT_REACHED", "Virtual card limit reached for this customer")
        if customer.kyc_status != "approved" or customer.sof_submitted_at is None or not customer.phone_verified:
            raise _out_of_order(customer, "Complete KYC, source of funds and phone verification before creating a card")
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

    def list_cards(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._customer(yativo_card_id)
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

    def reset_customer(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._customer(yativo_card_id)
        if customer.cards:
            raise Refusal(
                409, "CARD_ALREADY_ISSUED", "A card was already issued to this customer; contact support for a reset"
            )
        del self._customers[customer.yativo_card_id]
        self._burned_emails.add(customer.email)
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

    # --- card-issuer namespace ----------------------------------------------------------------

    def lookup(self, query: Mapping[str, str]) -> dict[str, Any]:
        given = {key: query[key] for key in LOOKUP_IDENTIFIERS if query.get(key)}
        if len(given) != 1:
            raise Refusal(400, "MISSING_IDENTIFIER", f"Provide one of: {', '.join(LOOKUP_IDENTIFIERS)}")
        ((key, value),) = given.items()
        customer = self._find(_lookup_predicate(key, value))
        customer = self._settle(customer, self.clock.now())
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

    def issuer_customer(self, customer_key: str) -> dict[str, Any]:
        customer = self._find(
            lambda c: (
                customer_key in (c.yativo_card_id, c.customer_id)
                or (c.external_customer_id is not None and c.external_customer_id == customer_key)
            )
        )
        customer = self._settle(customer, self.clock.now())
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

    # --- internals ----------------------------------------------------------------------------

    def _customer(self, yativo_card_id: str) -> tuple[Customer, float]:
        customer = self._customers.get(yativo_card_id)
        if customer is None:
            raise _not_found()
        now = self.clock.now()
        return self._settle(customer, now), now

    def _find(self, predicate: Callable[[Customer], bool]) -> Customer:
        for customer in self._customers.values():
            if predicate(customer):
                return customer
        raise _not_found()

    def _settle(self, customer: Customer, now: float) -> Customer:
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
        if approved_at is not None and customer.safe_deployed_at is None:
            deployed_at = approved_at + self.config.safe_deploy_seconds
            if now >= deployed_at:
                customer.safe_deployed_at = deployed_at
        return customer

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
        if status == "otp_requested" and (code is None or code.dead or now >= code.expires_at):
            self._send_email_code(customer, now)
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

    def _send_email_code(self, customer: Customer, now: float) -> None:
        customer.email_code = SentCode(code=_six_digits(), expires_at=now + self.config.otp_ttl_seconds)
        message = OutboxMessage(to=customer.email, kind="email", code=customer.email_code.code, sent_at=iso(now))
        self._outbox.append(message)

    @staticmethod
    def _control_view(customer: Customer) -> dict[str, Any]:
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


def _answer_problems(answers: list[tuple[str, str]]) -> list[str]:
    offered = {question["question"]: question["options"] for question in SOURCE_OF_FUNDS_QUESTIONS}
    problems: list[str] = []
    seen: set[str] = set()
    for question, answer in answers:
        if question not in offered:
            problems.append(f"{question} is not an offered question")
        elif question in seen:
            problems.append(f"{question} is answered more than once")
        elif answer not in offered[question]:
            problems.append(f"{answer} is not an option of {question}")
        seen.add(question)
    problems.extend(f"{question} is not answered" for question in offered if question not in seen)
    return problems


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
