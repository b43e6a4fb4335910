"""Event deliveries to internal subscribers, signed the Standard Webhooks way.

Each delivery carries webhook-id (the event's id, the same on every retry, so a subscriber
can drop repeats), webhook-timestamp (this attempt) and webhook-signature, made by the
`standardwebhooks` library with the subscriber's `whsec_...` secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks import Webhook
from yarl import URL

from gateway.config import Config, SubscriberConfig
from gateway.delivery import DeliveryClient
from gateway.errors import ConfigError, PartnerUnavailable, Undeliverable, for_status
from storage import OutboxMessage


class Subscribers:
    def __init__(self, config: Config, user_agent: str) -> None:
        self.client = DeliveryClient(config.outbox.request_timeout_seconds, user_agent)
        self._endpoints: dict[str, tuple[SubscriberConfig, URL, Webhook]] = {}
        self._shown: dict[str, str] = {}
        for sub in config.subscribers:
            try:
                signer = Webhook(config.secret(sub.secret_env))
            except Exception as exc:  # noqa: BLE001 - the library raises several kinds
                raise ConfigError(f"{sub.key}.secret_env: {sub.secret_env} is not a Standard"
                                  f" Webhooks secret (whsec_ + base64): {exc}") from None
            self._endpoints[sub.name] = (sub, URL(sub.url), signer)
            # What errors (stored, logged, shown in the API) call it: no query, no userinfo.
            self._shown[sub.name] = str(URL(sub.url).with_user(None).with_query(None))

    async def deliver(self, name: str, message: OutboxMessage) -> dict[str, Any]:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise Undeliverable(f"subscriber {name} is no longer configured")
        _, url, signer = endpoint
        where = self._shown[name]
        body = message.payload_json or orjson.dumps(message.payload)
        event_id = str(message.payload["id"])
        now = datetime.now(UTC)
        headers = {"Content-Type": "application/json", "webhook-id": event_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signer.sign(event_id, now, body.decode())}
        try:
            answer = await self.client.post(url, headers, body)
        except (TimeoutError, OSError) as exc:  # ConnectionError is an OSError
            raise PartnerUnavailable(f"POST {where}: {type(exc).__name__}: {exc}") from exc
        status = answer.status
        if 200 <= status < 300:
            return {"status": status}
        text = answer.body[:300].decode(errors="replace")
        retry_after = answer.retry_after.strip()
        raise for_status(status, f"POST {where}: HTTP {status} {text}".rstrip(),
                         float(retry_after) if retry_after.isdigit() else None)

    def close(self) -> None:
        self.client.close()
