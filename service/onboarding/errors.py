"""The one domain exception of the onboarding flow: an expected refusal that still says what to do next."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.onboarding.actions import NextAction
    from service.onboarding.snapshot import Snapshot


class OnboardingError(Exception):
    """An expected refusal with a stable code; the answer still says what to do next."""

    def __init__(
        self,
        code: str,
        action: NextAction,
        snapshot: Snapshot | None = None,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.action = action
        self.snapshot = snapshot
        self.retry_after = retry_after
        self.headers = headers
