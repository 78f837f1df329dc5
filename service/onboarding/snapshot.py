"""What the service knows about one user's onboarding: the upstream's last word plus our own progress notes."""

from __future__ import annotations

import msgspec

from service.onboarding.actions import CardView, Question


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Stored per user in Redis (see service.storage.keys); times are Unix seconds.

    `customer_id` is the upstream customer's `yativo_card_id` (stored under its old name, `card_id`, so snapshots
    written before the rename still read). Source of funds and phone progress are ours alone: the upstream has no
    flow_status for them, so after a flush they are re-learnt by asking again.
    """

    customer_id: str | None = msgspec.field(default=None, name="card_id")
    flow_status: str | None = None
    next_step: str | None = None
    email_masked: str | None = None
    # A digest of the normalised email the current code was sent to: a repeated start with the same email is a
    # resume, another email starts over (the email itself is never stored).
    email_digest: str | None = None
    otp_expires_at: float | None = None
    # When an email code was last asked for: identifies the issued code the guessing limit counts against.
    email_code_sent_at: float | None = None
    # From when starting again with the same email sends a new code (the cooldown after a send).
    email_resend_at: float | None = None
    # The current email code's tries are used up (ours or the upstream's count): only a new code helps.
    email_code_spent: bool = False
    kyc_status: str | None = None
    kyc_url: str | None = None
    kyc_url_expires_at: float | None = None
    kyc_checked_at: float | None = None
    questions: tuple[Question, ...] | None = None
    sof_done: bool = False
    phone_masked: str | None = None
    phone_verified: bool = False
    # When the current SMS code was asked for: identifies the issued code the guessing limit counts against.
    phone_code_sent_at: float | None = None
    safe_deployed: bool | None = None
    account_checked_at: float | None = None
    card: CardView | None = None
    # A create whose outcome we could not see (timeout, dropped connection, deadline): the next request reads the
    # upstream before anything is sent again. Holds the upstream operation ("onboard", "card", ...).
    unsettled: str | None = None
