"""Example answers for the API document: one per step's success and one per problem code, built from the real types."""

from __future__ import annotations

from datetime import UTC, datetime

from service.onboarding.actions import (
    CARD,
    EMAIL_VERIFICATION,
    ONBOARDING,
    PHONE,
    PHONE_VERIFICATION,
    SOURCE_OF_FUNDS,
    CardView,
    CompleteKyc,
    CreateCard,
    Done,
    Endpoint,
    FieldError,
    FixInput,
    NextAction,
    OnboardingState,
    Progress,
    ProvideEmail,
    ProvidePhone,
    RetryLater,
    SignIn,
    UseDifferentEmail,
    VerifyEmailCode,
    VerifyPhoneCode,
    WaitForKyc,
)

_AT = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
_EMAIL = "ad***@example.com"
_PHONE = "+1******2671"
_KYC = CompleteKyc(url="https://kyc.example.com/session/abc", expires_at=_AT, resubmission=False)


def _state(action: NextAction, step: int, *, phone: bool = False, card: CardView | None = None) -> OnboardingState:
    return OnboardingState(
        next_action=action,
        progress=Progress(step),
        email_masked=None if step == 1 else _EMAIL,
        phone_masked=_PHONE if phone else None,
        card=card,
    )


# The answer a successful call of each path usually gives (the GET shows the KYC wait, the common poll).
SUCCESS: dict[tuple[str, str], OnboardingState] = {
    ("GET", ONBOARDING): _state(WaitForKyc(), 3),
    ("POST", ONBOARDING): _state(VerifyEmailCode(email_masked=_EMAIL, expires_at=_AT), 2),
    ("POST", EMAIL_VERIFICATION): _state(_KYC, 3),
    ("POST", f"{ONBOARDING}/kyc-session"): _state(_KYC, 3),
    ("POST", SOURCE_OF_FUNDS): _state(ProvidePhone(), 5),
    ("POST", PHONE): _state(VerifyPhoneCode(phone_masked=_PHONE), 5, phone=True),
    ("POST", PHONE_VERIFICATION): _state(CreateCard(), 6, phone=True),
    ("POST", CARD): _state(Done(), 6, phone=True, card=CardView("7890", "active")),
}


def problem_action(code: str, retryable: bool, method: str, path: str) -> NextAction:
    """The nextAction an example problem with this code carries on this call."""
    here = Endpoint("GET" if method == "GET" else "POST", path)
    if code in ("unauthenticated", "webhook_signature_invalid"):
        return SignIn() if path.startswith(ONBOARDING) else SignIn(endpoint=here)
    if code == "step_not_available":
        return ProvideEmail()
    if code == "email_unavailable":
        return UseDifferentEmail(reason="in_use")
    if retryable:
        return RetryLater(endpoint=here, retry_after_seconds=2)
    field = {"email_invalid": "email", "otp_format_invalid": "code", "otp_invalid": "code", "otp_expired": "code"}
    return FixInput(endpoint=here, errors=[FieldError(field.get(code, "body"), "This value is not valid.")])
