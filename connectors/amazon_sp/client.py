"""The Selling Partner API client for FBA inbound (../shared/partners/amazon.md).

- **Token.** Login with Amazon's refresh-token grant gives an access token for an hour; it
  is cached until `refresh_margin_seconds` before it expires and refreshed once for every
  caller waiting on it. An expired or revoked token is answered 403 `Unauthorized` (not 401):
  the token is dropped and the call made once more with a fresh one. No AWS signature.
- **Throttling.** Amazon limits each operation on its own (a token bucket: rate and burst),
  so each has its own budget, shared by every replica: a slow operation never holds up the
  others. A lower `x-amzn-RateLimit-Limit` than configured is honoured; a 429
  `QuotaExceeded` (which carries no rate header) is waited out, longer with each in a row.
- **Paging traps.** With a next token, only the query type, the token and the marketplace
  are sent (repeating the filters returns page one again); paging stops on an empty page, a
  repeated token or a repeated first shipment. The items of a shipment stop at 200 with a
  token that call will not take: the rest comes through getShipmentItems with NEXT_TOKEN.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gateway import logs
from gateway.errors import PartnerRateLimited, PartnerRejected, PartnerUnavailable, for_status
from gateway.ratelimit import RateBudget

log = logs.get("connectors.amazon_sp")
SHIPMENTS, ITEMS_BY_SHIPMENT, ITEMS = "getShipments", "getShipmentItemsByShipmentId", \
    "getShipmentItems"
ITEMS_CUT = 200  # getShipmentItemsByShipmentId's most items in one answer
MAX_THROTTLE_WAIT = 10.0


@dataclass
class Token:
    value: str
    expires_at: float  # monotonic


class TokenCache:
    """One access token at a time, refreshed before it expires, once for all callers."""

    def __init__(self, session: aiohttp.ClientSession, url: str, client_id: str,
                 client_secret: str, refresh_token: str, margin_seconds: float,
                 timeout: aiohttp.ClientTimeout) -> None:
        self.session, self.url = session, url
        self._form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                      "client_id": client_id, "client_secret": client_secret}
        self.margin = margin_seconds
        self.timeout = timeout
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def get(self) -> str:
        token = self._token
        if token is not None and time.monotonic() < token.expires_at - self.margin:
            return token.value
        async with self._lock:  # one refresh; the others wait for it and use its token
            token = self._token
            if token is None or time.monotonic() >= token.expires_at - self.margin:
                token = self._token = await self._refresh()
            return token.value

    def drop(self, value: str) -> None:
        """Amazon refused this token: the next call refreshes (unless one already did)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _refresh(self) -> Token:
        try:
            async with self.session.post(self.url, data=self._form, timeout=self.timeout) as resp:
                body, status = await resp.read(), resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PartnerUnavailable(f"Login with Amazon: {type(exc).__name__}: {exc}") from exc
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = {}
        if status != 200 or not answer.get("access_token"):
            # the LWA error names the problem (invalid_grant, invalid_client), never a secret
            message = f"Login with Amazon: HTTP {status}: {answer.get('error', '')}" \
                      f" {answer.get('error_description', '')}".rstrip()
            raise (PartnerRejected(message, status) if status in (400, 401)
                   else PartnerUnavailable(message))
        self.refreshes += 1
        log.info("amazon.token_refreshed", expires_in=answer.get("expires_in"))
        return Token(str(answer["access_token"]),
                     time.monotonic() + float(answer.get("expires_in") or 3600))


def errors_of(body: Any) -> str:
    found = body.get("errors") if isinstance(body, dict) else None
    if isinstance(found, list) and found:
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                         + (f" ({e['details']})" if e.get("details") else "")
                         for e in found if isinstance(e, dict))[:300]
    return str(body)[:300]


class SpClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, tokens: TokenCache,
                 budgets: Mapping[str, RateBudget], *, timeout_seconds: float,
                 max_rate_waits: int, on_response: Callable[[int], None]) -> None:
        self.session, self.base_url = session, base_url.rstrip("/")
        self.tokens, self.budgets = tokens, budgets
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_rate_waits = max_rate_waits
        self.on_response = on_response
        self.observed_limits: dict[str, float] = {}  # x-amzn-RateLimit-Limit per operation

    async def get(self, operation: str, path: str, params: Mapping[str, str]) -> Any:
        """One operation's call; its `payload`. 403 Unauthorized: one more try with a fresh
        token; 429: waited out, up to `max_rate_waits` times."""
        budget = self.budgets[operation]
        retried_token = False
        waits = 0
        while True:
            await budget.acquire(background=True)
            token = await self.tokens.get()
            try:
                async with self.session.get(self.base_url + path, params=dict(params), headers={
                        "x-amz-access-token": token, "Accept": "application/json"},
                        timeout=self.timeout) as resp:
                    raw, status, headers = await resp.read(), resp.status, resp.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.on_response(0)
                raise PartnerUnavailable(f"{operation}: {type(exc).__name__}: {exc}") from exc
            self.on_response(status)
            try:
                body = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                body = {"errors": [{"code": "NotJson", "message": raw[:200].decode(
                    errors="replace")}]}
            self._observe(operation, budget, headers)
            if status == 403 and "Unauthorized" in errors_of(body) and not retried_token:
                self.tokens.drop(token)
                retried_token = True
                continue
            if status == 429:
                waits += 1
                if waits > self.max_rate_waits:
                    raise PartnerRateLimited(f"{operation}: still throttled after"
                                             f" {self.max_rate_waits} waits", retry_after=2.0)
                # a 429 says nothing of when: a call's worth at the stated (else configured)
                # rate, doubled with each 429 in a row, at most MAX_THROTTLE_WAIT
                rate = self.observed_limits.get(operation) or (
                    budget.per_window / budget.window_seconds)
                wait = min(MAX_THROTTLE_WAIT, 2 ** (waits - 1) / rate)
                log.info("amazon.throttled", operation=operation, wait_seconds=wait)
                budget.limited(wait)
                continue
            if status >= 300:
                raise for_status(status, f"{operation}: HTTP {status}: {errors_of(body)}")
            return body.get("payload", body) if isinstance(body, dict) else body

    def _observe(self, operation: str, budget: RateBudget, headers: Mapping[str, str]) -> None:
        """A lower rate than configured, as Amazon states it, spaces this operation's calls."""
        try:
            limit = float(headers["x-amzn-RateLimit-Limit"])
        except (KeyError, ValueError):
            return
        self.observed_limits[operation] = limit
        if limit > 0 and limit < budget.per_window / budget.window_seconds:
            budget.pause(1 / limit)

    async def shipments(self, marketplace: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every page of getShipments for this query (DATE_RANGE or SHIPMENT)."""
        found: list[dict[str, Any]] = []
        params = {"MarketplaceId": marketplace, **query}
        tokens_seen: set[str] = set()
        first_ids: set[str] = set()
        while True:
            payload = await self.get(SHIPMENTS, "/fba/inbound/v0/shipments", params) or {}
            page = [s for s in payload.get("ShipmentData") or [] if isinstance(s, dict)]
            if not page:
                return found  # an empty page: the token on the last page leads nowhere
            first = str(page[0].get("ShipmentId"))
            if first in first_ids:
                log.warning("amazon.page_repeated", operation=SHIPMENTS, shipment_id=first)
                return found
            first_ids.add(first)
            found.extend(page)
            token = payload.get("NextToken")
            if not token or token in tokens_seen:
                return found
            tokens_seen.add(token)
            # only these three with a next token: the filters again would restart at page 1
            params = {"QueryType": "NEXT_TOKEN", "NextToken": token,
                      "MarketplaceId": marketplace}

    async def items(self, marketplace: str, shipment_id: str) -> list[dict[str, Any]]:
        """A shipment's items: getShipmentItemsByShipmentId, and past its 200 the rest by
        getShipmentItems with NEXT_TOKEN (the first call's token is not taken by itself)."""
        payload = await self.get(ITEMS_BY_SHIPMENT,
                                 f"/fba/inbound/v0/shipments/{shipment_id}/items", {}) or {}
        found = [i for i in payload.get("ItemData") or [] if isinstance(i, dict)]
        token = payload.get("NextToken")
        seen: set[str] = set()
        while token and token not in seen and len(found) >= ITEMS_CUT:
            seen.add(token)
            payload = await self.get(ITEMS, "/fba/inbound/v0/shipmentItems", {
                "QueryType": "NEXT_TOKEN", "NextToken": token, "MarketplaceId": marketplace
            }) or {}
            page = [i for i in payload.get("ItemData") or [] if isinstance(i, dict)
                    and str(i.get("ShipmentId", shipment_id)) == shipment_id]
            if not page:
                break
            found.extend(page)
            token = payload.get("NextToken")
        return found
