"""NuOrder's connection against its sandbox over loopback HTTP: requests signed in both
styles are taken, a wrong secret gets NuOrder's 401 body, the one-time handshake."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from connectors.nuorder.sandbox import create_app, state_of
from connectors.nuorder.signing import LEGACY_HEX, RFC5849, Credentials, authorization
from gateway import config as config_mod
from gateway.errors import PartnerRejected
from gateway.metrics import Metrics
from tests.conftest import ENV, base_doc
from tests.processes import run_cli

GOOD = Credentials("nu-key", "nu-secret", "nu-token", "nu-token-secret")
NU_ENV = {**ENV, "NU_KEY": GOOD.consumer_key, "NU_SECRET": GOOD.consumer_secret,
          "NU_TOKEN": GOOD.token, "NU_TOKEN_SECRET": GOOD.token_secret}


@pytest.fixture
async def sandbox(aiohttp_server: Any) -> Any:
    return await aiohttp_server(create_app(GOOD))


def connector(sandbox: Any, session: aiohttp.ClientSession, tmp_path: Any,
              env: dict[str, str] | None = None, **options: Any) -> Any:
    from connectors.nuorder import CONNECTOR

    doc = {**base_doc(tmp_path / "g.sqlite3"), "connectors": [{
        "name": "nuorder", "type": "nuorder", "base_url": str(sandbox.make_url("")).rstrip("/"),
        "consumer_key_env": "NU_KEY", "consumer_secret_env": "NU_SECRET",
        "token_env": "NU_TOKEN", "token_secret_env": "NU_TOKEN_SECRET", **options}]}
    cfg = config_mod.parse(doc, {**NU_ENV, **(env or {})})
    return CONNECTOR(cfg.connectors[0], cfg, session, Metrics())


@pytest.mark.parametrize("style", [RFC5849, LEGACY_HEX])
async def test_both_signing_styles_are_taken(sandbox: Any, tmp_path: Any, style: str) -> None:
    async with aiohttp.ClientSession() as session:
        nuorder = connector(sandbox, session, tmp_path, signature_style=style)
        assert await nuorder.request("GET", "/api/companies/codes/list") == []
    [logged] = state_of(sandbox.app).requests
    assert logged["status"] == 200


@pytest.mark.parametrize("style", [RFC5849, LEGACY_HEX])
async def test_a_wrong_secret_gets_nuorders_401(sandbox: Any, tmp_path: Any, style: str) -> None:
    async with aiohttp.ClientSession() as session:
        nuorder = connector(sandbox, session, tmp_path, env={"NU_TOKEN_SECRET": "not-it"},
                            signature_style=style)
        with pytest.raises(PartnerRejected) as raised:
            await nuorder.request("GET", "/api/companies/codes/list")
    assert raised.value.partner_status == 401
    assert "Invalid OAuth header or signature" in raised.value.message
    assert "not-it" not in raised.value.message


async def test_the_handshake_exchanges_a_verifier_for_the_token(sandbox: Any) -> None:
    """initiate (consumer only, oauth_callback=oob) -> a person approves -> token (temporary
    token and the verifier) -> the permanent token and secret."""
    base = str(sandbox.make_url("")).rstrip("/")
    consumer = Credentials(GOOD.consumer_key, GOOD.consumer_secret)
    async with aiohttp.ClientSession() as session:
        url = f"{base}/api/initiate"
        async with session.get(url, headers={"Authorization": authorization(
                "GET", url, consumer, oauth_callback="oob")}) as resp:
            temporary = await resp.json()
            assert resp.status == 200 and temporary["oauth_callback_confirmed"] is True
        url = f"{base}/api/token"
        pending = Credentials(GOOD.consumer_key, GOOD.consumer_secret,
                              temporary["oauth_token"], temporary["oauth_token_secret"])
        async with session.get(url, headers={"Authorization": authorization(
                "GET", url, pending, oauth_verifier="guess")}) as resp:
            assert resp.status == 401  # not approved yet
        async with session.post(f"{base}/_sandbox/approve") as resp:
            verifier = (await resp.json())["oauth_verifier"]
        async with session.get(url, headers={"Authorization": authorization(
                "GET", url, pending, oauth_verifier=verifier)}) as resp:
            assert resp.status == 200
            assert await resp.json() == {"oauth_token": GOOD.token,
                                         "oauth_token_secret": GOOD.token_secret}


async def test_the_sandbox_runs_from_the_console_script() -> None:
    code, out = await run_cli("sandbox", "nuorder", "--help")
    assert code == 0 and "/_sandbox/approve" in out and "NUORDER_CONSUMER_KEY" in out
