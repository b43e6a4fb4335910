"""Event deliveries to internal subscribers, signed the Standard Webhooks way.

Each delivery carries webhook-id (the event's id, the same on every retry, so a subscriber
can drop repeats), webhook-timestamp (this attempt) and webhook-signature, made by the
`standardwebhooks` library with the subscriber's `whsec_...` secret.
"""

from __future__ import annotations

import base64
import hmac
import time
from typing import Any

from standardwebhooks import Webhook
from yarl import URL

from gateway.config import Config, SubscriberConfig
from gateway.delivery import DeliveryClient
from gateway.errors import ConfigError, PartnerUnavailable, Undeliverable, for_status
from gateway.names import event_id_of
from storage import OutboxMessage

MAX_SECRETS = 2  # the one in use and the one replacing it


class _Signer(Webhook):
    """The library's signer (its secret parsing, its scheme), signing the body as bytes in
    one `hmac.digest` call: `Webhook.sign` decodes the body, encodes it again and builds an
    `hmac.HMAC` object, 40 % of its 6 us. tests/test_subscribers.py verifies what this signs
    with the library's own `verify`."""

    def sign_body(self, msg_id: str, timestamp: int, body: bytes) -> str:
        signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
        return "v1," + base64.b64encode(hmac.digest(self._whsecret, signed, "sha256")).decode()


class Subscribers:
    def __init__(self, config: Config, user_agent: str) -> None:
        self.client = DeliveryClient(config.outbox.request_timeout_seconds, user_agent)
        self._endpoints: dict[str, tuple[SubscriberConfig, URL, list[_Signer]]] = {}
        self._shown: dict[str, str] = {}
        for sub in config.subscribers:
            # Several secrets, space- or comma-separated, while one is rotated: every
            # delivery carries a signature by each, so the subscriber may verify with either.
            raw = config.secret(sub.secret_env).replace(",", " ").split()
            try:
                signers = [_Signer(secret) for secret in raw]
            except Exception:  # noqa: BLE001 - the library raises several kinds
                raise ConfigError(f"{sub.key}.secret_env: {sub.secret_env} holds something"
                                  " that is not a Standard Webhooks secret (whsec_ + base64;"
                                  " two, space-separated, during a rotation)") from None
            if not 1 <= len(signers) <= MAX_SECRETS:
                raise ConfigError(f"{sub.key}.secret_env: {sub.secret_env} must hold one"
                                  f" secret, or up to {MAX_SECRETS} during a rotation")
            self._endpoints[sub.name] = (sub, URL(sub.url), signers)
            # What errors (stored, logged, shown in the API) call it: no query, no userinfo.
            self._shown[sub.name] = str(URL(sub.url).with_user(None).with_query(None))

    async def deliver(self, name: str, message: OutboxMessage) -> dict[str, Any]:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise Undeliverable(f"subscriber {name} is no longer configured")
        _, url, signers = endpoint
        where = self._shown[name]
        body, event_id, now = message.payload_json, event_id_of(message.key), int(time.time())
        headers = {"Content-Type": "application/json", "webhook-id": event_id,
                   "webhook-timestamp": str(now),
                   "webhook-signature": " ".join(signer.sign_body(event_id, now, body)
                                                 for signer in signers)}
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
