"""Event deliveries to internal subscribers, signed the Standard Webhooks way.

Each delivery carries webhook-id (the event's id, the same on every retry, so a subscriber
can drop repeats), webhook-timestamp (this attempt) and webhook-signature, made by the
`standardwebhooks` library with the subscriber's `whsec_...` secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from standardwebhooks import Webhook

from gateway.config import Config, SubscriberConfig
from gateway.errors import ConfigError, PartnerRateLimited, PartnerRejected, PartnerUnavailable
from storage import OutboxMessage


class Subscribers:
    def __init__(self, config: Config, session: aiohttp.ClientSession | None = None) -> None:
        self.session = session  # set when the gateway starts
        self.timeout = aiohttp.ClientTimeout(total=config.outbox.request_timeout_seconds)
        self._endpoints: dict[str, tuple[SubscriberConfig, Webhook]] = {}
        for sub in config.subscribers:
            try:
                signer = Webhook(config.secret(sub.secret_env))
            except Exception as exc:  # noqa: BLE001 - the library raises several kinds
                raise ConfigError(f"{sub.key}.secret_env: {sub.secret_env} is not a Standard"
                                  f" Webhooks secret (whsec_ + base64): {exc}") from None
            self._endpoints[sub.name] = (sub, signer)

    async def deliver(self, name: str, message: OutboxMessage) -> dict[str, Any]:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise PartnerRejected(f"subscriber {name} is no longer configured", 404)
        sub, signer = endpoint
        body = orjson.dumps(message.payload).decode()
        event_id = str(message.payload["id"])
        now = datetime.now(UTC)
        headers = {"webhook-id": event_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signer.sign(event_id, now, body),
                   "Content-Type": "application/json"}
        if self.session is None:
            raise PartnerUnavailable("the gateway is not started")
        try:
            async with self.session.post(sub.url, data=body, headers=headers,
                                         timeout=self.timeout, allow_redirects=False) as resp:
                status = resp.status
                text = (await resp.text(errors="replace"))[:300] if status >= 300 else ""
                retry_after = resp.headers.get("Retry-After", "")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PartnerUnavailable(f"POST {sub.url}: {type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return {"status": status}
        if status == 429:
            raise PartnerRateLimited(f"POST {sub.url}: HTTP 429",
                                     float(retry_after) if retry_after.isdigit() else 0.0)
        if status >= 500 or status < 400:
            raise PartnerUnavailable(f"POST {sub.url}: HTTP {status} {text}".rstrip())
        raise PartnerRejected(f"POST {sub.url}: HTTP {status} {text}".rstrip(), status)
