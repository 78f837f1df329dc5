"""The frontend's `nextAction`: one closed union tagged by `type`, and the answer every route returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeAlias

import msgspec

TOTAL_STEPS = 6
POLL_AFTER_SECONDS = 5

ONBOARDING = "/v1/card-onboarding"
EMAIL_VERIFICATION = f"{ONBOARDING}/email-verification"
KYC_SESSION = f"{ONBOARDING}/kyc-session"
SOURCE_OF_FUNDS = f"{ONBOARDING}/source-of-funds"
PHONE = f"{ONBOARDING}/phone"
PHONE_VERIFICATION = f"{ONBOARDING}/phone-verification"
CARD = f"{ONBOARDING}/card"


class Endpoint(msgspec.Struct, frozen=True):
    """The call that moves the user on."""

    method: Literal["GET", "POST"]
    path: str


GET_STATE = Endpoint("GET", ONBOARDING)
START = Endpoint("POST", ONBOARDING)


class _Action(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", rename="camel"):
    endpoint: Endpoint


class ProvideEmail(_Action, kw_only=True, tag="provide_email"):
    endpoint: Endpoint = START


class VerifyEmailCode(_Action, kw_only=True, tag="verify_email_code"):
    endpoint: Endpoint = Endpoint("POST", EMAIL_VERIFICATION)
    email_masked: str | None
    expires_at: datetime | None
    # From then on, starting again (POST /v1/card-onboarding with the same email) sends a new code.
    resend_available_at: datetime | None = None


class CompleteKyc(_Action, kw_only=True, tag="complete_kyc"):
    endpoint: Endpoint = Endpoint("POST", KYC_SESSION)
    url: str
    expires_at: datetime | None
    resubmission: bool


class WaitForKyc(_Action, kw_only=True, tag="wait_for_kyc"):
    endpoint: Endpoint = GET_STATE
    poll_after_seconds: int = POLL_AFTER_SECONDS


class Question(msgspec.Struct, frozen=True):
    id: str
    label: str
    options: list[str]


class AnswerSourceOfFunds(_Action, kw_only=True, tag="answer_source_of_funds"):
    endpoint: Endpoint = Endpoint("POST", SOURCE_OF_FUNDS)
    questions: list[Question]


class ProvidePhone(_Action, kw_only=True, tag="provide_phone"):
    endpoint: Endpoint = Endpoint("POST", PHONE)


class VerifyPhoneCode(_Action, kw_only=True, tag="verify_phone_code"):
    endpoint: Endpoint = Endpoint("POST", PHONE_VERIFICATION)
    phone_masked: str | None


class WaitForAccount(_Action, kw_only=True, tag="wait_for_account"):
    endpoint: Endpoint = GET_STATE
    poll_after_seconds: int = POLL_AFTER_SECONDS


class CreateCard(_Action, kw_only=True, tag="create_card"):
    endpoint: Endpoint = Endpoint("POST", CARD)


class Done(_Action, kw_only=True, tag="done"):
    endpoint: Endpoint = GET_STATE


EmailRefusal: TypeAlias = Literal["invalid", "issuer_email", "in_use", "not_reusable"]


class UseDifferentEmail(_Action, kw_only=True, tag="use_different_email"):
    endpoint: Endpoint = START
    reason: EmailRefusal


class ContactSupport(_Action, kw_only=True, tag="contact_support"):
    endpoint: Endpoint = GET_STATE
    reason: str


class RetryLater(_Action, kw_only=True, tag="retry_later"):
    endpoint: Endpoint = GET_STATE
    retry_after_seconds: int


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class FixInput(_Action, kw_only=True, tag="fix_input"):
    errors: list[FieldError]


class SignIn(_Action, kw_only=True, tag="sign_in"):
    endpoint: Endpoint = GET_STATE


NextAction: TypeAlias = (
    ProvideEmail
    | VerifyEmailCode
    | CompleteKyc
    | WaitForKyc
    | AnswerSourceOfFunds
    | ProvidePhone
    | VerifyPhoneCode
    | WaitForAccount
    | CreateCard
    | Done
    | UseDifferentEmail
    | ContactSupport
    | RetryLater
    | FixInput
    | SignIn
)


class Progress(msgspec.Struct, frozen=True, rename="camel"):
    step: Annotated[int, msgspec.Meta(ge=1, le=TOTAL_STEPS)]
    total_steps: int = TOTAL_STEPS


# The card statuses Yativo documents (Get Customer) plus `stolen` from its card webhooks, lower-cased. The upstream
# set is open (list-cards has free-text `status_name`): anything else is shown as `unknown`, so a frontend's
# exhaustive switch stays exhaustive when Yativo adds a status.
CardStatus: TypeAlias = Literal["active", "frozen", "blocked", "lost", "stolen", "voided", "unknown"]
CARD_STATUSES: frozenset[str] = frozenset(CardStatus.__args__)  # type: ignore[attr-defined]


class CardView(msgspec.Struct, frozen=True, rename="camel"):
    last_four: str | None
    status: CardStatus

    def __post_init__(self) -> None:
        if self.status not in CARD_STATUSES:
            msgspec.structs.force_setattr(self, "status", "unknown")


class OnboardingState(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Every 2xx answer of the onboarding routes."""

    next_action: NextAction
    progress: Progress
    email_masked: str | None
    phone_masked: str | None
    card: CardView | None
