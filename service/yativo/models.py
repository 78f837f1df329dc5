"""Typed views of Yativo's answers: strict on the fields the service uses, tolerant of everything else."""

from __future__ import annotations

import msgspec

# Every struct ignores unknown fields (msgspec's default), so upstream additions never break decoding.
# Fields the service depends on have no default: their absence is a bad response, not a None.


class Token(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    expires_in: float = 3600.0
    refresh_recommendation: RefreshRecommendation | None = None


class RefreshRecommendation(msgspec.Struct, frozen=True, kw_only=True):
    refresh_before_seconds: float | None = None


class Onboarded(msgspec.Struct, frozen=True, kw_only=True):
    yativo_card_id: str
    external_customer_id: str | None = None
    email_masked: str | None = None
    next_step: str | None = None
    otp_expires_in_seconds: int | None = None


class CustomerReset(msgspec.Struct, frozen=True, kw_only=True):
    """POST /yativo-card/customers/{id}/reset (section 12.1)."""

    deleted_card_id: str | None = None
    external_customer_id: str | None = None


class FlowStep(msgspec.Struct, frozen=True, kw_only=True):
    """verify-otp's answer: where the customer stands now."""

    yativo_card_id: str | None = None
    flow_status: str
    next_step: str | None = None


class KycLink(msgspec.Struct, frozen=True, kw_only=True):
    """Two documented shapes: `sumsub_link` (live docs) or `kyc_url` (docs repo); either is accepted."""

    yativo_card_id: str | None = None
    kyc_url: str | None = None
    sumsub_link: str | None = None
    next_step: str | None = None

    def __post_init__(self) -> None:
        if not (self.kyc_url or self.sumsub_link):
            raise ValueError("neither kyc_url nor sumsub_link is present")

    @property
    def url(self) -> str:
        return self.kyc_url or self.sumsub_link or ""


class KycStatus(msgspec.Struct, frozen=True, kw_only=True):
    yativo_card_id: str | None = None
    # Kept as a string: the enum differs between doc pages, so unknown values must survive decoding.
    kyc_status: str
    next_step: str | None = None
    rejection_reason: str | None = None


class SofQuestion(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    label: str | None = None
    options: list[str]


class SofQuestions(msgspec.Struct, frozen=True, kw_only=True):
    yativo_card_id: str | None = None
    # "questions_retrieved" as documented; "completed" once answered (INFERRED, used only to skip a re-ask).
    status: str | None = None
    questions: list[SofQuestion] = msgspec.field(default_factory=list)


class SofAnswer(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    answer: str


class SofSubmitted(msgspec.Struct, frozen=True, kw_only=True):
    yativo_card_id: str | None = None
    status: str | None = None
    submitted_at: str | None = None


class PhoneRequested(msgspec.Struct, frozen=True, kw_only=True):
    yativo_card_id: str | None = None
    phone_number: str | None = None
    otp_requested_at: str | None = None


class PhoneVerified(msgspec.Struct, frozen=True, kw_only=True):
    yativo_card_id: str | None = None
    phone_number: str | None = None
    is_verified: bool


class VirtualCard(msgspec.Struct, frozen=True, kw_only=True):
    """Card creation has no customer reference page; the shape is the own-account one (INFERRED)."""

    yativo_card_id: str | None = None
    card_id: str
    card_type: str | None = None
    status: str | None = None
    status_name: str | None = None


class Card(msgspec.Struct, frozen=True, kw_only=True):
    """One card in a list. Last four is `last_four_digits` (list cards) or `last_four` (issuer endpoints)."""

    card_id: str | None = None
    card_type: str | None = None
    status: str | None = None
    status_name: str | None = None
    is_frozen: bool | None = None
    is_lost: bool | None = None
    is_stolen: bool | None = None
    is_blocked: bool | None = None
    is_void: bool | None = None
    last_four_digits: str | None = None
    last_four: str | None = None

    @property
    def last4(self) -> str | None:
        return self.last_four_digits or self.last_four


class CardList(msgspec.Struct, frozen=True, kw_only=True):
    cards: list[Card]
    total: int | None = None


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    """The card-issuer view of a customer (lookup-customer and get-customer share these fields).

    Our reference comes back as `external_id` here but `external_customer_id` elsewhere: both accepted.
    """

    yativo_card_id: str
    external_id: str | None = None
    external_customer_id: str | None = None
    email: str | None = None
    flow_status: str
    kyc_status: str | None = None
    safe_deployed: bool | None = None
    cards_count: int | None = None
    cards: list[Card] = msgspec.field(default_factory=list)

    @property
    def external_ref(self) -> str | None:
        return self.external_id or self.external_customer_id
