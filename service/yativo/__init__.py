"""The Yativo upstream: typed client, answer models and domain errors."""

from service.yativo.client import YativoClient, parse_retry_after
from service.yativo.errors import (
    ErrorData,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    YativoError,
)
from service.yativo.models import (
    Card,
    CardList,
    Customer,
    FlowStep,
    KycLink,
    KycStatus,
    Onboarded,
    PhoneRequested,
    PhoneVerified,
    SofAnswer,
    SofQuestion,
    SofQuestions,
    SofSubmitted,
    VirtualCard,
)

__all__ = [
    "Card",
    "CardList",
    "Customer",
    "ErrorData",
    "FlowStep",
    "KycLink",
    "KycStatus",
    "Onboarded",
    "PhoneRequested",
    "PhoneVerified",
    "SofAnswer",
    "SofQuestion",
    "SofQuestions",
    "SofSubmitted",
    "UpstreamAuthFailed",
    "UpstreamBadResponse",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "VirtualCard",
    "YativoClient",
    "YativoError",
    "parse_retry_after",
]
