"""Which upstream events change what a user sees: the webhook half of the decision."""

from __future__ import annotations

# Events after which the user's card looks different: the cached snapshot is dropped and the next read asks the
# upstream (dropped, not patched: late or reordered deliveries cannot regress it).
CARD_EVENTS = frozenset(
    {
        "card.created",
        "card.activated",
        "card.frozen",
        "card.unfrozen",
        "card.voided",
        "card.lost",
        "card.stolen",
        "card.cancelled",
        "card.deactivated",
    }
)


def changes_what_the_user_sees(event_type: str) -> bool:
    """Unknown and non-card types are acknowledged and ignored (at-least-once delivery, an open set of types)."""
    return event_type in CARD_EVENTS
