"""The decision: from what the upstream said and what we recorded to one NextAction. Pure: no I/O, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum

from service.onboarding.actions import (
    AnswerSourceOfFunds,
    CompleteKyc,
    ContactSupport,
    CreateCard,
    Done,
    NextAction,
    ProvideEmail,
    ProvidePhone,
    RetryLater,
    UseDifferentEmail,
    VerifyEmailCode,
    VerifyPhoneCode,
    WaitForAccount,
    WaitForKyc,
)
from service.onboarding.snapshot import Snapshot


class Step(IntEnum):
    EMAIL = 1
    EMAIL_CODE = 2
    IDENTITY = 3
    SOURCE_OF_FUNDS = 4
    PHONE = 5
    CARD = 6


# Upstream refusals of an email, for good: the user must type another one.
EMAIL_REFUSALS = {
    "INVALID_EMAIL": "invalid",
    "ISSUER_EMAIL_NOT_ALLOWED": "issuer_email",
    "EMAIL_ALREADY_IN_USE": "in_use",
    "EMAIL_ALREADY_REGISTERED": "not_reusable",
}
# An email code that can no longer be used: starting again sends a new one.
EMAIL_CODE_DEAD = frozenset({"OTP_EXPIRED", "OTP_ATTEMPTS_EXCEEDED"})
EMAIL_CODE_WRONG = frozenset({"OTP_VERIFICATION_FAILED"})
PHONE_CODE_WRONG = frozenset({"INVALID_VERIFICATION_CODE", "PHONE_VERIFICATION_FAILED", "INVALID_CODE"})
PHONE_CODE_DEAD = frozenset({"VERIFICATION_CODE_EXPIRED", "PHONE_CODE_EXPIRED"})
# Answers that describe the customer rather than fail: decided from flow_status/next_step in their data.
RESUME_SIGNALS = frozenset({"CUSTOMER_CARD_ALREADY_ACTIVE", "CUSTOMER_ALREADY_ONBOARDED"})
WALLET_NOT_READY = frozenset({"SAFE_NOT_DEPLOYED", "WALLET_NOT_READY"})
CARD_EXISTS = frozenset({"VIRTUAL_CARD_LIMIT_REACHED"})

FLOW_EMAIL_CODE = frozenset({"otp_requested"})
FLOW_KYC_LINK = frozenset({"otp_verified"})
FLOW_KYC = frozenset({"kyc_initiated"})
# kyc_approved and safe_deployed are named by the docs only as "already onboarded" states; the card may still
# be missing, so they resume after KYC like kyc_completed.
FLOW_AFTER_KYC = frozenset({"kyc_completed", "kyc_approved", "safe_deploying", "safe_deployed"})
FLOW_CARD = frozenset({"card_created", "active"})

KYC_TO_DO = frozenset({"pending"})
KYC_UNDER_REVIEW = frozenset({"in_progress"})
KYC_RESUBMIT = frozenset({"pending_review"})
KYC_FAILED = {"rejected": "kyc_rejected", "expired": "kyc_expired"}


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


# Where a resume answer gives only next_step, the flow_status it stands for.
_FLOW_OF_NEXT_STEP = {
    "verify_otp": "otp_requested",
    "kyc_link": "otp_verified",
    "kyc_status": "kyc_initiated",
    "none": "active",
}


def effective_flow(s: Snapshot) -> str | None:
    """The upstream flow_status, or what next_step implies when no flow_status was given."""
    if s.flow_status is not None:
        return s.flow_status
    return _FLOW_OF_NEXT_STEP.get(s.next_step or "")


def has_card(s: Snapshot) -> bool:
    return s.card is not None or effective_flow(s) in FLOW_CARD


def after_kyc(s: Snapshot) -> bool:
    """Identity verified. An approved KYC counts only under a known identity-check flow_status: an unknown
    flow_status is never papered over by a KYC answer."""
    flow = effective_flow(s)
    return flow in FLOW_AFTER_KYC or (s.kyc_status == "approved" and flow in FLOW_KYC | FLOW_KYC_LINK)


def in_identity(s: Snapshot) -> bool:
    return not after_kyc(s) and effective_flow(s) in FLOW_KYC | FLOW_KYC_LINK


def step_of(snapshot: Snapshot) -> Step:
    """Where the user stands, for `progress.step`; follows the same reading of the state as decide()."""
    if snapshot.card_id is None:
        return Step.EMAIL
    if has_card(snapshot):
        return Step.CARD
    if effective_flow(snapshot) in FLOW_EMAIL_CODE:
        return Step.EMAIL_CODE
    if after_kyc(snapshot):
        if not snapshot.sof_done:
            return Step.SOURCE_OF_FUNDS
        return Step.CARD if snapshot.phone_verified else Step.PHONE
    return Step.IDENTITY


def decide(snapshot: Snapshot, error_code: str | None = None) -> NextAction:
    """The one next action for this user, given our snapshot and the upstream error just received (if any)."""
    if error_code is not None and error_code not in RESUME_SIGNALS:
        action = _after_error(snapshot, error_code)
        if action is not None:
            return action
    return _from_state(snapshot)


def _after_error(snapshot: Snapshot, code: str) -> NextAction | None:
    if code in EMAIL_REFUSALS:
        return UseDifferentEmail(reason=EMAIL_REFUSALS[code])  # type: ignore[arg-type]
    if code in EMAIL_CODE_DEAD:
        return ProvideEmail()
    if code in EMAIL_CODE_WRONG:
        return VerifyEmailCode(email_masked=snapshot.email_masked, expires_at=_when(snapshot.otp_expires_at))
    if code in PHONE_CODE_DEAD:
        return ProvidePhone()
    if code in PHONE_CODE_WRONG:
        return VerifyPhoneCode(phone_masked=snapshot.phone_masked)
    if code in WALLET_NOT_READY:
        return WaitForAccount()
    if code in CARD_EXISTS:
        return Done()
    if code == "CUSTOMER_NOT_FOUND":
        return ProvideEmail()
    if code == "INVALID_FLOW_STATE":
        return None  # the state we hold is stale; decide from it after the caller re-read the upstream
    return ContactSupport(reason="unknown_state")


def _from_state(s: Snapshot) -> NextAction:
    if s.card_id is None:
        return ProvideEmail()
    if has_card(s):
        return Done()
    if effective_flow(s) in FLOW_EMAIL_CODE:
        return VerifyEmailCode(email_masked=s.email_masked, expires_at=_when(s.otp_expires_at))
    if after_kyc(s):
        return _after_kyc(s)
    if in_identity(s):
        return _identity(s)
    return ContactSupport(reason="unknown_state")


def _identity(s: Snapshot) -> NextAction:
    status = s.kyc_status
    if status in KYC_FAILED:
        return ContactSupport(reason=KYC_FAILED[status])  # type: ignore[index]
    if status in KYC_UNDER_REVIEW:
        return WaitForKyc()
    if status is None or status in KYC_TO_DO or status in KYC_RESUBMIT:
        if s.kyc_url is None:
            # The caller fetches a link before deciding; reaching here means that fetch failed.
            return RetryLater(retry_after_seconds=2)
        return CompleteKyc(url=s.kyc_url, expires_at=_when(s.kyc_url_expires_at), resubmission=status in KYC_RESUBMIT)
    return ContactSupport(reason="unknown_state")


def _after_kyc(s: Snapshot) -> NextAction:
    if not s.sof_done:
        if s.questions is None:
            return RetryLater(retry_after_seconds=2)
        return AnswerSourceOfFunds(questions=list(s.questions))
    if not s.phone_verified:
        if s.phone_masked is not None:
            return VerifyPhoneCode(phone_masked=s.phone_masked)
        return ProvidePhone()
    if s.safe_deployed is False or (s.safe_deployed is None and effective_flow(s) == "safe_deploying"):
        return WaitForAccount()
    return CreateCard()
