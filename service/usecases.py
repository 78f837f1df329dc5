"""One user intent at a time: calls the upstream, records what it said in the snapshot, and asks decide() what next."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
import structlog

from service.onboarding.actions import (
    EMAIL_VERIFICATION,
    PHONE,
    PHONE_VERIFICATION,
    START,
    AnswerSourceOfFunds,
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
    Question,
    RetryLater,
    UseDifferentEmail,
    VerifyEmailCode,
    VerifyPhoneCode,
    WaitForAccount,
    WaitForKyc,
)
from service.onboarding.decide import (
    EMAIL_CODE_DEAD,
    EMAIL_CODE_WRONG,
    EMAIL_REFUSALS,
    FLOW_KYC,
    FLOW_KYC_LINK,
    KYC_FAILED,
    PHONE_CODE_DEAD,
    PHONE_CODE_WRONG,
    RESUME_SIGNALS,
    WALLET_NOT_READY,
    after_kyc,
    decide,
    has_card,
    in_identity,
    step_of,
)
from service.onboarding.errors import OnboardingError
from service.onboarding.kyclink import DEFAULT_KYC_LINK_HOSTS, described, first_allowed
from service.onboarding.masking import mask_email, mask_phone
from service.onboarding.snapshot import Snapshot
from service.onboarding.user import User
from service.storage.flights import Flights
from service.storage.limits import LimitExceeded, Limits, LimitsUnavailable
from service.storage.store import StateStore
from service.yativo import (
    Card,
    Customer,
    SofAnswer,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamUnavailable,
    YativoClient,
)

T = TypeVar("T")
# The answers that mean the code itself was refused: those tries are not given back.
_CODE_REFUSED = ("otp_invalid", "otp_expired")

log = structlog.get_logger(__name__)

# The upstream documents a 1-hour KYC link; refresh a little early so a link we hand out still works.
KYC_LINK_TTL_SECONDS = 3600
KYC_LINK_REFRESH_MARGIN_SECONDS = 120
DEFAULT_OTP_TTL_SECONDS = 600


def answer(snapshot: Snapshot, action: NextAction | None = None) -> OnboardingState:
    action = decide(snapshot) if action is None else action
    return OnboardingState(
        next_action=action,
        progress=Progress(int(step_of(snapshot))),
        email_masked=snapshot.email_masked,
        phone_masked=snapshot.phone_masked,
        card=snapshot.card,
    )


class Onboarding:
    def __init__(
        self,
        yativo: YativoClient,
        store: StateStore,
        *,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
        deadline_seconds: float = 8.0,
        kyc_link_hosts: tuple[str, ...] = DEFAULT_KYC_LINK_HOSTS,
    ) -> None:
        self._yativo = yativo
        self._kyc_link_hosts = kyc_link_hosts
        self._store = store
        self._clock = clock
        self._poll = poll_seconds
        self._flights = Flights(store.redis, store.breaker, deadline_seconds=deadline_seconds)
        self._limits = Limits(store.redis, store.breaker, store.quotas)

    # --- the routes' use cases ------------------------------------------------------------------
    # Each runs as one flight per user (service.storage.flights): identical concurrent requests share one run
    # and its answer, different ones for the same user take turns, all within the request deadline.

    async def current(self, user: User) -> OnboardingState:
        snapshot = await self._store.load(user.uid)
        if snapshot is not None and snapshot.unsettled is None and self._poll_due(snapshot) is None:
            return answer(snapshot)  # the frequent read: one Redis round trip
        return await self._flights.run(user.uid, "current", lambda: self._current(user))

    async def start(self, user: User, email: str, client_ip: str | None = None) -> OnboardingState:
        flight = _flight("start", email)
        return await self._flights.run(user.uid, flight, lambda: self._start(user, email, client_ip))

    async def verify_email(self, user: User, code: str) -> OnboardingState:
        return await self._flights.run(user.uid, _flight("verify_email", code), lambda: self._verify_email(user, code))

    async def kyc_session(self, user: User) -> OnboardingState:
        return await self._flights.run(user.uid, "kyc_session", lambda: self._kyc_session(user))

    async def submit_source_of_funds(self, user: User, answers: Sequence[tuple[str, str]]) -> OnboardingState:
        flight = _flight("source_of_funds", *(f"{q}={a}" for q, a in answers))
        return await self._flights.run(user.uid, flight, lambda: self._submit_source_of_funds(user, answers))

    async def request_phone_code(self, user: User, phone_number: str, client_ip: str | None = None) -> OnboardingState:
        flight = _flight("phone", phone_number)
        return await self._flights.run(
            user.uid, flight, lambda: self._request_phone_code(user, phone_number, client_ip)
        )

    async def verify_phone_code(self, user: User, code: str) -> OnboardingState:
        flight = _flight("verify_phone", code)
        return await self._flights.run(user.uid, flight, lambda: self._verify_phone_code(user, code))

    async def create_card(self, user: User) -> OnboardingState:
        return await self._flights.run(user.uid, "card", lambda: self._create_card(user))

    # --- one run of each --------------------------------------------------------------------------

    async def _current(self, user: User) -> OnboardingState:
        snapshot = await self._load(user)  # read again: the run before this one may just have refreshed it
        refreshed = await self._poll_if_due(snapshot)
        if refreshed is not snapshot:
            await self._store.save(user.uid, refreshed)
        return answer(refreshed)

    async def _start(self, user: User, email: str, client_ip: str | None) -> OnboardingState:
        snapshot = await self._load(user)
        if snapshot.card_id is not None and not isinstance(decide(snapshot), (VerifyEmailCode, ProvideEmail)):
            return answer(snapshot)  # already past the email steps: starting again is a resume
        await self._limited(self._limits.quota(user.uid, client_ip, "start"), START)
        try:
            started = await self._effect(
                user,
                snapshot,
                "onboard",
                self._yativo.onboard(
                    email,
                    user.external_customer_id,
                    idempotency_key=_idempotency_key(user, "onboard", email, snapshot.email_code_sent_at),
                ),
            )
        except UpstreamRejected as exc:
            return await self._resume_after_onboard(user, snapshot, email, exc)
        if started.external_customer_id not in (None, user.external_customer_id):
            log.error("onboard_returned_foreign_customer")
            raise OnboardingError("email_unavailable", UseDifferentEmail(reason="in_use"))
        snapshot = Snapshot(
            card_id=started.yativo_card_id,
            flow_status="otp_requested",
            next_step=started.next_step,
            email_masked=mask_email(email),
            otp_expires_at=self._clock() + (started.otp_expires_in_seconds or DEFAULT_OTP_TTL_SECONDS),
            email_code_sent_at=self._clock(),
        )
        return await self._settle(user, snapshot)

    async def _verify_email(self, user: User, code: str) -> OnboardingState:
        snapshot = await self._load(user)
        self._require(snapshot, VerifyEmailCode)
        assert snapshot.card_id is not None
        issue = str(snapshot.email_code_sent_at)
        async with self._code_try(user, "email", issue, Endpoint("POST", EMAIL_VERIFICATION)):
            try:
                verified = await self._effect(
                    user,
                    snapshot,
                    "verify_otp",
                    self._yativo.verify_otp(
                        snapshot.card_id,
                        code,
                        idempotency_key=_idempotency_key(user, "verify_otp", code, snapshot.email_code_sent_at),
                    ),
                )
            except UpstreamRejected as exc:
                if exc.code in EMAIL_CODE_WRONG:
                    raise OnboardingError("otp_invalid", decide(snapshot, exc.code), snapshot) from None
                if exc.code in EMAIL_CODE_DEAD:  # also the upstream's own "too many attempts"
                    raise OnboardingError("otp_expired", decide(snapshot, exc.code), snapshot) from None
                return await self._after_rejection(user, snapshot, exc)
        snapshot = msgspec.structs.replace(snapshot, flow_status=verified.flow_status, next_step=verified.next_step)
        return await self._settle(user, snapshot)

    async def _kyc_session(self, user: User) -> OnboardingState:
        snapshot = await self._load(user)
        self._require(snapshot, CompleteKyc)
        snapshot = await self._with_kyc_link(snapshot)
        return await self._settle(user, snapshot)

    async def _submit_source_of_funds(self, user: User, answers: Sequence[tuple[str, str]]) -> OnboardingState:
        snapshot = await self._load(user)
        action = self._require(snapshot, AnswerSourceOfFunds)
        errors = check_answers(action.questions, answers)
        if errors:
            raise OnboardingError("validation_failed", FixInput(endpoint=action.endpoint, errors=errors), snapshot)
        assert snapshot.card_id is not None
        try:
            await self._effect(
                user,
                snapshot,
                "source_of_funds",
                self._yativo.submit_source_of_funds(
                    snapshot.card_id,
                    [SofAnswer(question=q, answer=a) for q, a in answers],
                    idempotency_key=_idempotency_key(user, "source_of_funds", *(f"{q}={a}" for q, a in answers)),
                ),
            )
        except UpstreamRejected as exc:
            if exc.code.startswith("INVALID_"):
                # The questionnaire changed under us: offer the current one again.
                snapshot = await self._with_questions(msgspec.structs.replace(snapshot, questions=None))
                await self._store.save(user.uid, snapshot)
                raise OnboardingError(
                    "validation_failed",
                    FixInput(
                        endpoint=action.endpoint,
                        errors=[FieldError("answers", "These answers are not accepted; answer the questions offered.")],
                    ),
                    snapshot,
                ) from None
            return await self._after_rejection(user, snapshot, exc)
        return await self._settle(user, msgspec.structs.replace(snapshot, sof_done=True))

    async def _request_phone_code(self, user: User, phone_number: str, client_ip: str | None) -> OnboardingState:
        snapshot = await self._load(user)
        self._require(snapshot, (ProvidePhone, VerifyPhoneCode))
        assert snapshot.card_id is not None
        await self._limited(self._limits.quota(user.uid, client_ip, "phone"), Endpoint("POST", PHONE))
        try:
            sent = await self._effect(
                user,
                snapshot,
                "phone",
                self._yativo.request_phone_verification(
                    snapshot.card_id,
                    phone_number,
                    idempotency_key=_idempotency_key(user, "phone", phone_number, snapshot.phone_code_sent_at),
                ),
            )
        except UpstreamRejected as exc:
            if exc.code == "INVALID_PHONE_NUMBER":
                raise OnboardingError(
                    "validation_failed",
                    FixInput(
                        endpoint=ProvidePhone().endpoint,
                        errors=[FieldError("phoneNumber", "This phone number cannot receive codes.")],
                    ),
                    snapshot,
                ) from None
            if exc.code in ("INVALID_FLOW_STATE", "PHONE_ALREADY_VERIFIED") and snapshot.sof_done:
                # No flow_status marks a verified phone: a code refused after source of funds means the phone
                # was verified before our records were lost. Reading the account next settles the rest.
                log.info("phone_already_verified_upstream")
                return await self._settle(
                    user, msgspec.structs.replace(snapshot, phone_verified=True, safe_deployed=None)
                )
            return await self._after_rejection(user, snapshot, exc)
        del sent  # the upstream's own mask shows too little to recognise the number
        sent_now = msgspec.structs.replace(
            snapshot, phone_masked=mask_phone(phone_number), phone_code_sent_at=self._clock()
        )
        return await self._settle(user, sent_now)

    async def _verify_phone_code(self, user: User, code: str) -> OnboardingState:
        snapshot = await self._load(user)
        self._require(snapshot, VerifyPhoneCode)
        assert snapshot.card_id is not None
        issue = str(snapshot.phone_code_sent_at)
        async with self._code_try(user, "sms", issue, Endpoint("POST", PHONE_VERIFICATION)):
            try:
                await self._effect(
                    user,
                    snapshot,
                    "verify_phone",
                    self._yativo.verify_phone(
                        snapshot.card_id,
                        code,
                        idempotency_key=_idempotency_key(user, "verify_phone", code, snapshot.phone_code_sent_at),
                    ),
                )
            except UpstreamRejected as exc:
                if exc.code in PHONE_CODE_WRONG:
                    raise OnboardingError("otp_invalid", decide(snapshot, exc.code), snapshot) from None
                if exc.code in PHONE_CODE_DEAD:
                    snapshot = msgspec.structs.replace(snapshot, phone_masked=None)
                    await self._store.save(user.uid, snapshot)
                    raise OnboardingError("otp_expired", decide(snapshot, exc.code), snapshot) from None
                return await self._after_rejection(user, snapshot, exc)
        snapshot = msgspec.structs.replace(snapshot, phone_verified=True, safe_deployed=None)
        return await self._settle(user, snapshot)

    async def _create_card(self, user: User) -> OnboardingState:
        snapshot = await self._load(user)
        if isinstance(decide(snapshot), Done):
            return answer(snapshot)  # a double submit: the card exists, ask nobody
        self._require(snapshot, (CreateCard, WaitForAccount))
        assert snapshot.card_id is not None
        try:
            # One card per customer, ever: the same key on every attempt and every replica.
            await self._effect(
                user,
                snapshot,
                "card",
                self._yativo.create_virtual_card(
                    snapshot.card_id, idempotency_key=_idempotency_key(user, "card", snapshot.card_id)
                ),
            )
        except UpstreamRejected as exc:
            if exc.code in WALLET_NOT_READY:
                snapshot = msgspec.structs.replace(snapshot, safe_deployed=False, account_checked_at=self._clock())
                await self._store.save(user.uid, snapshot)
                return answer(snapshot)
            if exc.code == "VIRTUAL_CARD_LIMIT_REACHED":
                return await self._settle(user, msgspec.structs.replace(snapshot, flow_status="active"))
            return await self._after_rejection(user, snapshot, exc)
        return await self._settle(user, msgspec.structs.replace(snapshot, flow_status="active", safe_deployed=True))

    # --- reading and completing what we know ----------------------------------------------------

    async def _load(self, user: User) -> Snapshot:
        snapshot = await self._store.load(user.uid)
        if snapshot is not None and snapshot.unsettled is not None:
            return await self._reconcile(user, snapshot)
        if snapshot is not None:
            return snapshot
        # Redis lost it (flush, expiry, restart): the upstream still knows; find the customer by our own id.
        snapshot = await self._from_upstream(user)
        snapshot = await self._complete(snapshot)
        await self._store.save(user.uid, snapshot)
        return snapshot

    async def _from_upstream(self, user: User) -> Snapshot:
        customer = await self._yativo.lookup_customer(external_id=user.external_customer_id)
        if customer is None or customer.external_ref not in (None, user.external_customer_id):
            return Snapshot()
        return _snapshot_of(customer)

    async def _settle(self, user: User, snapshot: Snapshot) -> OnboardingState:
        snapshot = await self._complete(snapshot)
        await self._store.save(user.uid, snapshot)
        return answer(snapshot)

    async def _complete(self, s: Snapshot) -> Snapshot:
        """Fetch what the next action needs to be shown: a KYC link, the questions, the card's last four."""
        if s.card_id is None:
            return s
        if s.card is None and has_card(s):
            return await self._with_card(s)
        if in_identity(s):
            if s.kyc_status is None and s.flow_status in FLOW_KYC:
                s = await self._with_kyc_status(s)
            needs_link = s.kyc_url is None or _expired(s.kyc_url_expires_at, self._clock())
            if in_identity(s) and s.kyc_status not in KYC_FAILED and s.kyc_status != "in_progress" and needs_link:
                s = await self._with_kyc_link(s)
        if after_kyc(s):
            if not s.sof_done and s.questions is None:
                s = await self._with_questions(s)
            if s.sof_done and s.phone_verified and s.safe_deployed is None:
                s = await self._with_account(s)
        return s

    def _poll_due(self, s: Snapshot) -> str | None:
        """Which read of a state only the upstream moves is due, if any: "kyc_status" (review), "kyc_link" (the
        link expired) or "account" (set-up); each at most once per poll interval."""
        now = self._clock()
        action = decide(s)
        in_review = isinstance(action, (WaitForKyc, CompleteKyc)) and s.flow_status in FLOW_KYC | {None}
        if in_review and _due(s.kyc_checked_at, now, self._poll):
            return "kyc_status"
        if isinstance(action, CompleteKyc) and _expired(s.kyc_url_expires_at, now):
            return "kyc_link"
        if isinstance(action, WaitForAccount) and _due(s.account_checked_at, now, self._poll):
            return "account"
        return None

    async def _poll_if_due(self, s: Snapshot) -> Snapshot:
        """On a read, re-ask the upstream about the states only it moves: KYC review and account set-up."""
        due = self._poll_due(s)
        if due == "kyc_status":
            return await self._complete(await self._with_kyc_status(s))
        if due == "kyc_link":
            return await self._with_kyc_link(s)
        if due == "account":
            return await self._with_account(s)
        return s

    async def _with_kyc_status(self, s: Snapshot) -> Snapshot:
        assert s.card_id is not None
        status = await self._yativo.kyc_status(s.card_id)
        flow = s.flow_status
        if status.kyc_status == "approved" and flow in FLOW_KYC | FLOW_KYC_LINK | {None}:
            flow = "kyc_completed"
        return msgspec.structs.replace(s, kyc_status=status.kyc_status, kyc_checked_at=self._clock(), flow_status=flow)

    async def _with_kyc_link(self, s: Snapshot) -> Snapshot:
        assert s.card_id is not None
        link = await self._yativo.kyc_link(s.card_id)
        url = first_allowed((link.kyc_url, link.sumsub_link), self._kyc_link_hosts)
        if url is None:
            # Never hand the frontend a link off the KYC provider's hosts: the user would open it as ours.
            log.error("kyc_link_refused", **described(link.url))
            raise UpstreamBadResponse("kyc link not on an allowed host")
        now = self._clock()
        return msgspec.structs.replace(
            s,
            kyc_url=url,
            kyc_url_expires_at=now + KYC_LINK_TTL_SECONDS - KYC_LINK_REFRESH_MARGIN_SECONDS,
            flow_status="kyc_initiated" if s.flow_status in FLOW_KYC_LINK | {None} else s.flow_status,
            kyc_status=s.kyc_status or "pending",
        )

    async def _with_questions(self, s: Snapshot) -> Snapshot:
        assert s.card_id is not None
        offered = await self._yativo.source_of_funds_questions(s.card_id)
        if offered.status == "completed":
            return msgspec.structs.replace(s, sof_done=True)  # answered before our records were lost
        questions = tuple(Question(q.question, q.label or q.question, list(q.options)) for q in offered.questions)
        return msgspec.structs.replace(s, questions=questions)

    async def _with_account(self, s: Snapshot) -> Snapshot:
        assert s.card_id is not None
        customer = await self._yativo.get_customer(s.card_id)
        deployed = bool(customer and customer.safe_deployed is not False)
        s = msgspec.structs.replace(s, safe_deployed=deployed, account_checked_at=self._clock())
        if customer is not None and customer.cards:
            s = msgspec.structs.replace(s, card=_card_view(customer.cards[0]), flow_status="active")
        return s

    async def _with_card(self, s: Snapshot) -> Snapshot:
        assert s.card_id is not None
        listed = await self._yativo.list_cards(s.card_id)
        if not listed.cards:
            return s
        return msgspec.structs.replace(s, card=_card_view(listed.cards[0]), flow_status="active")

    # --- limits ------------------------------------------------------------------------------------

    async def _limited(self, check: Awaitable[None], endpoint: Endpoint) -> None:
        """Run a limit check; past the limit, or with the counters unreadable, refuse without calling upstream."""
        try:
            await check
        except LimitExceeded as exc:
            wait = max(1, math.ceil(exc.retry_after))
            headers = {"RateLimit-Limit": str(exc.limit), "RateLimit-Remaining": "0", "RateLimit-Reset": str(wait)}
            raise OnboardingError(
                exc.code, RetryLater(endpoint=endpoint, retry_after_seconds=wait), retry_after=wait, headers=headers
            ) from None
        except LimitsUnavailable:
            raise OnboardingError(
                "service_unavailable", RetryLater(endpoint=endpoint, retry_after_seconds=2), retry_after=2
            ) from None

    @contextlib.asynccontextmanager
    async def _code_try(self, user: User, kind: str, issue: str, endpoint: Endpoint) -> AsyncIterator[None]:
        """Count one try at a code before the upstream is asked, and give it back unless the code turned out wrong
        or dead (a dead code, the upstream's "too many attempts" included, is no licence for free tries)."""
        await self._limited(self._limits.code_attempt(user.uid, kind, issue), endpoint)
        try:
            yield
        except OnboardingError as exc:
            if exc.code not in _CODE_REFUSED:
                await self._limits.refund_code_attempt(user.uid, kind, issue)
            raise
        except BaseException:
            await self._limits.refund_code_attempt(user.uid, kind, issue)
            raise
        else:
            await self._limits.refund_code_attempt(user.uid, kind, issue)

    # --- effects whose outcome may be unknown ----------------------------------------------------

    async def _effect(self, user: User, snapshot: Snapshot, operation: str, call: Awaitable[T]) -> T:
        """Run one mutating upstream call. If its outcome cannot be known (timeout, dropped connection, the
        request deadline), note it, so the next request reads the upstream before anything is sent again."""
        try:
            return await call
        except UpstreamUnavailable as exc:
            if exc.maybe_committed:
                await self._store.save(user.uid, msgspec.structs.replace(snapshot, unsettled=operation))
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self._store.save(user.uid, msgspec.structs.replace(snapshot, unsettled=operation)))
            raise

    async def _reconcile(self, user: User, snapshot: Snapshot) -> Snapshot:
        """Read what the upstream made of a create we could not see the end of; keep our own progress notes."""
        log.info("reconciling", operation=snapshot.unsettled)
        settled = msgspec.structs.replace(snapshot, unsettled=None)
        if snapshot.unsettled == "card" and snapshot.card_id is not None:
            s = await self._with_card(settled)
        else:
            found = await self._from_upstream(user)
            if found.card_id is None:
                s = settled
            elif found.card_id != snapshot.card_id:
                s = msgspec.structs.replace(found, email_masked=found.email_masked or snapshot.email_masked)
            else:
                s = msgspec.structs.replace(
                    settled,
                    flow_status=found.flow_status or snapshot.flow_status,
                    kyc_status=found.kyc_status or snapshot.kyc_status,
                    card=found.card or snapshot.card,
                )
            s = await self._complete(s)
        await self._store.save(user.uid, s)
        return s

    # --- resuming -------------------------------------------------------------------------------

    async def _resume_after_onboard(
        self, user: User, snapshot: Snapshot, email: str, exc: UpstreamRejected
    ) -> OnboardingState:
        if exc.code in EMAIL_REFUSALS:
            code = "email_invalid" if exc.code == "INVALID_EMAIL" else "email_unavailable"
            raise OnboardingError(code, decide(snapshot, exc.code), snapshot) from None
        if exc.code not in RESUME_SIGNALS:
            raise exc
        data = exc.data
        owner = data.external_customer_id
        email_masked = snapshot.email_masked if snapshot.card_id == data.yativo_card_id else None
        if owner is None or data.yativo_card_id is None:
            # Ownership not stated: confirm through our own id before using anything of this record.
            mine = await self._yativo.lookup_customer(external_id=user.external_customer_id)
            if mine is None or (data.yativo_card_id is not None and mine.yativo_card_id != data.yativo_card_id):
                raise OnboardingError("email_unavailable", UseDifferentEmail(reason="in_use")) from None
            resumed = _snapshot_of(mine)
            email_masked = email_masked or (mask_email(mine.email) if mine.email else None)
        elif owner != user.external_customer_id:
            # Someone else's customer: nothing of it is cached or shown.
            raise OnboardingError("email_unavailable", UseDifferentEmail(reason="in_use")) from None
        else:
            resumed = Snapshot(card_id=data.yativo_card_id, flow_status=data.flow_status, next_step=data.next_step)
            email_masked = email_masked or mask_email(email)
        keep = snapshot.card_id == resumed.card_id
        resumed = msgspec.structs.replace(
            resumed,
            email_masked=email_masked,
            otp_expires_at=snapshot.otp_expires_at
            if keep and not _expired(snapshot.otp_expires_at, self._clock())
            else None,
            email_code_sent_at=self._clock(),  # starting again may have sent a new code
            sof_done=snapshot.sof_done if keep else False,
            phone_verified=snapshot.phone_verified if keep else False,
            phone_masked=snapshot.phone_masked if keep else None,
        )
        return await self._settle(user, resumed)

    async def _after_rejection(self, user: User, snapshot: Snapshot, exc: UpstreamRejected) -> OnboardingState:
        """An answer we did not expect at this step: our state is stale, so re-read the upstream and say where we are."""
        if exc.code not in ("INVALID_FLOW_STATE", "CUSTOMER_NOT_FOUND"):
            raise exc
        log.info("state_out_of_date", upstream_code=exc.code)
        await self._store.forget(user.uid)
        fresh = await self._complete(await self._from_upstream(user))
        fresh = msgspec.structs.replace(fresh, email_masked=fresh.email_masked or snapshot.email_masked)
        await self._store.save(user.uid, fresh)
        raise OnboardingError("step_not_available", decide(fresh), fresh) from None

    def _require(self, snapshot: Snapshot, allowed: type | tuple[type, ...]):  # type: ignore[no-untyped-def]
        action = decide(snapshot)
        if not isinstance(action, allowed):
            raise OnboardingError("step_not_available", action, snapshot)
        return action


def check_answers(questions: Sequence[Question], answers: Sequence[tuple[str, str]]) -> list[FieldError]:
    """Every offered question answered exactly once, with one of its options."""
    offered = {q.id: q for q in questions}
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, (question, value) in enumerate(answers):
        where = f"answers[{index}]"
        if question not in offered:
            errors.append(FieldError(f"{where}.question", "Not one of the questions offered."))
        elif question in seen:
            errors.append(FieldError(f"{where}.question", "Answered twice."))
        elif value not in offered[question].options:
            errors.append(FieldError(f"{where}.answer", "Not one of the options offered for this question."))
        seen.add(question)
    for question_id in offered:
        if question_id not in seen:
            errors.append(FieldError("answers", f"Question {question_id} is not answered."))
    return errors


def _snapshot_of(customer: Customer) -> Snapshot:
    card = _card_view(customer.cards[0]) if customer.cards else None
    return Snapshot(
        card_id=customer.yativo_card_id,
        flow_status="active" if card else customer.flow_status,
        kyc_status=customer.kyc_status,
        safe_deployed=customer.safe_deployed,
        email_masked=mask_email(customer.email) if customer.email else None,
        card=card,
    )


def _card_view(card: Card) -> CardView:
    status = (card.status or card.status_name or "active").lower()
    last4 = card.last4
    return CardView(
        last_four=last4 if last4 and len(last4) == 4 and last4.isascii() and last4.isdigit() else None, status=status
    )


def _flight(step: str, *inputs: object) -> str:
    """A flight id: the step and a digest of its input, so the input itself (a code, an email) never reaches Redis."""
    if not inputs:
        return step
    digest = hashlib.blake2b("\x1f".join(map(str, inputs)).encode(), digest_size=12, person=b"bff-flight")
    return f"{step}:{digest.hexdigest()}"


def _idempotency_key(user: User, step: str, *parts: object) -> str:
    """The same user, step and attempt give the same key, on every replica (attempt: what the parts pin down,
    e.g. the code being verified and the code issue it belongs to)."""
    material = "\x1f".join([user.external_customer_id, step, *map(str, parts)]).encode()
    return f"bff-{step}-{hashlib.blake2b(material, digest_size=16, person=b'bff-idem').hexdigest()}"


def _expired(at: float | None, now: float) -> bool:
    return at is not None and now >= at


def _due(checked_at: float | None, now: float, every: float) -> bool:
    return checked_at is None or now - checked_at >= every
