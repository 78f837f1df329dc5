"""The emulator's settings (its choices where the upstream docs leave room) and the prefix of its upstream routes."""

from __future__ import annotations

from typing import Literal

import msgspec

KycLinkShape = Literal["sumsub", "kyc_url", "both"]


class EmulatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How the emulator behaves where the upstream docs leave room (all times in seconds)."""

    # KYC approves itself this long after the first kyc-link fetch; None = only the control plane approves.
    kyc_auto_approve_seconds: float | None = 3.0
    token_ttl_seconds: int = 3600
    otp_ttl_seconds: int = 600
    # Onboarding again while a code is pending sends a new one once the last is this old (or expired or spent).
    otp_resend_seconds: int = 60
    # The docs show two kyc-link bodies (live page vs docs repo); "both" returns the union.
    kyc_link_shape: KycLinkShape = "sumsub"
    # After KYC approval the customer's wallet ("safe") is still being deployed for this long.
    safe_deploy_seconds: float = 0.0
    issuer_email: str = "issuer@emulator.yativo.test"
    own_card_email: str = "own-card@emulator.yativo.test"


# Upstream routes are served under this prefix; fault globs and the call log use the path after it.
UPSTREAM_PREFIX = "/api/v1"
