"""Conditional GET of the caller's state: ETag, 304 without a body, and caching kept private to the user."""

from __future__ import annotations

from service.http.conditional import etag_of, matches
from tests.conftest import Harness
from tests.journey import EMAIL


async def test_the_state_carries_a_strong_etag_of_its_exact_bytes(bff: Harness) -> None:
    response = await bff.get()
    assert response.status_code == 200
    assert response.headers["etag"] == etag_of(response.content)
    assert response.headers["etag"].startswith('"') and response.headers["etag"].endswith('"')


async def test_if_none_match_with_the_current_etag_answers_304_with_no_body(bff: Harness) -> None:
    first = await bff.get()
    again = await bff.get(headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["x-request-id"]
    assert "content-type" not in again.headers


async def test_a_weak_a_listed_or_a_star_validator_matches_too(bff: Harness) -> None:
    etag = (await bff.get()).headers["etag"]
    for sent in (f"W/{etag}", f'"other", {etag}', "*"):
        assert (await bff.get(headers={"If-None-Match": sent})).status_code == 304, sent


async def test_a_changed_state_answers_200_with_a_new_etag(bff: Harness) -> None:
    before = await bff.get()
    assert (await bff.post("", {"email": EMAIL})).status_code == 200
    after = await bff.get(headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["nextAction"]["type"] == "verify_email_code"
    assert after.headers["etag"] != before.headers["etag"]


async def test_a_browser_may_keep_each_users_state_only_for_that_token(bff: Harness) -> None:
    ada = await bff.get("user-ada")
    bob = await bff.get("user-bob")
    for response in (ada, bob):
        assert response.headers.get_list("cache-control") == ["private, no-cache"]
        assert "authorization" in response.headers["vary"].lower()


async def test_the_304_stays_private_and_revalidated(bff: Harness) -> None:
    etag = (await bff.get()).headers["etag"]
    not_modified = await bff.get(headers={"If-None-Match": etag})
    assert not_modified.headers.get_list("cache-control") == ["private, no-cache"]
    assert not_modified.headers["x-content-type-options"] == "nosniff"


async def test_other_answers_stay_no_store_even_with_if_none_match(bff: Harness) -> None:
    etag = (await bff.get()).headers["etag"]
    unauthenticated = await bff.client.get("/v1/card-onboarding", headers={"If-None-Match": etag})
    started = await bff.post("", {"email": EMAIL}, headers={"If-None-Match": etag})
    for response in (unauthenticated, started):
        assert response.headers.get_list("cache-control") == ["no-store"]
        assert "etag" not in response.headers


def test_if_none_match_is_compared_weakly_and_nothing_else_matches() -> None:
    tag = etag_of(b"{}")
    assert matches(tag, tag) and matches(f"W/{tag}", tag) and matches(f' "a" ,{tag}', tag) and matches("*", tag)
    assert not matches(None, tag) and not matches("", tag) and not matches('"a", "b"', tag)
    assert not matches(tag.strip('"'), tag)
