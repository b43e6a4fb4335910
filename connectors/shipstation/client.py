"""The ShipStation v1 HTTP client: Basic auth, the shared 40/min budget, 429 waits, paging."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from gateway.errors import PartnerRateLimited, PartnerUnavailable, for_status
from gateway.ratelimit import RateBudget

DEFAULT_RESET_SECONDS = 60.0


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value for HTTP Basic (ShipStation: API key, API secret)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


class ShipStationClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, authorization: str,
                 budget: RateBudget, *, timeout_seconds: float = 30.0, max_rate_waits: int = 10,
                 on_response: Callable[[int], None] = lambda status: None,
                 background: bool = False) -> None:
        self.session = session
        self.base_url = URL(base_url)
        self._authorization = authorization
        self.budget = budget
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_rate_waits = max_rate_waits
        self.on_response = on_response
        self.background = background  # a poll's client: within the budget's background share

    def url(self, path: str) -> URL:
        return self.base_url.with_path(self.base_url.path.rstrip("/") + path)

    async def request(self, method: str, url: URL, params: Mapping[str, Any] | None = None,
                      json_body: Any = None) -> Any:
        """One call, waiting out 429s (Reset seconds) up to `max_rate_waits` times."""
        if params:
            url = url.update_query({k: str(v) for k, v in params.items()})
        body = orjson.dumps(json_body) if json_body is not None else None
        headers = {"Authorization": self._authorization}
        if body is not None:
            headers["Content-Type"] = "application/json"
        reset = DEFAULT_RESET_SECONDS
        for _ in range(self.max_rate_waits + 1):
            await self.budget.acquire(background=self.background)
            try:
                async with self.session.request(method, url, data=body, headers=headers,
                                                timeout=self.timeout,
                                                allow_redirects=False) as resp:
                    payload = await resp.read()
                    status = resp.status
                    reset_header = _int_header(resp.headers, "X-Rate-Limit-Reset")
                    self.budget.observe(_int_header(resp.headers, "X-Rate-Limit-Limit"),
                                        _int_header(resp.headers, "X-Rate-Limit-Remaining"),
                                        reset_header)
                    retry_after = _int_header(resp.headers, "Retry-After")
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.on_response(0)
                raise PartnerUnavailable(f"{method} {url.path}: {type(exc).__name__}: {exc}") \
                    from exc
            self.on_response(status)
            if status == 429:
                reset = float(retry_after or reset_header or DEFAULT_RESET_SECONDS)
                self.budget.limited(reset)
                continue
            if status >= 500:
                raise PartnerUnavailable(f"{method} {url.path}: HTTP {status}")
            if status >= 300:
                raise for_status(status, f"{method} {url.path}: HTTP {status}: "
                                 f"{_message(payload)}")
            if not payload:
                return None
            try:
                return orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise PartnerUnavailable(f"{method} {url.path}: answer is not JSON") from None
        raise PartnerRateLimited(f"{method} {url.path}: still rate limited after "
                                 f"{self.max_rate_waits} waits", retry_after=reset)

    async def get(self, url: URL, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request("GET", url, params)

    async def pages(self, url: URL, params: Mapping[str, Any], key: str) -> AsyncIterator[dict]:
        """Every non-null record of a `{key: [...], page, pages}` listing, page by page."""
        page = 1
        while True:
            answer = await self.get(url, {**params, "page": page})
            if not isinstance(answer, dict):
                raise PartnerUnavailable(f"GET {url.path}: expected an object with {key!r}")
            for record in answer.get(key) or []:
                if isinstance(record, dict):
                    yield record
            pages = answer.get("pages") or 1
            if page >= pages:
                return
            page += 1


def _message(payload: bytes) -> str:
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:300].decode(errors="replace")
    if isinstance(parsed, dict):
        for key in ("ExceptionMessage", "Message", "message"):
            if parsed.get(key):
                return str(parsed[key])[:300]
    return payload[:300].decode(errors="replace")
