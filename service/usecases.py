"""The shell around the onboarding state machine: per route, load -> ask the core -> call the upstream -> save -> answer.

Every decision is service.onboarding.machine's (and decide()'s); this module only does the I/O it names, in
order, and feeds the outcomes back. Each route runs as one flight per user (service.storage.flights): identical
concurrent requests share one run and its answer, different ones for the same user take turns, all within the
request deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec
import structlog

from service.onboarding import machine
from service.onboarding.actions import OnboardingState, Question
from service.onboarding.inputs import (
    BadInput,
    CodeRequest,
    PhoneRequest,
    SourceOfFundsRequest,
    StartRequest,
    normalize_email,
    parse_body,
)
from service.onboarding.kyclink import DEFAULT_KYC_LINK_HOSTS, described
from service.onboarding.refusals import Refusal, refuse
from service.onboarding.snapshot import Snapshot
from service.onboarding.user import User
from service.ops import metrics
from service.storage.flights import Flights
from service.storage.limits import LimitExceeded, Limits, LimitsUnavailable
from service.storage.store import StateStore
from service.yativo import (
    Card,
    Customer,
    SofAnswer,
    UpstreamAuthFailed,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    YativoClient,
    YativoError,
)

T = TypeVar("T")
log = structlog.get_logger(__name__)


class Onboarding:
    def __init__(
        self,
        yativo: YativoClient,
        store: StateStore,
        flights: Flights,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
        resend_cooldown_seconds: float = machine.DEFAULT_RESEND_COOLDOWN_SECONDS,
        kyc_link_hosts: tuple[str, ...] = DEFAULT_KYC_LINK_HOSTS,
    ) -> None:
        self._yativo = yativo
        self._store = store
        self._flights = flights
        self._limits = limits
        self._clock = clock
        self._poll = poll_seconds
        self._cooldown = resend_cooldown_seconds
        self._kyc_link_hosts = kyc_link_hosts

    # --- the routes ------------------------------------------------------------------------------

    async def current(self, user: User) -> OnboardingState:
        snapshot = await self._store.load(user.uid)
        if snapshot is not None and machine.fresh(snapshot, self._clock(), poll_seconds=self._poll):
            return machine.answer(snapshot)  # the frequent read: one Redis round trip
        return await self._fly(user, "current", "current", lambda: self._current(user))

    async def start(self, user: User, content_type: str | None, body: bytes, client_ip: str | None) -> OnboardingState:
        parsed = parse_body("start", content_type, body)
        email = parsed.email if isinstance(parsed, StartRequest) else ""
        return await self._run(user, "start", parsed, (email,), lambda s: self._start(user, s, email, client_ip))

    async def verify_email(self, user: User, content_type: str | None, body: bytes) -> OnboardingState:
        parsed = parse_body("verify_email", content_type, body)
        code = parsed.code if isinstance(parsed, CodeRequest) else ""
        return await self._run(user, "verify_email", parsed, (code,), lambda s: self._verify_email(user, s, code))

    async def kyc_session(self, user: User) -> OnboardingState:
        return await self._run(user, "kyc_session", None, (), lambda s: self._kyc_session(user, s))

    async def submit_source_of_funds(self, user: User, content_type: str | None, body: bytes) -> OnboardingState:
        parsed = parse_body("source_of_funds", content_type, body)
        answers = [(a.question, a.answer) for a in parsed.answers] if isinstance(parsed, SourceOfFundsRequest) else []
        return await self._run(
            user,
            "source_of_funds",
            parsed,
            tuple(f"{q}={a}" for q, a in answers),
            lambda s: self._submit_source_of_funds(user, s, answers),
        )

    async def request_phone_code(
        self, user: User, content_type: str | None, body: bytes, client_ip: str | None
    ) -> OnboardingState:
        parsed = parse_body("phone", content_type, body)
        phone = parsed.phone_number if isinstance(parsed, PhoneRequest) else ""
        return await self._run(
            user, "phone", parsed, (phone,), lambda s: self._request_phone_code(user, s, phone, client_ip)
        )

    async def verify_phone_code(self, user: User, content_type: str | None, body: bytes) -> OnboardingState:
        parsed = parse_body("verify_phone", content_type, body)
        code = parsed.code if isinstance(parsed, CodeRequest) else ""
        return await self._run(user, "verify_phone", parsed, (code,), lambda s: self._verify_phone_code(user, s, code))

    async def create_card(self, user: User) -> OnboardingState:
        return await self._run(user, "card", None, (), lambda s: self._create_card(user, s))

    async def _run(
        self,
        user: User,
        route: str,
        parsed: object,
        inputs: tuple[object, ...],
        step: Callable[[Snapshot], Awaitable[OnboardingState]],
    ) -> OnboardingState:
        """One flight: load, the step check, then the input check (in that order), then the step itself."""
        bad = parsed if isinstance(parsed, BadInput) else None
        flight = _flight(route, *(("invalid", bad.code) if bad is not None else inputs))

        async def work() -> OnboardingState:
            snapshot = await self._load(user)
            resumed = machine.step_check(route, snapshot)
            if resumed is not None:
                return resumed
            if bad is not None:
                raise refuse(bad.code, machine.ROUTES[route].endpoint, errors=bad.errors)
            return await step(snapshot)

        return await self._fly(user, route, flight, work)

    async def _fly(
        self, user: User, route: str, flight: str, work: Callable[[], Awaitable[OnboardingState]]
    ) -> OnboardingState:
        """Run `work` as the user's flight; an upstream failure becomes the core's refusal inside it, so every
        follower (on any replica) answers the same."""

        async def answered() -> OnboardingState:
            try:
                return await work()
            except YativoError as exc:
                raise _failure(route, exc) from None

        def deadline() -> Refusal:
            log.warning("upstream_timeout", reason="request deadline reached")
            return machine.upstream_failure(route, machine.TIMEOUT)

        return await self._flights.run(user.uid, flight, answered, on_deadline=deadline)

    # --- one run of each -------------------------------------------------------------------------

    async def _current(self, user: User) -> OnboardingState:
        snapshot = await self._load(user)  # read again: the run before this one may just have refreshed it
        return await self._settle(user, snapshot, polling=True)

    async def _start(self, user: User, snapshot: Snapshot, email: str, client_ip: str | None) -> OnboardingState:
        now = self._clock()
        if machine.start_resumes(snapshot, email, now):
            return machine.answer(snapshot)  # a repeat inside the cooldown: no upstream call, no quota
        await self._limited(self._limits.quota(user.uid, client_ip, "start"), user, "start", snapshot)
        if machine.start_restarts(snapshot, email):
            snapshot = await self._restart(user, snapshot)
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
            return await self._rejected(user, "start", snapshot, exc, email=email)
        if started.external_customer_id not in (None, user.external_customer_id):
            log.error("onboard_returned_foreign_customer")
            raise machine.foreign_customer()
        sent = machine.code_sent(
            snapshot,
            email,
            started.yativo_card_id,
            started.next_step,
            started.otp_expires_in_seconds,
            self._clock(),
            self._cooldown,
        )
        return await self._settle(user, sent)

    async def _verify_email(self, user: User, snapshot: Snapshot, code: str) -> OnboardingState:
        assert snapshot.customer_id is not None
        spent = machine.spent_code(snapshot)
        if spent is not None:
            metrics.REFUSALS.labels("otp_attempts_exceeded", "email").inc()
            raise spent
        async with self._code_try(user, "verify_email", "email", str(snapshot.email_code_sent_at), snapshot):
            try:
                verified = await self._effect(
                    user,
                    snapshot,
                    "verify_otp",
                    self._yativo.verify_otp(
                        snapshot.customer_id,
                        code,
                        idempotency_key=_idempotency_key(user, "verify_otp", code, snapshot.email_code_sent_at),
                    ),
                )
            except UpstreamRejected as exc:
                return await self._rejected(user, "verify_email", snapshot, exc)
        return await self._settle(user, machine.email_verified(snapshot, verified.flow_status, verified.next_step))

    async def _kyc_session(self, user: User, snapshot: Snapshot) -> OnboardingState:
        snapshot = await self._read(snapshot, machine.KYC_LINK)
        return await self._settle(user, snapshot)

    async def _submit_source_of_funds(
        self, user: User, snapshot: Snapshot, answers: Sequence[tuple[str, str]]
    ) -> OnboardingState:
        refusal = machine.answers_refusal(snapshot, answers)
        if refusal is not None:
            raise refusal
        assert snapshot.customer_id is not None
        try:
            await self._effect(
                user,
                snapshot,
                "source_of_funds",
                self._yativo.submit_source_of_funds(
                    snapshot.customer_id,
                    [SofAnswer(question=q, answer=a) for q, a in answers],
                    idempotency_key=_idempotency_key(user, "source_of_funds", *(f"{q}={a}" for q, a in answers)),
                ),
            )
        except UpstreamRejected as exc:
            return await self._rejected(user, "source_of_funds", snapshot, exc)
        return await self._settle(user, machine.sof_submitted(snapshot))

    async def _request_phone_code(
        self, user: User, snapshot: Snapshot, phone_number: str, client_ip: str | None
    ) -> OnboardingState:
        assert snapshot.customer_id is not None
        await self._limited(self._limits.quota(user.uid, client_ip, "phone"), user, "phone", snapshot)
        try:
            await self._effect(
                user,
                snapshot,
                "phone",
                self._yativo.request_phone_verification(
                    snapshot.customer_id,
                    phone_number,
                    idempotency_key=_idempotency_key(user, "phone", phone_number, snapshot.phone_code_sent_at),
                ),
            )
        except UpstreamRejected as exc:
            return await self._rejected(user, "phone", snapshot, exc)
        return await self._settle(user, machine.phone_code_sent(snapshot, phone_number, self._clock()))

    async def _verify_phone_code(self, user: User, snapshot: Snapshot, code: str) -> OnboardingState:
        assert snapshot.customer_id is not None
        async with self._code_try(user, "verify_phone", "sms", str(snapshot.phone_code_sent_at), snapshot):
            try:
                await self._effect(
                    user,
                    snapshot,
                    "verify_phone",
                    self._yativo.verify_phone(
                        snapshot.customer_id,
                        code,
                        idempotency_key=_idempotency_key(user, "verify_phone", code, snapshot.phone_code_sent_at),
                    ),
                )
            except UpstreamRejected as exc:
                return await self._rejected(user, "verify_phone", snapshot, exc)
        return await self._settle(user, machine.phone_verified(snapshot))

    async def _create_card(self, user: User, snapshot: Snapshot) -> OnboardingState:
        assert snapshot.customer_id is not None
        try:
            # One card per customer, ever: the same key on every attempt and every replica.
            await self._effect(
                user,
                snapshot,
                "card",
                self._yativo.create_virtual_card(
                    snapshot.customer_id, idempotency_key=_idempotency_key(user, "card", snapshot.customer_id)
                ),
            )
        except UpstreamRejected as exc:
            return await self._rejected(user, "card", snapshot, exc)
        return await self._settle(user, machine.card_created(snapshot))

    # --- what an upstream refusal leads to (the core decides; this does the I/O it names) ------------

    async def _rejected(
        self, user: User, route: str, snapshot: Snapshot, exc: UpstreamRejected, *, email: str | None = None
    ) -> OnboardingState:
        kind, snapshot, refusal = machine.rejected(route, exc.code, snapshot, self._clock())
        if kind == machine.UNEXPECTED:
            log.error("upstream_unexpected_rejection", upstream_status=exc.status, upstream_code=exc.code)
        elif kind == machine.STALE:
            log.info("state_out_of_date", upstream_code=exc.code)
            await self._store.forget(user.uid)
            fresh = machine.reread(snapshot, await self._complete(await self._from_upstream(user)))
            await self._store.save(user.uid, fresh)
            raise machine.stale(fresh)
        elif kind == machine.RESUME:
            return await self._resume(user, snapshot, exc, email or "")
        elif kind == machine.ANSWER:
            if route == "phone":
                log.info("phone_already_verified_upstream")
            return await self._settle(user, snapshot)
        assert refusal is not None
        if refusal.snapshot is not None:
            # Saved with what its next action needs (the current questionnaire, after answers were refused).
            await self._store.save(user.uid, await self._complete(refusal.snapshot))
        raise refusal

    async def _restart(self, user: User, snapshot: Snapshot) -> Snapshot:
        """Start over with another email: reset the unverified customer first (the upstream keeps one per user)."""
        assert snapshot.customer_id is not None
        log.info("starting_over_with_another_email")
        try:
            await self._effect(
                user,
                snapshot,
                "reset",
                self._yativo.reset_customer(
                    snapshot.customer_id, idempotency_key=_idempotency_key(user, "reset", snapshot.customer_id)
                ),
            )
        except UpstreamRejected as exc:
            if exc.code != "CUSTOMER_NOT_FOUND":  # already gone is what we wanted
                raise
        fresh = machine.restarted()
        await self._store.save(user.uid, fresh)
        return fresh

    async def _resume(self, user: User, snapshot: Snapshot, exc: UpstreamRejected, email: str) -> OnboardingState:
        """A start met an existing customer: use it only once it is known to be the caller's."""
        data = exc.data
        owner = data.external_customer_id
        if owner is None or data.yativo_card_id is None:
            # Ownership not stated: confirm through our own id before using anything of this record.
            mine = await self._yativo.lookup_customer(external_id=user.external_customer_id)
            if mine is None or (data.yativo_card_id is not None and mine.yativo_card_id != data.yativo_card_id):
                raise machine.foreign_customer()
            found = _snapshot_of(mine)
            shown_email = None if found.customer_id == snapshot.customer_id else normalize_email(mine.email or "")
        elif owner != user.external_customer_id:
            raise machine.foreign_customer()  # someone else's customer: nothing of it is cached or shown
        else:
            found = Snapshot(customer_id=data.yativo_card_id, flow_status=data.flow_status, next_step=data.next_step)
            shown_email = email
        resumed = machine.resumed(snapshot, found, shown_email, self._clock(), self._cooldown)
        return await self._settle(user, resumed)

    # --- reading and completing what we know -----------------------------------------------------

    async def _load(self, user: User) -> Snapshot:
        snapshot = await self._store.load(user.uid)
        if snapshot is not None and snapshot.unsettled is not None:
            return await self._reconcile(user, snapshot)
        if snapshot is not None:
            return snapshot
        # Redis lost it (flush, expiry, restart): the upstream still knows; find the customer by our own id.
        snapshot = await self._complete(await self._from_upstream(user))
        await self._store.save(user.uid, snapshot)
        return snapshot

    async def _from_upstream(self, user: User) -> Snapshot:
        customer = await self._yativo.lookup_customer(external_id=user.external_customer_id)
        if customer is None or customer.external_ref not in (None, user.external_customer_id):
            return Snapshot()
        return _snapshot_of(customer)

    async def _settle(self, user: User, snapshot: Snapshot, *, polling: bool = False) -> OnboardingState:
        original = snapshot
        snapshot = await self._complete(snapshot, polling=polling)
        if not polling or snapshot is not original:
            await self._store.save(user.uid, snapshot)
        return machine.answer(snapshot)

    async def _complete(self, snapshot: Snapshot, *, polling: bool = False) -> Snapshot:
        """Make the reads the core asks for, in its order, each at most once."""
        done: list[str] = []
        while read := machine.next_read(snapshot, self._clock(), done, poll_seconds=self._poll, polling=polling):
            done.append(read)
            try:
                snapshot = await self._read(snapshot, read)
            except UpstreamUnavailable as exc:
                if not machine.may_degrade(read, snapshot):
                    raise
                # Degraded, not failed: the user waiting on it gets the last known state.
                log.warning("degraded_answer", read=read, reason=exc.reason, circuit_open=exc.circuit_open)
                metrics.DEGRADED.labels(read).inc()
        return snapshot

    async def _read(self, s: Snapshot, read: str) -> Snapshot:
        assert s.customer_id is not None
        now = self._clock
        if read == machine.KYC_STATUS:
            status = await self._yativo.kyc_status(s.customer_id)
            return machine.kyc_status_read(s, status.kyc_status, now())
        if read == machine.KYC_LINK:
            link = await self._yativo.kyc_link(s.customer_id)
            try:
                return machine.kyc_link_read(s, (link.kyc_url, link.sumsub_link), self._kyc_link_hosts, now())
            except Refusal:
                log.error("kyc_link_refused", **described(link.url))
                raise
        if read == machine.QUESTIONS:
            offered = await self._yativo.source_of_funds_questions(s.customer_id)
            questions = [Question(q.question, q.label or q.question, list(q.options)) for q in offered.questions]
            return machine.questions_read(s, offered.status == "completed", questions)
        if read == machine.ACCOUNT:
            customer = await self._yativo.get_customer(s.customer_id)
            card = _card_view(customer.cards[0]) if customer is not None and customer.cards else None
            return machine.account_read(
                s, customer is not None, customer.safe_deployed if customer else None, card, now()
            )
        assert read == machine.CARDS
        listed = await self._yativo.list_cards(s.customer_id)
        return machine.cards_read(s, _card_view(listed.cards[0]) if listed.cards else None)

    # --- limits ---------------------------------------------------------------------------------

    async def _limited(self, check: Awaitable[None], user: User, route: str, snapshot: Snapshot) -> None:
        """Run a limit check; past the limit, or with the counters unreadable, refuse without calling upstream (a
        spent code is remembered in the snapshot, so GET says the same)."""
        try:
            await check
        except LimitExceeded as exc:
            refusal = machine.limit_refusal(
                exc.code, route, snapshot, retry_after=exc.retry_after, limit=exc.limit, hourly=exc.hourly
            )
            if refusal.snapshot is not None and refusal.snapshot != snapshot:
                await self._store.save(user.uid, refusal.snapshot)
            raise refusal from None
        except LimitsUnavailable:
            raise machine.limits_unavailable(route) from None

    @contextlib.asynccontextmanager
    async def _code_try(self, user: User, route: str, kind: str, issue: str, snapshot: Snapshot) -> AsyncIterator[None]:
        """Count one try at a code before the upstream is asked, and give it back unless the code turned out wrong
        or dead (a dead code, the upstream's "too many attempts" included, is no licence for free tries)."""
        await self._limited(self._limits.code_attempt(user.uid, kind, issue), user, route, snapshot)
        try:
            yield
        except Refusal as exc:
            if exc.code not in machine.CODE_REFUSED:
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
                await self._store.save(user.uid, machine.unsettled(snapshot, operation))
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self._store.save(user.uid, machine.unsettled(snapshot, operation)))
            raise

    async def _reconcile(self, user: User, snapshot: Snapshot) -> Snapshot:
        """Read what the upstream made of a create we could not see the end of; keep our own progress notes."""
        log.info("reconciling", operation=snapshot.unsettled)
        if snapshot.unsettled == "card" and snapshot.customer_id is not None:
            s = await self._read(msgspec.structs.replace(snapshot, unsettled=None), machine.CARDS)
        else:
            s = await self._complete(machine.reconciled(snapshot, await self._from_upstream(user)))
        await self._store.save(user.uid, s)
        return s


def _failure(route: str, exc: YativoError) -> Refusal:
    """Name the adapter's failure for the core, and log it once."""
    if isinstance(exc, UpstreamTimeout):
        log.warning("upstream_timeout", reason=exc.reason)
        return machine.upstream_failure(route, machine.TIMEOUT, exc.retry_after)
    if isinstance(exc, UpstreamUnavailable):
        log.warning("upstream_unavailable", reason=exc.reason, upstream_status=exc.status)
        return machine.upstream_failure(route, machine.UNAVAILABLE, exc.retry_after)
    if isinstance(exc, UpstreamAuthFailed):
        log.error("upstream_credentials_refused")
        return machine.upstream_failure(route, machine.CREDENTIALS_REFUSED)
    if isinstance(exc, UpstreamRejected):
        # A refusal no transition has a meaning for, outside a step's own call (e.g. on a read).
        log.error("upstream_unexpected_rejection", upstream_status=exc.status, upstream_code=exc.code)
        return machine.unexpected_rejection()
    log.error("upstream_bad_response", reason=getattr(exc, "reason", ""), upstream_status=getattr(exc, "status", None))
    return machine.upstream_failure(route, machine.BAD_RESPONSE)


def _snapshot_of(customer: Customer) -> Snapshot:
    card = _card_view(customer.cards[0]) if customer.cards else None
    return machine.from_customer(
        customer.yativo_card_id, customer.flow_status, customer.kyc_status, customer.safe_deployed, customer.email, card
    )


def _card_view(card: Card) -> Any:
    return machine.card_view(card.status, card.status_name, card.last4)


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
