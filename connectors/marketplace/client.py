"""HTTP to a store platform: its auth headers, the connector's shared request budget, the
platform's 429 waited out (as long as its headers say), failures classified, and every request
counted against the feed run that made it (the requests-per-cycle figure)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gateway import logs
from gateway.errors import PartnerRateLimited, PartnerUnavailable, for_status
from gateway.ratelimit import RateBudget

log = logs.get("connectors.marketplace")
DEFAULT_WAIT_SECONDS = 2.0
# The feed run a request is made for: requests are counted per run.
_counting: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "store_requests", default=None)


class RequestCount:
    """`with RequestCount() as count:` ... `count.n`: the requests made inside, by this task
    and what it awaits (not by other tasks running meanwhile)."""

    def __enter__(self) -> RequestCount:
        self._cell = [0]
        self._token = _counting.set(self._cell)
        return self

    def __exit__(self, *exc: Any) -> None:
        _counting.reset(self._token)

    @property
    def n(self) -> int:
        return self._cell[0]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or None for an empty body


# (status, headers) -> seconds the platform asks to wait, None when it says nothing
RetryAfter = Callable[[int, Mapping[str, str]], float | None]
Observe = Callable[[Mapping[str, str]], None]
Message = Callable[[Any], str]


def retry_after_header(status: int, headers: Mapping[str, str]) -> float | None:
    """The standard Retry-After (seconds), where a platform (or its host) sends one."""
    try:
        return float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "title", "detail", "errors", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300] if body is not None else ""


class StoreClient:
    def __init__(self, platform: str, connector: str, session: aiohttp.ClientSession,
                 base_url: str, headers: Mapping[str, str], budget: RateBudget, *,
                 timeout_seconds: float, max_rate_waits: int, retry_after: RetryAfter,
                 observe: Observe = lambda headers: None, message: Message = _message,
                 on_response: Callable[[int], None] = lambda status: None) -> None:
        self.platform, self.connector = platform, connector
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.budget = budget
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_rate_waits = max_rate_waits
        self.retry_after, self.observe, self.message = retry_after, observe, message
        self.on_response = on_response

    async def call(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                   body: Any = None, *, background: bool = False,
                   accept: tuple[int, ...] = ()) -> Answer:
        """One call; a 429 waited out up to `max_rate_waits` times. A status in `accept`
        (a 404 the caller handles, say) is answered, not raised."""
        url = self.base_url + path
        data = orjson.dumps(body) if body is not None else None
        headers = {**self.headers, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        what = f"{method} {path}"
        wait = DEFAULT_WAIT_SECONDS
        for _ in range(self.max_rate_waits + 1):
            await self.budget.acquire(background=background)
            cell = _counting.get()
            if cell is not None:
                cell[0] += 1
            try:
                async with self.session.request(
                        method, url, params={k: str(v) for k, v in (params or {}).items()},
                        data=data, headers=headers, timeout=self.timeout,
                        allow_redirects=False) as resp:
                    raw, status, got = await resp.read(), resp.status, resp.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.on_response(0)
                log.warning("store.unreachable", platform=self.platform,
                            connector=self.connector, call=what, error=type(exc).__name__)
                raise PartnerUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
            self.on_response(status)
            self.observe(got)
            try:
                parsed = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = raw[:300].decode(errors="replace")
            if status == 429:
                wait = self.retry_after(status, got) or DEFAULT_WAIT_SECONDS
                log.info("store.rate_limited", platform=self.platform, connector=self.connector,
                         call=what, wait_seconds=wait)
                self.budget.limited(wait)
                continue
            if status in accept or status < 300:
                if isinstance(parsed, str):
                    raise PartnerUnavailable(f"{what}: HTTP {status}: the answer is not JSON")
                return Answer(status, got, parsed)
            text = f"{what}: HTTP {status}: {self.message(parsed)}"
            log.warning("store.error", platform=self.platform, connector=self.connector,
                        call=what, status=status, message=self.message(parsed))
            raise for_status(status, text)
        raise PartnerRateLimited(f"{what}: still rate limited after {self.max_rate_waits}"
                                 " waits", retry_after=wait)
