"""One circuit per upstream operation: which operations there are, how each judges its own failures, which are open.

An outage of one Yativo endpoint (say only KYC status, or only onboard) must not refuse the others, and the
successes of the others must not hide it: so each operation the client makes has its own breaker, fed only by
its own calls. The token fetch has one too, so a failing token endpoint opens `token`, never the operations
that merely needed a token.

| circuit         | client method                      | upstream call                                   |
|-----------------|------------------------------------|-------------------------------------------------|
| `token`         | (the access token, cached)         | POST /auth/token                                |
| `lookup`        | lookup_customer                    | GET /card-issuer/lookup-customer                |
| `customer`      | get_customer (account set-up)      | GET /card-issuer/customers/{id}                 |
| `onboard`       | onboard                            | POST /yativo-card/customers/onboard             |
| `email_otp`     | verify_otp                         | POST .../{id}/verify-otp                        |
| `kyc_link`      | kyc_link                           | GET .../{id}/kyc-link                           |
| `kyc_status`    | kyc_status                         | GET .../{id}/kyc-status                         |
| `sof_questions` | source_of_funds_questions          | GET .../{id}/source-of-funds                    |
| `sof_answers`   | submit_source_of_funds             | POST .../{id}/source-of-funds                   |
| `phone`         | request_phone_verification         | POST .../{id}/phone/request-verification        |
| `sms_otp`       | verify_phone                       | POST .../{id}/phone/verify                      |
| `card`          | create_virtual_card                | POST .../{id}/cards/virtual                     |
| `card_list`     | list_cards (the card once created) | GET .../{id}/cards                              |

`customer` and `card_list` are reads of their own endpoints, so they get circuits of their own rather than
sharing one with a step they happen to follow.

What counts (service.yativo.client): 5xx, 429, refused or dropped connections, timeouts and answers we cannot
read are failures; a 4xx business answer (a wrong code, an unknown customer) is a success, because the operation
worked and the refusal was the user's; our own credentials being refused and cancelled calls count neither way.

When each opens: 5 failures in a row, or half the calls of the last 60 s once there were at least 10 (a flaky
endpoint that fails every other call never makes a run of 5). It refuses for 2 s, then lets one probe through;
each failed probe doubles the wait, up to 30 s.

Per process: each replica keeps its own circuits, so with N replicas an outage costs up to N times the calls
that open one circuit, and each replica probes on its own; a replica that cannot reach Yativo opens its circuits
without the others following. The state is small and rebuilt within seconds, so nothing is shared through Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from service.ops import metrics
from service.ops.breaker import CircuitBreaker, State

TOKEN = "token"
LOOKUP = "lookup"
CUSTOMER = "customer"
ONBOARD = "onboard"
EMAIL_OTP = "email_otp"
KYC_LINK = "kyc_link"
KYC_STATUS = "kyc_status"
SOF_QUESTIONS = "sof_questions"
SOF_ANSWERS = "sof_answers"
PHONE = "phone"
SMS_OTP = "sms_otp"
CARD = "card"
CARD_LIST = "card_list"
RESET = "reset"  # starting over with another email before the first is verified

OPERATIONS = (
    TOKEN,
    LOOKUP,
    CUSTOMER,
    ONBOARD,
    EMAIL_OTP,
    KYC_LINK,
    KYC_STATUS,
    SOF_QUESTIONS,
    SOF_ANSWERS,
    PHONE,
    SMS_OTP,
    CARD,
    CARD_LIST,
    RESET,
)

CONSECUTIVE_FAILURES = 5
FAILURE_RATE = 0.5
MINIMUM_CALLS = 10
WINDOW_SECONDS = 60.0
COOLDOWN_SECONDS = 2.0
MAX_COOLDOWN_SECONDS = 30.0


class Circuits:
    """The circuits of one client, one per operation, all created up front so every one is exported from the start."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        threshold: int = CONSECUTIVE_FAILURES,
        failure_rate: float | None = FAILURE_RATE,
        minimum_calls: int = MINIMUM_CALLS,
        window_seconds: float = WINDOW_SECONDS,
        cooldown: float = COOLDOWN_SECONDS,
        max_cooldown: float = MAX_COOLDOWN_SECONDS,
    ) -> None:
        self._breakers = {
            name: CircuitBreaker(
                name,
                threshold=threshold,
                failure_rate=failure_rate,
                minimum_calls=minimum_calls,
                window_seconds=window_seconds,
                cooldown=cooldown,
                max_cooldown=max_cooldown,
                clock=clock,
                on_change=metrics.breaker_changed,
                on_refusal=metrics.breaker_refused,
            )
            for name in OPERATIONS
        }

    def __getitem__(self, name: str) -> CircuitBreaker:
        return self._breakers[name]

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self._breakers.values())

    def not_closed(self) -> list[str]:
        """The circuits refusing calls now: open, or half-open with one probe let through."""
        return [b.name for b in self._breakers.values() if b.state is not State.CLOSED]
