"""A KYC link reaches the frontend only if it is https on the KYC provider's hosts; anything else is a 502."""

from __future__ import annotations

import pytest

from service.onboarding.kyclink import link_allowed
from service.settings import DEFAULT_KYC_LINK_HOSTS, ConfigError, load_settings
from tests.conftest import Harness
from tests.journey import action, drive

GOOD = [
    "https://kyc.sumsub.com/msdk/v2?accessToken=_act-sbx-1",
    "https://kyc.yativo.com/verify?token=abc",
    "https://sumsub.com/x",
    "https://KYC.Sumsub.com/x",
    "https://kyc.sumsub.com:443/x",
]
BAD = {
    "plain http": "http://kyc.sumsub.com/msdk/v2?accessToken=x",
    "javascript scheme": "javascript:alert(document.cookie)//kyc.sumsub.com",
    "data scheme": "data:text/html,<script>alert(1)</script>",
    "other host": "https://evil.example.com/verify?token=x",
    "provider as a prefix": "https://kyc.sumsub.com.evil.com/x",
    "provider as a suffix without dot": "https://evilsumsub.com/x",
    "userinfo": "https://kyc.sumsub.com@evil.com/x",
    "backslash": "https://evil.com\\@kyc.sumsub.com/x",
    "other port": "https://kyc.sumsub.com:8443/x",
    "whitespace": "https://kyc.sumsub.com/x y",
    "control character": "https://kyc.sumsub.com/\x00x",
    "non-ascii host": "https://kyc.sumsüb.com/x",
    "relative": "/verify?token=x",
    "empty": "",
    "huge": "https://kyc.sumsub.com/" + "a" * 5000,
}


@pytest.mark.parametrize("url", GOOD)
def test_an_https_link_on_a_provider_host_is_allowed(url: str) -> None:
    assert link_allowed(url, DEFAULT_KYC_LINK_HOSTS)


@pytest.mark.parametrize("url", list(BAD.values()), ids=list(BAD))
def test_a_link_off_the_provider_or_not_https_is_refused(url: str) -> None:
    assert not link_allowed(url, DEFAULT_KYC_LINK_HOSTS)


def test_the_hosts_are_configurable_and_a_bad_list_names_the_variable() -> None:
    secret = "x" * 32
    settings = load_settings({"AUTH_JWT_SECRET": secret, "KYC_LINK_HOSTS": " Verify.Example.com , idv.example.org."})
    assert settings.kyc_link_hosts == ("verify.example.com", "idv.example.org")
    assert load_settings({"AUTH_JWT_SECRET": secret}).kyc_link_hosts == DEFAULT_KYC_LINK_HOSTS
    for bad in ("https://sumsub.com", "*.sumsub.com", "sumsub", "sum sub.com"):
        with pytest.raises(ConfigError, match="KYC_LINK_HOSTS"):
            load_settings({"AUTH_JWT_SECRET": secret, "KYC_LINK_HOSTS": bad})


def link_fault(**data: str) -> dict[str, object]:
    return {
        "path": "/yativo-card/customers/*/kyc-link",
        "status": 200,
        "body": {"success": True, "data": {"yativo_card_id": "ignored", "next_step": "kyc_status", **data}},
    }


@pytest.mark.parametrize(
    "url",
    [BAD["javascript scheme"], BAD["plain http"], BAD["provider as a prefix"], BAD["userinfo"]],
    ids=["javascript scheme", "plain http", "provider as a prefix", "userinfo"],
)
async def test_a_kyc_link_off_the_provider_never_reaches_the_frontend(bff: Harness, url: str) -> None:
    await drive(bff, "verify_email_code")
    await bff.fault(link_fault(sumsub_link=url))
    response = await bff.post("/email-verification", {"code": await bff.last_code("ada@example.com", "email")})
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "upstream_bad_response"
    assert action(response)["type"] == "retry_later"
    assert int(response.headers["retry-after"]) >= 1
    assert url not in response.text and "evil" not in response.text and "javascript" not in response.text
    again = await bff.get()  # the refused link was not cached either
    assert again.status_code == 200
    assert action(again)["type"] != "complete_kyc"
    assert url not in again.text


async def test_a_good_link_is_served_once_the_upstream_sends_one_again(bff: Harness) -> None:
    await drive(bff, "verify_email_code")
    spec = link_fault(kyc_url=BAD["other host"])
    await bff.fault({**spec, "times": 1})
    code = {"code": await bff.last_code("ada@example.com", "email")}
    refused = await bff.post("/email-verification", code)
    assert refused.status_code == 502
    # retry_later names the same call; the upstream already verified the code, so the retry learns where we are.
    retried = await bff.post("/email-verification", code)
    assert retried.status_code == 409
    assert action(retried)["type"] == "complete_kyc"
    recovered = await bff.get()
    assert recovered.status_code == 200, recovered.text
    assert action(recovered)["type"] == "complete_kyc"
    assert action(recovered)["url"].startswith("https://kyc.sumsub.com/")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kyc_url": "https://kyc.yativo.com/verify?token=t1"}, "https://kyc.yativo.com/verify?token=t1"),
        (
            {"sumsub_link": "https://kyc.sumsub.com/msdk/v2?accessToken=t2"},
            "https://kyc.sumsub.com/msdk/v2?accessToken=t2",
        ),
        (
            {"kyc_url": "https://evil.example.com/x", "sumsub_link": "https://kyc.sumsub.com/msdk/v2?accessToken=t3"},
            "https://kyc.sumsub.com/msdk/v2?accessToken=t3",
        ),
    ],
    ids=["kyc_url shape", "sumsub_link shape", "both, kyc_url bad"],
)
async def test_both_documented_link_shapes_are_served_and_a_bad_one_is_skipped(
    bff: Harness, data: dict[str, str], expected: str
) -> None:
    await drive(bff, "verify_email_code")
    await bff.fault(link_fault(**data))
    response = await bff.post("/email-verification", {"code": await bff.last_code("ada@example.com", "email")})
    assert response.status_code == 200, response.text
    assert action(response)["url"] == expected
    assert "evil" not in response.text


async def test_a_refused_link_is_logged_by_scheme_and_host_without_its_token(bff: Harness) -> None:
    from tests.leakguard import SINK

    await drive(bff, "verify_email_code")
    await bff.fault(link_fault(sumsub_link="https://evil.example.com/verify/path-token-77?accessToken=query-token-99"))
    before = len(SINK.lines)
    response = await bff.post("/email-verification", {"code": await bff.last_code("ada@example.com", "email")})
    assert response.status_code == 502
    written = "".join(SINK.lines[before:])
    assert "kyc_link_refused" in written and "evil.example.com" in written
    assert "query-token-99" not in written and "path-token-77" not in written
