"""The onboarding state machine: per route, what may happen, which upstream call to make, and what its answer means.

Sans-I/O, after h11's `_state.py`: everything that affects the transitions lives here and in decide.py (which
reads a snapshot as one nextAction), as tables where it can be and as small functions beside them. The shell
(service.usecases) loads the snapshot, asks this module, makes the upstream call it names, feeds the outcome back,
saves and answers. Nothing here reads a clock, a socket or the environment: the time is always passed in.

The rules, in words (the tables below say the same):

- A request for a step that is not the current one is refused `step_not_available` before its input is looked at.
- Starting again while an email code is pending: same email, code alive, tries left and sent less than the cooldown
  ago -> a resume (no upstream call, no quota); same email after the cooldown, or the code expired or spent -> one
  new code; another email -> start over (the unverified customer is reset upstream, then onboarded with the new
  email). Past the email steps, starting again is a resume.
- A wrong code costs a try; the fifth spends the code: the answer says so and offers a new code at once
  (`verify_email_code` with `resendAvailableAt` now). Only the per-user hourly limit answers `retry_later`.
- An upstream answer that contradicts our snapshot (`INVALID_FLOW_STATE`, `CUSTOMER_NOT_FOUND`) means the snapshot is
  stale: re-read the upstream, then refuse `step_not_available` with where the user really is.
- A read that only refreshes what the user is waiting on (KYC review, account set-up) may fail without failing the
  answer: the user gets the last known state (degraded, logged and counted by the shell).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from service.onboarding.actions import (
    CARD,
    EMAIL_VERIFICATION,
    GET_STATE,
    KYC_SESSION,
    PHONE,
    PHONE_VERIFICATION,
    SOURCE_OF_FUNDS,
    START,
    CardView,
    ContactSupport,
    Endpoint,
    FieldError,
    FixInput,
    NextAction,
    OnboardingState,
    Progress,
    Question,
    RetryLater,
    UseDifferentEmail,
)
from service.onboarding.decide import (
    FLOW_KYC,
    FLOW_KYC_LINK,
    KYC_FAILED,
    KYC_UNDER_REVIEW,
    after_kyc,
    decide,
    has_card,
    in_identity,
    step_of,
)
from service.onboarding.kyclink import first_allowed
from service.onboarding.masking import mask_email, mask_phone
from service.onboarding.refusals import Refusal, refuse, wait_seconds
from service.onboarding.snapshot import Snapshot

# The upstream documents a 1-hour KYC link; refresh a little early so a link we hand out still works.
KYC_LINK_TTL_SECONDS = 3600
KYC_LINK_REFRESH_MARGIN_SECONDS = 120
DEFAULT_OTP_TTL_SECONDS = 600
DEFAULT_RESEND_COOLDOWN_SECONDS = 60


# --- the routes ---------------------------------------------------------------------------------


class Route(msgspec.Struct, frozen=True):
    """One frontend call: where it lives, the nextAction types it may be asked in, and its upstream effect.

    `leads_to`: the nextAction types a success can answer (checked against real walks by the tests; the flow diagram
    in docs/flow.md is drawn from it). `answers_as_is`: nextAction types in which the call is a resume, answered
    from the state without any effect.
    """

    endpoint: Endpoint
    allowed: frozenset[str]
    effect: str | None
    leads_to: tuple[str, ...] = ()
    answers_as_is: frozenset[str] = frozenset()


_PAST_EMAIL = frozenset(
    {
        "complete_kyc",
        "wait_for_kyc",
        "answer_source_of_funds",
        "provide_phone",
        "verify_phone_code",
        "wait_for_account",
        "create_card",
        "done",
        "contact_support",
        "retry_later",
    }
)
ROUTES: dict[str, Route] = {
    "current": Route(GET_STATE, frozenset(), None),
    "start": Route(
        START, frozenset({"provide_email", "verify_email_code"}), "onboard", ("verify_email_code",), _PAST_EMAIL
    ),
    "verify_email": Route(
        Endpoint("POST", EMAIL_VERIFICATION), frozenset({"verify_email_code"}), "verify_otp", ("complete_kyc",)
    ),
    "kyc_session": Route(Endpoint("POST", KYC_SESSION), frozenset({"complete_kyc"}), "kyc_link", ("complete_kyc",)),
    "source_of_funds": Route(
        Endpoint("POST", SOURCE_OF_FUNDS), frozenset({"answer_source_of_funds"}), "source_of_funds", ("provide_phone",)
    ),
    "phone": Route(
        Endpoint("POST", PHONE), frozenset({"provide_phone", "verify_phone_code"}), "phone", ("verify_phone_code",)
    ),
    "verify_phone": Route(
        Endpoint("POST", PHONE_VERIFICATION),
        frozenset({"verify_phone_code"}),
        "verify_phone",
        ("create_card", "wait_for_account"),
    ),
    "card": Route(
        Endpoint("POST", CARD),
        frozenset({"create_card", "wait_for_account"}),
        "card",
        ("done", "wait_for_account"),
        frozenset({"done"}),
    ),
}
# What only the upstream moves, seen on a GET (polled): waiting state -> the nextAction types it can turn into.
POLLED: dict[str, tuple[str, ...]] = {
    "complete_kyc": ("wait_for_kyc", "answer_source_of_funds", "contact_support"),
    "wait_for_kyc": ("complete_kyc", "answer_source_of_funds", "contact_support"),
    "wait_for_account": ("create_card", "done"),
}


def tag(action: NextAction) -> str:
    return type(action).__struct_config__.tag  # type: ignore[no-any-return]


def answer(snapshot: Snapshot, action: NextAction | None = None) -> OnboardingState:
    """The OnboardingState every 2xx carries: the decided action, the step and what may be shown back."""
    return OnboardingState(
        next_action=decide(snapshot) if action is None else action,
        progress=Progress(int(step_of(snapshot))),
        email_masked=snapshot.email_masked,
        phone_masked=snapshot.phone_masked,
        card=snapshot.card,
    )


def step_check(route: str, snapshot: Snapshot) -> OnboardingState | None:
    """Before any input is looked at: None when the route may run now, the state to answer when it is a resume;
    raises `step_not_available` (with where the user is) when it is not the current step."""
    rule = ROUTES[route]
    action = decide(snapshot)
    kind = tag(action)
    if kind in rule.answers_as_is and (route != "start" or snapshot.customer_id is not None):
        return answer(snapshot, action)
    if kind not in rule.allowed:
        raise Refusal("step_not_available", action, snapshot)
    return None


# --- starting and starting again ----------------------------------------------------------------


def email_digest(email: str) -> str:
    return hashlib.blake2b(email.encode(), digest_size=16, person=b"bff-email").hexdigest()


def start_resumes(snapshot: Snapshot, email: str, now: float) -> bool:
    """A repeated start that changes nothing: same email, the code alive with tries left, inside the cooldown."""
    return (
        tag(decide(snapshot)) == "verify_email_code"
        and snapshot.email_digest == email_digest(email)
        and not snapshot.email_code_spent
        and not _expired(snapshot.otp_expires_at, now)
        and snapshot.email_resend_at is not None
        and now < snapshot.email_resend_at
    )


def start_restarts(snapshot: Snapshot, email: str) -> bool:
    """Another email while the first is not verified yet: the customer made with the first is reset, so the flow
    starts over with this one (the upstream keeps one customer per user, and burns the first email)."""
    return (
        snapshot.customer_id is not None
        and tag(decide(snapshot)) == "verify_email_code"
        and snapshot.email_digest is not None  # unknown (an older snapshot): never reset on a guess
        and snapshot.email_digest != email_digest(email)
    )


def restarted() -> Snapshot:
    """The customer was reset upstream: nothing of it is kept."""
    return Snapshot()


def code_sent(
    snapshot: Snapshot,
    email: str,
    customer_id: str,
    next_step: str | None,
    expires_in: float | None,
    now: float,
    cooldown: float,
) -> Snapshot:
    """An email code was sent to `email` for `customer_id` (a fresh customer or a known one sent a new code)."""
    same_customer = snapshot.customer_id == customer_id
    return msgspec.structs.replace(
        snapshot if same_customer else Snapshot(),
        customer_id=customer_id,
        flow_status="otp_requested",
        next_step=next_step,
        email_masked=mask_email(email),
        email_digest=email_digest(email),
        otp_expires_at=now + (expires_in or DEFAULT_OTP_TTL_SECONDS),
        email_code_sent_at=now,
        email_resend_at=now + cooldown,
        email_code_spent=False,
        unsettled=None,
    )


def foreign_customer() -> Refusal:
    """Someone else's upstream record: nothing of it is cached or shown."""
    return Refusal("email_unavailable", UseDifferentEmail(reason="in_use"))


# Upstream refusals of an email, for good: (problem code, use_different_email reason).
EMAIL_REFUSALS: dict[str, tuple[str, str]] = {
    "INVALID_EMAIL": ("email_invalid", "invalid"),
    "ISSUER_EMAIL_NOT_ALLOWED": ("email_unavailable", "issuer_email"),
    "EMAIL_ALREADY_IN_USE": ("email_unavailable", "in_use"),
    "EMAIL_ALREADY_REGISTERED": ("email_unavailable", "not_reusable"),
}
# Answers that describe an existing customer rather than fail: decided from flow_status/next_step in their data.
RESUME_SIGNALS = frozenset({"CUSTOMER_CARD_ALREADY_ACTIVE", "CUSTOMER_ALREADY_ONBOARDED"})


def resumed(
    snapshot: Snapshot,
    found: Snapshot,
    email: str | None,
    now: float,
    cooldown: float,
) -> Snapshot:
    """An existing customer answered a start: keep our own progress notes when it is the customer we knew.

    Starting again may have sent a new code, so the cooldown starts now; the expiry we knew stays if still ahead.
    """
    keep = snapshot.customer_id == found.customer_id
    return msgspec.structs.replace(
        found,
        email_masked=(snapshot.email_masked if keep else None)
        or (mask_email(email) if email else None)
        or found.email_masked,
        email_digest=email_digest(email) if email else (snapshot.email_digest if keep else None),
        otp_expires_at=snapshot.otp_expires_at if keep and not _expired(snapshot.otp_expires_at, now) else None,
        email_code_sent_at=now,
        email_resend_at=now + cooldown,
        email_code_spent=False,
        sof_done=snapshot.sof_done if keep else False,
        phone_verified=snapshot.phone_verified if keep else False,
        phone_masked=snapshot.phone_masked if keep else None,
    )


# --- what an upstream refusal means, per route --------------------------------------------------

# What the shell does with the outcome.
REFUSE = "refuse"  # answer the refusal (after saving the snapshot it carries)
ANSWER = "answer"  # a resume: save and answer the state
STALE = "stale"  # our snapshot is out of date: forget it, re-read the upstream, refuse step_not_available
RESUME = "resume"  # a start met an existing customer: confirm ownership, then resume
UNEXPECTED = "unexpected"  # no meaning here: contact support


EMAIL_CODE_WRONG = "OTP_VERIFICATION_FAILED"
EMAIL_CODE_SPENT = "OTP_ATTEMPTS_EXCEEDED"
EMAIL_CODE_EXPIRED = "OTP_EXPIRED"
PHONE_CODE_WRONG = frozenset({"INVALID_VERIFICATION_CODE", "PHONE_VERIFICATION_FAILED", "INVALID_CODE"})
PHONE_CODE_EXPIRED = frozenset({"VERIFICATION_CODE_EXPIRED", "PHONE_CODE_EXPIRED"})
WALLET_NOT_READY = frozenset({"SAFE_NOT_DEPLOYED", "WALLET_NOT_READY"})
STALE_SIGNALS = frozenset({"INVALID_FLOW_STATE", "CUSTOMER_NOT_FOUND"})

# (route, upstream error code) -> (what the shell does, the problem code answered, if any).
REJECTIONS: dict[tuple[str, str], tuple[str, str | None]] = {
    **{("start", code): (REFUSE, problem) for code, (problem, _) in EMAIL_REFUSALS.items()},
    **{("start", code): (RESUME, None) for code in RESUME_SIGNALS},
    ("verify_email", EMAIL_CODE_WRONG): (REFUSE, "otp_invalid"),
    ("verify_email", EMAIL_CODE_SPENT): (REFUSE, "otp_invalid"),  # the try that spent the code was a wrong one
    ("verify_email", EMAIL_CODE_EXPIRED): (REFUSE, "otp_expired"),
    ("source_of_funds", "INVALID_ANSWER"): (REFUSE, "validation_failed"),
    ("source_of_funds", "INVALID_ANSWERS"): (REFUSE, "validation_failed"),
    ("source_of_funds", "INVALID_QUESTION"): (REFUSE, "validation_failed"),
    ("phone", "INVALID_PHONE_NUMBER"): (REFUSE, "validation_failed"),
    ("phone", "PHONE_ALREADY_VERIFIED"): (ANSWER, None),
    **{("verify_phone", code): (REFUSE, "otp_invalid") for code in PHONE_CODE_WRONG},
    **{("verify_phone", code): (REFUSE, "otp_expired") for code in PHONE_CODE_EXPIRED},
    **{("card", code): (ANSWER, None) for code in WALLET_NOT_READY},
    ("card", "VIRTUAL_CARD_LIMIT_REACHED"): (ANSWER, None),
}


def rejection_kind(route: str, code: str, snapshot: Snapshot) -> tuple[str, str | None]:
    """What an upstream business refusal of `route` means (REJECTIONS, then the rules that need the snapshot)."""
    found = REJECTIONS.get((route, code))
    if found is None and route == "source_of_funds" and code.startswith("INVALID_"):
        found = (REFUSE, "validation_failed")  # the questionnaire changed under us, whatever the exact code
    if route == "phone" and code == "INVALID_FLOW_STATE" and snapshot.sof_done:
        # No flow_status marks a verified phone: a code refused after source of funds means the phone was verified
        # before our records were lost.
        found = (ANSWER, None)
    if found is not None:
        return found
    if code in STALE_SIGNALS:
        return (STALE, None)
    return (UNEXPECTED, None)


def rejected(route: str, code: str, snapshot: Snapshot, now: float) -> tuple[str, Snapshot, Refusal | None]:
    """The transition after an upstream business refusal: (what the shell does, the snapshot to save, the refusal)."""
    kind, problem = rejection_kind(route, code, snapshot)
    if kind == UNEXPECTED:
        return kind, snapshot, unexpected_rejection()
    if kind in (STALE, RESUME):
        return kind, snapshot, None
    if kind == ANSWER:
        return kind, _resumed_by_refusal(route, code, snapshot, now), None
    assert problem is not None
    if route == "start":
        reason = EMAIL_REFUSALS[code][1]
        return kind, snapshot, Refusal(problem, UseDifferentEmail(reason=reason), snapshot)  # type: ignore[arg-type]
    if route == "verify_email":
        if code == EMAIL_CODE_SPENT:
            snapshot = msgspec.structs.replace(snapshot, email_code_spent=True)
        elif code == EMAIL_CODE_EXPIRED:
            snapshot = msgspec.structs.replace(snapshot, otp_expires_at=min(now, snapshot.otp_expires_at or now))
        return kind, snapshot, Refusal(problem, decide(snapshot), snapshot)
    if route == "verify_phone":
        if problem == "otp_expired":
            snapshot = msgspec.structs.replace(snapshot, phone_masked=None)
        return kind, snapshot, Refusal(problem, decide(snapshot), snapshot)
    if route == "source_of_funds":
        # Offer the current questionnaire again: the shell re-reads it before answering.
        snapshot = msgspec.structs.replace(snapshot, questions=None)
        action = FixInput(
            endpoint=ROUTES[route].endpoint,
            errors=[FieldError("answers", "These answers are not accepted: answer the questions offered.")],
        )
        return kind, snapshot, Refusal(problem, action, snapshot)
    if route == "phone":
        action = FixInput(
            endpoint=ROUTES[route].endpoint,
            errors=[FieldError("phoneNumber", "This phone number cannot receive text messages: try another one.")],
        )
        return kind, snapshot, Refusal(problem, action, snapshot)
    raise AssertionError(f"no refusal rule for {route} {code}")  # pragma: no cover - REJECTIONS is closed


def _resumed_by_refusal(route: str, code: str, snapshot: Snapshot, now: float) -> Snapshot:
    if route == "phone":
        return msgspec.structs.replace(snapshot, phone_verified=True, safe_deployed=None)
    if code in WALLET_NOT_READY:
        return msgspec.structs.replace(snapshot, safe_deployed=False, account_checked_at=now)
    return msgspec.structs.replace(snapshot, flow_status="active")  # the card exists already


def unexpected_rejection() -> Refusal:
    """An upstream refusal this service has no meaning for: safe to show only "contact support"."""
    return Refusal("upstream_bad_response", ContactSupport(reason="unknown_state"))


# How the upstream failed (the adapter's exception, named by the shell) -> the problem code answered.
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
CREDENTIALS_REFUSED = "credentials_refused"
BAD_RESPONSE = "bad_response"
UPSTREAM_FAILURES: dict[str, str] = {
    TIMEOUT: "upstream_timeout",
    UNAVAILABLE: "upstream_unavailable",  # a 429 from the upstream and an open circuit too
    CREDENTIALS_REFUSED: "upstream_unavailable",  # our own API credentials: an operator problem, never the user's
    BAD_RESPONSE: "upstream_bad_response",
}
# Our credentials refused: nothing changes for a while, so frontends need not come back sooner.
CREDENTIALS_RETRY_SECONDS = 30


def upstream_failure(route: str, failure: str, retry_after: float | None = None) -> Refusal:
    """The upstream failed or could not be asked: try this call again later (nothing is lost, every step repeats)."""
    if failure == CREDENTIALS_REFUSED:
        retry_after = CREDENTIALS_RETRY_SECONDS
    return refuse(UPSTREAM_FAILURES[failure], ROUTES[route].endpoint, retry_after=retry_after)


def reread(snapshot: Snapshot, fresh: Snapshot) -> Snapshot:
    """What the upstream says after our snapshot turned out stale, keeping the masked email we showed."""
    return msgspec.structs.replace(fresh, email_masked=fresh.email_masked or snapshot.email_masked)


def stale(fresh: Snapshot) -> Refusal:
    """After re-reading the upstream: the step asked for was not the current one."""
    return Refusal("step_not_available", decide(fresh), fresh)


# --- what a success means, per route ------------------------------------------------------------


def email_verified(snapshot: Snapshot, flow_status: str | None, next_step: str | None) -> Snapshot:
    return msgspec.structs.replace(snapshot, flow_status=flow_status, next_step=next_step, email_code_spent=False)


def sof_submitted(snapshot: Snapshot) -> Snapshot:
    return msgspec.structs.replace(snapshot, sof_done=True)


def phone_code_sent(snapshot: Snapshot, phone_number: str, now: float) -> Snapshot:
    # The upstream's own mask shows too little to recognise the number.
    return msgspec.structs.replace(snapshot, phone_masked=mask_phone(phone_number), phone_code_sent_at=now)


def phone_verified(snapshot: Snapshot) -> Snapshot:
    return msgspec.structs.replace(snapshot, phone_verified=True, safe_deployed=None)


def card_created(snapshot: Snapshot) -> Snapshot:
    return msgspec.structs.replace(snapshot, flow_status="active", safe_deployed=True)


def unsettled(snapshot: Snapshot, operation: str) -> Snapshot:
    """A create whose outcome could not be seen: the next request reads the upstream before re-sending anything."""
    return msgspec.structs.replace(snapshot, unsettled=operation)


# --- limits ---------------------------------------------------------------------------------------


def limit_refusal(
    code: str, route: str, snapshot: Snapshot, *, retry_after: float, limit: int, hourly: bool
) -> Refusal:
    """Past a quota or a code-guessing limit: the upstream is not called.

    One code's tries used up is not a reason to wait an hour: the answer offers a new code at once. Only the
    per-user hourly limits answer `retry_later`.
    """
    if code == "otp_attempts_exceeded" and not hourly:
        if route == "verify_email":
            spent = msgspec.structs.replace(snapshot, email_code_spent=True)
        else:  # an SMS code: asking for one again (provide_phone) sends a new one
            spent = msgspec.structs.replace(snapshot, phone_masked=None)
        return Refusal(code, decide(spent), spent, retry_after=1)
    wait = wait_seconds(retry_after)
    headers = {"RateLimit-Limit": str(limit), "RateLimit-Remaining": "0", "RateLimit-Reset": str(wait)}
    return Refusal(
        code,
        RetryLater(endpoint=ROUTES[route].endpoint, retry_after_seconds=wait),
        snapshot,
        retry_after=wait,
        headers=headers,
    )


def spent_code(snapshot: Snapshot) -> Refusal | None:
    """The current email code's tries are used up: no try is counted or sent; a new code is offered at once."""
    if not snapshot.email_code_spent:
        return None
    return Refusal("otp_attempts_exceeded", decide(snapshot), snapshot, retry_after=1)


def limits_unavailable(route: str) -> Refusal:
    """The code-guessing counters cannot be read: refused (fail closed) rather than let through unchecked."""
    return refuse("service_unavailable", ROUTES[route].endpoint, retry_after=2)


# Problem codes meaning the code itself was refused: the try at it is not given back.
CODE_REFUSED = frozenset({"otp_invalid", "otp_expired"})


# --- the reads that complete what the next action needs ------------------------------------------

CARDS = "cards"
KYC_STATUS = "kyc_status"
KYC_LINK = "kyc_link"
QUESTIONS = "questions"
ACCOUNT = "account"
# Reads that only refresh what the user is waiting on: when they fail, the last known state is answered.
REFRESHES = frozenset({KYC_STATUS, ACCOUNT})


def may_degrade(read: str, snapshot: Snapshot) -> bool:
    """Whether a failed read may be answered with the last known state: a refresh of something known already
    (a KYC status never read is not a state to fall back on)."""
    return read in REFRESHES and not (read == KYC_STATUS and snapshot.kyc_status is None)


def next_read(
    snapshot: Snapshot, now: float, done: Iterable[str] = (), *, poll_seconds: float, polling: bool = False
) -> str | None:
    """The upstream read the next action needs before it can be shown, if any (each at most once per request).

    Always: a card without its last four digits, a KYC status never read, a missing or expired KYC link, the
    questions, the account once everything else is done. When `polling` (a GET): also a re-read of the states only
    the upstream moves (KYC review, account set-up), at most once per poll interval.
    """
    done = frozenset(done)
    s = snapshot
    if s.customer_id is None:
        return None
    if s.card is None and has_card(s):
        return _unless_done(CARDS, done)
    action = tag(decide(s))
    if in_identity(s):
        never_read = s.kyc_status is None and s.flow_status in FLOW_KYC
        in_review = action in ("wait_for_kyc", "complete_kyc") and s.flow_status in FLOW_KYC | {None}
        if KYC_STATUS not in done and (
            never_read or (polling and in_review and _due(s.kyc_checked_at, now, poll_seconds))
        ):
            return KYC_STATUS
        needs_link = s.kyc_url is None or _expired(s.kyc_url_expires_at, now)
        if s.kyc_status not in KYC_FAILED and s.kyc_status not in KYC_UNDER_REVIEW and needs_link:
            return _unless_done(KYC_LINK, done)
    if after_kyc(s):
        if not s.sof_done and s.questions is None:
            return _unless_done(QUESTIONS, done)
        if s.sof_done and s.phone_verified and s.safe_deployed is None:
            return _unless_done(ACCOUNT, done)
        if polling and action == "wait_for_account" and _due(s.account_checked_at, now, poll_seconds):
            return _unless_done(ACCOUNT, done)
    return None


def fresh(snapshot: Snapshot, now: float, *, poll_seconds: float) -> bool:
    """The cached snapshot can be answered as it is: nothing unsettled and no read due."""
    return snapshot.unsettled is None and next_read(snapshot, now, poll_seconds=poll_seconds, polling=True) is None


def _unless_done(read: str, done: frozenset[str]) -> str | None:
    return None if read in done else read


def kyc_status_read(snapshot: Snapshot, kyc_status: str, now: float) -> Snapshot:
    flow = snapshot.flow_status
    if kyc_status == "approved" and flow in FLOW_KYC | FLOW_KYC_LINK | {None}:
        flow = "kyc_completed"
    return msgspec.structs.replace(snapshot, kyc_status=kyc_status, kyc_checked_at=now, flow_status=flow)


def kyc_link_read(snapshot: Snapshot, links: Sequence[str | None], hosts: Iterable[str], now: float) -> Snapshot:
    """A fresh identity-check link; raises a refusal when none is https on the KYC provider's hosts (a user would
    open it as ours)."""
    url = first_allowed(links, hosts)
    if url is None:
        raise refuse("upstream_bad_response", GET_STATE)
    return msgspec.structs.replace(
        snapshot,
        kyc_url=url,
        kyc_url_expires_at=now + KYC_LINK_TTL_SECONDS - KYC_LINK_REFRESH_MARGIN_SECONDS,
        flow_status="kyc_initiated" if snapshot.flow_status in FLOW_KYC_LINK | {None} else snapshot.flow_status,
        kyc_status=snapshot.kyc_status or "pending",
    )


def questions_read(snapshot: Snapshot, completed: bool, questions: Sequence[Question]) -> Snapshot:
    if completed:
        return msgspec.structs.replace(snapshot, sof_done=True)  # answered before our records were lost
    return msgspec.structs.replace(snapshot, questions=tuple(questions))


def account_read(
    snapshot: Snapshot, exists: bool, safe_deployed: bool | None, card: CardView | None, now: float
) -> Snapshot:
    s = msgspec.structs.replace(
        snapshot, safe_deployed=bool(exists and safe_deployed is not False), account_checked_at=now
    )
    if card is not None:
        s = msgspec.structs.replace(s, card=card, flow_status="active")
    return s


def cards_read(snapshot: Snapshot, card: CardView | None) -> Snapshot:
    if card is None:
        return snapshot
    return msgspec.structs.replace(snapshot, card=card, flow_status="active")


def card_view(status: str | None, status_name: str | None, last4: str | None) -> CardView:
    """What a frontend may see of a card: its status and, if it looks like four digits, its last four."""
    shown = last4 if last4 and len(last4) == 4 and last4.isascii() and last4.isdigit() else None
    return CardView(last_four=shown, status=(status or status_name or "active").lower())


def from_customer(
    customer_id: str,
    flow_status: str | None,
    kyc_status: str | None,
    safe_deployed: bool | None,
    email: str | None,
    card: CardView | None,
) -> Snapshot:
    """What a customer record found upstream (by our own id) says."""
    return Snapshot(
        customer_id=customer_id,
        flow_status="active" if card else flow_status,
        kyc_status=kyc_status,
        safe_deployed=safe_deployed,
        email_masked=mask_email(email) if email else None,
        card=card,
    )


def reconciled(snapshot: Snapshot, found: Snapshot) -> Snapshot:
    """After a create we could not see the end of: what the upstream made of it, with our own progress notes."""
    settled = msgspec.structs.replace(snapshot, unsettled=None)
    if found.customer_id is None:
        return settled
    if found.customer_id != snapshot.customer_id:
        return msgspec.structs.replace(found, email_masked=found.email_masked or snapshot.email_masked)
    return msgspec.structs.replace(
        settled,
        flow_status=found.flow_status or snapshot.flow_status,
        kyc_status=found.kyc_status or snapshot.kyc_status,
        card=found.card or snapshot.card,
    )


def check_answers(questions: Sequence[Question], answers: Sequence[tuple[str, str]]) -> list[FieldError]:
    """Every offered question answered exactly once, with one of its options."""
    offered = {q.id: q for q in questions}
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, (question, value) in enumerate(answers):
        where = f"answers[{index}]"
        if question not in offered:
            errors.append(FieldError(f"{where}.question", "This is not one of the questions asked."))
        elif question in seen:
            errors.append(FieldError(f"{where}.question", "This question is answered twice: answer it once."))
        elif value not in offered[question].options:
            errors.append(FieldError(f"{where}.answer", "Choose one of the options offered for this question."))
        seen.add(question)
    for question_id in offered:
        if question_id not in seen:
            errors.append(FieldError("answers", f"Answer the question {question_id}."))
    return errors


def answers_refusal(snapshot: Snapshot, answers: Sequence[tuple[str, str]]) -> Refusal | None:
    action = decide(snapshot)
    questions = getattr(action, "questions", ())
    errors = check_answers(questions, answers)
    if not errors:
        return None
    return Refusal("validation_failed", FixInput(endpoint=ROUTES["source_of_funds"].endpoint, errors=errors), snapshot)


def _expired(at: float | None, now: float) -> bool:
    return at is not None and now >= at


def _due(checked_at: float | None, now: float, every: float) -> bool:
    return checked_at is None or now - checked_at >= every
