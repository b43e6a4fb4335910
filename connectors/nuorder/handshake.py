"""`fulfillment-gateway nuorder handshake`: NuOrder's one-time token exchange, with a person.

1. `GET /api/initiate`, signed with the consumer key and secret only, `oauth_callback=oob` and
   the application's name: a temporary token;
2. the operator approves the pending application in NuOrder (Admin, API Management), which
   shows a verifier;
3. `GET /api/token`, signed with the temporary token and the verifier: the permanent token and
   token secret, printed for the operator to store as the secrets token_env and
   token_secret_env name. Nothing is written to a file.

The consumer key and secret come from the variables the config's NuOrder connector names
(its token variables need not be set yet), or NUORDER_CONSUMER_KEY / NUORDER_CONSUMER_SECRET.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from connectors.nuorder.signing import RFC5849, STYLES, Credentials, authorization
from gateway.errors import ConfigError, GatewayError

DEFAULTS = {"consumer_key_env": "NUORDER_CONSUMER_KEY",
            "consumer_secret_env": "NUORDER_CONSUMER_SECRET",
            "token_env": "NUORDER_TOKEN", "token_secret_env": "NUORDER_TOKEN_SECRET"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="action")
    handshake = sub.add_parser(
        "handshake", help="get the token and token secret (once, with a person)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from gateway.cli import subcommand_options

    subcommand_options(handshake)
    handshake.add_argument("--connector", help="the NuOrder connector's name in the config"
                                               " (default: the first of type nuorder)")
    handshake.add_argument("--base-url", help="NuOrder's address (default: the connector's"
                                              " base_url)")
    handshake.add_argument("--application-name", default="fulfillment-gateway",
                           help="what NuOrder's API Management lists (default:"
                                " fulfillment-gateway)")
    handshake.add_argument("--signature-style", choices=STYLES, default=None,
                           help="default: the connector's, else rfc5849")


def _connector_table(config: str, name: str | None) -> dict[str, Any]:
    path = Path(config)
    if not path.exists():
        return {}
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    tables = [t for t in doc.get("connectors", []) if isinstance(t, dict)
              and t.get("type") == "nuorder" and (name is None or t.get("name") == name)]
    if name is not None and not tables:
        raise ConfigError(f"{path}: no connector of type nuorder named {name!r}")
    return tables[0] if tables else {}


class Handshake:
    def __init__(self, base_url: str, consumer: Credentials, style: str,
                 session: aiohttp.ClientSession) -> None:
        self.base_url, self.consumer, self.style = base_url.rstrip("/"), consumer, style
        self.session = session

    async def _get(self, path: str, credentials: Credentials, **extra: str) -> dict[str, Any]:
        url, call = self.base_url + path, f"GET {path.partition('?')[0]}"
        header = authorization("GET", url, credentials, self.style, **extra)
        try:
            async with self.session.get(url, headers={"Authorization": header}) as resp:
                body, status = await resp.read(), resp.status
        except aiohttp.ClientError as exc:
            raise GatewayError(f"{call}: {type(exc).__name__}: {exc}") from None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = {"message": body[:200].decode(errors="replace")}
        if status != 200:
            raise GatewayError(f"{call}: HTTP {status}: {payload.get('message', '')}")
        return payload

    async def initiate(self, application_name: str) -> Credentials:
        query = urlencode({"application_name": application_name})
        answer = await self._get(f"/api/initiate?{query}", self.consumer, oauth_callback="oob")
        return Credentials(self.consumer.consumer_key, self.consumer.consumer_secret,
                           answer["oauth_token"], answer["oauth_token_secret"])

    async def exchange(self, temporary: Credentials, verifier: str) -> tuple[str, str]:
        answer = await self._get("/api/token", temporary, oauth_verifier=verifier)
        return answer["oauth_token"], answer["oauth_token_secret"]


def run(args: argparse.Namespace, ask: Callable[[str], str] = input) -> int:
    table = _connector_table(args.config, args.connector)
    names = {key: table.get(key, default) for key, default in DEFAULTS.items()}
    base_url = args.base_url or table.get("base_url")
    if not base_url:
        raise ConfigError("no base_url: give --base-url, or name a NuOrder connector in the"
                          " config")
    missing = [names[k] for k in ("consumer_key_env", "consumer_secret_env")
               if not os.environ.get(names[k])]
    if missing:
        raise ConfigError(f"environment variable(s) not set: {', '.join(missing)} (the"
                          " consumer key and secret from NuOrder's API Management)")
    consumer = Credentials(os.environ[names["consumer_key_env"]],
                           os.environ[names["consumer_secret_env"]])
    style = args.signature_style or table.get("signature_style", RFC5849)
    return asyncio.run(_run(base_url, consumer, style, args.application_name, names, ask))


async def _run(base_url: str, consumer: Credentials, style: str, application_name: str,
               names: dict[str, str], ask: Callable[[str], str]) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        handshake = Handshake(base_url, consumer, style, session)
        temporary = await handshake.initiate(application_name)
        print(f"1. NuOrder has application {application_name!r} waiting for approval.\n"
              "2. In NuOrder: Admin, API Management: approve it; NuOrder shows a verifier.",
              flush=True)
        verifier = (await asyncio.to_thread(ask, "3. The verifier: ")).strip()
        if not verifier:
            print("error: no verifier given; run the handshake again", file=sys.stderr)
            return 1
        token, token_secret = await handshake.exchange(temporary, verifier)
    print("\nDone. Store these two as secrets (they are shown once, and written nowhere):\n"
          f"  {names['token_env']}={token}\n"
          f"  {names['token_secret_env']}={token_secret}\n"
          f"The connector reads them from ${names['token_env']} and"
          f" ${names['token_secret_env']} (its token_env and token_secret_env).", flush=True)
    return 0
