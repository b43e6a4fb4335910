"""The NuOrder connector: so far its connection (OAuth 1.0a from four secrets, either
signing style) and its sandbox. Its feeds, records and operations come with issue 10."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import aiohttp
import orjson
from aiohttp import web

from connectors.nuorder.signing import RFC5849, STYLES, Credentials, authorization
from gateway.config import Config, ConnectorConfig
from gateway.connector import Connector, Option
from gateway.errors import PartnerUnavailable, for_status
from gateway.metrics import Metrics

SANDBOX_CREDENTIALS = Credentials("sandbox-consumer-key", "sandbox-consumer-secret",
                                  "sandbox-token", "sandbox-token-secret")
SANDBOX_ABOUT = f"""\
A NuOrder stand-in: OAuth 1.0a (HMAC-SHA1) checked for real, in both signing styles
(RFC 5849, and the older hex digest), against the secrets below; the one-time handshake
(GET /api/initiate, approval, GET /api/token); NuOrder's error bodies {{"code", "message"}}.

Credentials: $NUORDER_CONSUMER_KEY, $NUORDER_CONSUMER_SECRET, $NUORDER_TOKEN and
$NUORDER_TOKEN_SECRET, or {SANDBOX_CREDENTIALS.consumer_key} / {SANDBOX_CREDENTIALS.consumer_secret} /
{SANDBOX_CREDENTIALS.token} / {SANDBOX_CREDENTIALS.token_secret} when unset.

Control routes (no auth):
  POST /_sandbox/approve     approve the pending application: answers its verifier
  GET  /_sandbox/requests    the request log
"""


class NuOrderConnector(Connector):
    options: ClassVar[tuple[Option, ...]] = (
        Option("consumer_key_env", str, help="variable holding the consumer key"),
        Option("consumer_secret_env", str, help="variable holding the consumer secret"),
        Option("token_env", str, help="variable holding the token from the handshake"),
        Option("token_secret_env", str, help="variable holding the token secret"),
        Option("signature_style", str, RFC5849, choices=STYLES,
               help="rfc5849 (oauthlib, base64), or hex (older clients' style; UNCONFIRMED)"),
        Option("request_timeout_seconds", float, 30.0, minimum=0.1),
    )
    sandbox_port = 8082
    sandbox_about = SANDBOX_ABOUT

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        s = self.settings
        self.credentials = Credentials(
            app_config.secret(s["consumer_key_env"]), app_config.secret(s["consumer_secret_env"]),
            app_config.secret(s["token_env"]), app_config.secret(s["token_secret_env"]))
        self.style = s["signature_style"]
        self.session = session
        self.base_url = config.base_url
        self.timeout = aiohttp.ClientTimeout(total=s["request_timeout_seconds"])

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One signed call; NuOrder's error (status and message, never the signature) raised
        as the error that says whether to retry."""
        url = self.base_url + path
        headers = {"Authorization": authorization(method, url, self.credentials, self.style),
                   "Content-Type": "application/json"}
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self.session.request(method, url, data=data, headers=headers,
                                            timeout=self.timeout) as resp:
                payload, status = await resp.read(), resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PartnerUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if status >= 300:
            try:
                message = orjson.loads(payload).get("message", "")
            except (orjson.JSONDecodeError, AttributeError):
                message = payload[:300].decode(errors="replace")
            raise for_status(status, f"{method} {path}: HTTP {status}: {message}")
        return orjson.loads(payload) if payload else None

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.nuorder.sandbox import create_app

        s = config.settings
        return create_app(Credentials(
            app_config.secret(s["consumer_key_env"]), app_config.secret(s["consumer_secret_env"]),
            app_config.secret(s["token_env"]), app_config.secret(s["token_secret_env"])))

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.nuorder.sandbox import create_app

        d = SANDBOX_CREDENTIALS
        return create_app(Credentials(
            os.environ.get("NUORDER_CONSUMER_KEY", d.consumer_key),
            os.environ.get("NUORDER_CONSUMER_SECRET", d.consumer_secret),
            os.environ.get("NUORDER_TOKEN", d.token),
            os.environ.get("NUORDER_TOKEN_SECRET", d.token_secret)))
