"""The reading of a snapshot as one NextAction: where the user stands. Pure: no I/O, no clock.

What requests and upstream answers do to the snapshot is service.onboarding.machine; this module says what a
snapshot means, so every answer (GET, a resume, a refusal) shows the same place.
"""

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
    if snapshot.customer_id is None:
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


def decide(snapshot: Snapshot) -> NextAction:
    """The one next action for this user, given what we know."""
    return _from_state(snapshot)


def _from_state(s: Snapshot) -> NextAction:
    if s.customer_id is None:
        return ProvideEmail()
    if has_card(s):
        return Done()
    if effective_flow(s) in FLOW_EMAIL_CODE:
        return VerifyEmailCode(
            email_masked=s.email_masked, expires_at=_when(s.otp_expires_at), resend_available_at=_resend_at(s)
        )
    if after_kyc(s):
        return _after_kyc(s)
    if in_identity(s):
        return _identity(s)
    return ContactSupport(reason="unknown_state")


def _resend_at(s: Snapshot) -> datetime | None:
    """From when starting again sends a new code: at once for a spent code, else after the cooldown (or the
    expiry, if that comes first)."""
    if s.email_code_spent:
        return _when(s.email_code_sent_at) or _when(s.email_resend_at)
    times = [t for t in (s.email_resend_at, s.otp_expires_at) if t is not None]
    return _when(min(times)) if times else None


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
