"""Puts users into the states a scenario needs by driving the real API, the way a frontend would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from service.http.auth import issue_dev_token

API = "/v1/card-onboarding"
PHONE = "+14155552671"


class Users:
    """Tokens of users in one state, handed out in rotation so consecutive uses of a user are far apart."""

    def __init__(self, subs: Sequence[str], secret: str | None, path: Path) -> None:
        """`secret` None: the values are sent as they are (the floors take a customer id as the bearer)."""
        self.tokens = [issue_dev_token(secret, sub) for sub in subs] if secret else list(subs)
        self.path = path
        path.write_text("\n".join(self.tokens) + "\n")
        self.cursor = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def advance(self, used: int) -> int:
        """The offset to start the next run at, after a run that used `used` tokens from the current one."""
        start = self.cursor
        self.cursor = (self.cursor + used) % len(self.tokens)
        return start

    def take(self, count: int) -> list[dict[str, str]]:
        start = self.advance(count)
        return [{"Authorization": f"Bearer {self.tokens[(start + i) % len(self.tokens)]}"} for i in range(count)]


async def _gather_limited(jobs: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


class Driver:
    def __init__(self, session: aiohttp.ClientSession, service: str, emulator: str, secret: str) -> None:
        self._http = session
        self._service = service
        self._emulator = emulator
        self._secret = secret
        self._tokens: dict[str, str] = {}
        self._addresses: dict[str, int] = {}

    def _auth(self, sub: str) -> dict[str, str]:
        token = self._tokens.get(sub) or self._tokens.setdefault(sub, issue_dev_token(self._secret, sub))
        # Each user from an address of its own, as many users behind a load balancer (the service trusts loopback
        # as its proxy), so the per-address quotas on sending codes see many clients, not one.
        n = len(self._tokens) if sub not in self._addresses else self._addresses[sub]
        self._addresses.setdefault(sub, n)
        return {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}

    async def call(self, sub: str, method: str, path: str = "", body: Any = None) -> dict[str, Any]:
        for attempt in range(5):
            async with self._http.request(method, self._service + API + path, json=body, headers=self._auth(sub)) as r:
                answer = await r.json(content_type=None)
            if r.status == 200:
                return answer  # type: ignore[no-any-return]
            if r.status != 503 or attempt == 4:
                raise RuntimeError(f"{method} {API}{path} answered {r.status}: {answer}")
            # What a frontend does with retry_later (every call here is safe to repeat).
            await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    async def codes(self, kind: str) -> dict[str, str]:
        """The last code the emulator "sent" to each address."""
        async with self._http.get(self._emulator + "/_emulator/outbox") as r:
            messages = (await r.json())["messages"]
        return {m["to"]: m["code"] for m in messages if m["kind"] == kind}

    async def waiting_for_kyc(self, count: int, *, prefix: str, limit: int = 32) -> list[str]:
        """Users whose identity check is open and undecided: each GET re-reads the KYC status when due."""
        subs = [f"{prefix}-{i}" for i in range(count)]
        await _gather_limited(
            [lambda s=s: self.call(s, "POST", "", {"email": f"{s}@bench.example.com"}) for s in subs], limit
        )
        codes = await self.codes("email")
        answers = await _gather_limited(
            [
                lambda s=s: self.call(s, "POST", "/email-verification", {"code": codes[f"{s}@bench.example.com"]})
                for s in subs
            ],
            limit,
        )
        kinds = {a["nextAction"]["type"] for a in answers}
        if kinds != {"complete_kyc"}:
            raise RuntimeError(f"expected complete_kyc for every user, got {kinds}")
        return subs

    async def done(self, count: int, *, prefix: str) -> list[str]:
        """Users with a card: the state the app shows most often afterwards."""
        subs = [f"{prefix}-{i}" for i in range(count)]
        for sub in subs:
            email = f"{sub}@bench.example.com"
            await self.call(sub, "POST", "", {"email": email})
            await self.call(sub, "POST", "/email-verification", {"code": (await self.codes("email"))[email]})
            async with self._http.post(
                f"{self._emulator}/_emulator/customers/{email}/kyc", json={"status": "approved"}
            ) as r:
                r.raise_for_status()
            state = await self.call(sub, "GET")
            questions = state["nextAction"]["questions"]
            answers = [{"question": q["id"], "answer": q["options"][0]} for q in questions]
            await self.call(sub, "POST", "/source-of-funds", {"answers": answers})
            await self.call(sub, "POST", "/phone", {"phoneNumber": PHONE})
            await self.call(sub, "POST", "/phone-verification", {"code": (await self.codes("sms"))[PHONE]})
            state = await self.call(sub, "POST", "/card")
            if state["nextAction"]["type"] != "done":
                raise RuntimeError(f"expected done, got {state['nextAction']}")
        return subs
