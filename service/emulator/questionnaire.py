"""The source-of-funds questionnaire: the questions offered after KYC approval and the answers' checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from service.emulator.clock import iso
from service.emulator.store import Refusal, Store, out_of_order

# The emulator's choices where the docs are silent:
# - Answers must answer every offered question exactly once with one of its options, else 400
#   INVALID_SOURCE_OF_FUNDS_ANSWERS. Reading the questions again once answered says status "completed"
#   instead of "questions_retrieved".

SOURCE_OF_FUNDS_QUESTIONS: Final = (
    {
        "question": "EMPLOYMENT_STATUS",
        "label": "What is your employment status?",
        "options": ["EMPLOYED", "SELF_EMPLOYED", "UNEMPLOYED", "STUDENT", "RETIRED"],
    },
    {
        "question": "SOURCE_OF_INCOME",
        "label": "What is your primary source of income?",
        "options": ["SALARY", "BUSINESS_INCOME", "INVESTMENT", "PENSION", "OTHER"],
    },
)


class Questionnaire:
    """GET and POST /source-of-funds of the customer namespace."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def questions(self, yativo_card_id: str) -> dict[str, Any]:
        customer, _ = self._store.customer(yativo_card_id)
        if customer.kyc_status != "approved" or not customer.email_verified:
            raise out_of_order(customer, "Source of funds is available after KYC approval")
        return {
            "yativo_card_id": customer.yativo_card_id,
            # Once answered the questionnaire reads "completed" (the emulator's choice; the docs show only the
            # first read), which is how a client that lost its own records can tell.
            "status": "completed" if customer.sof_submitted_at is not None else "questions_retrieved",
            "questions": [dict(question, options=list(question["options"])) for question in SOURCE_OF_FUNDS_QUESTIONS],
            "next_step": "Submit answers using POST /source-of-funds",
        }

    def submit(self, yativo_card_id: str, answers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        customer, now = self._store.customer(yativo_card_id)
        if customer.kyc_status != "approved" or not customer.email_verified:
            raise out_of_order(customer, "Source of funds is available after KYC approval")
        if customer.cards:
            raise out_of_order(customer, "The card is already issued")
        given = list(answers)
        problems = _answer_problems(given)
        if problems:
            raise Refusal(
                400, "INVALID_SOURCE_OF_FUNDS_ANSWERS", f"Invalid source of funds answers: {'; '.join(problems)}"
            )
        customer.sof_answers = [{"question": question, "answer": answer} for question, answer in given]
        customer.sof_submitted_at = now
        return {
            "yativo_card_id": customer.yativo_card_id,
            "status": "completed",
            "submitted_at": iso(now),
            "next_step": "Verify phone number using POST /phone/request-verification",
        }


def _answer_problems(answers: list[tuple[str, str]]) -> list[str]:
    offered = {question["question"]: question["options"] for question in SOURCE_OF_FUNDS_QUESTIONS}
    problems: list[str] = []
    seen: set[str] = set()
    for question, answer in answers:
        if question not in offered:
            problems.append(f"{question} is not an offered question")
        elif question in seen:
            problems.append(f"{question} is answered more than once")
        elif answer not in offered[question]:
            problems.append(f"{answer} is not an option of {question}")
        seen.add(question)
    problems.extend(f"{question} is not answered" for question in offered if question not in seen)
    return problems
