"""`fulfillment-gateway nuorder handshake`, run as the operator runs it, against the sandbox:
it asks for the verifier NuOrder shows once the application is approved, prints the token and
token secret, and writes them nowhere."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.nuorder.signing import LEGACY_HEX, RFC5849
from tests.nuorder.conftest import GOOD, NuOrderSandbox, nuorder_toml
from tests.processes import ROOT, run_cli


@pytest.mark.parametrize("style", [RFC5849, LEGACY_HEX])
async def test_the_handshake_prints_the_token_and_writes_nothing(
        nuorder_sandbox: NuOrderSandbox, tmp_path: Path, style: str) -> None:
    config = tmp_path / "config.toml"
    nuorder_toml(config, nuorder_sandbox.url, style)
    before = set(os.listdir(tmp_path))
    # The token variables are not set yet: that is what the handshake is for.
    env = {**os.environ, "NU_KEY": GOOD.consumer_key, "NU_SECRET": GOOD.consumer_secret}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "nuorder", "handshake", "--config", str(config),
        "--application-name", "Our gateway", cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None and process.stdin is not None
    shown = b""
    while b"verifier: " not in shown:
        chunk = await asyncio.wait_for(process.stdout.read(200), timeout=20)
        assert chunk, shown.decode()
        shown += chunk
    assert b"'Our gateway'" in shown and b"API Management" in shown
    [initiate] = [r for r in nuorder_sandbox.state.requests if r["path"] == "/api/initiate"]
    assert initiate["status"] == 200 and initiate["query"] == {"application_name": "Our gateway"}

    approved = await nuorder_sandbox.control("/approve")  # the person, in NuOrder
    process.stdin.write(approved["oauth_verifier"].encode() + b"\n")
    await process.stdin.drain()
    rest, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    out = (shown + rest).decode()
    assert process.returncode == 0, out
    assert f"NU_TOKEN={GOOD.token}\n" in out and f"NU_TOKEN_SECRET={GOOD.token_secret}\n" in out
    assert set(os.listdir(tmp_path)) == before  # nothing written (no database, no file)


async def test_a_wrong_verifier_or_consumer_secret_is_one_clear_line(
        nuorder_sandbox: NuOrderSandbox, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    nuorder_toml(config, nuorder_sandbox.url)
    code, out = await run_cli("nuorder", "handshake", "--config", str(config),
                              env={"NU_KEY": GOOD.consumer_key, "NU_SECRET": "wrong"})
    assert code == 1 and out.strip() == (
        "error: GET /api/initiate: HTTP 401: Invalid OAuth header or signature")
    code, out = await run_cli("nuorder", "handshake", "--config", str(config), env={})
    assert code == 2 and "NU_KEY, NU_SECRET" in out


async def test_the_wrong_verifier_is_refused(nuorder_sandbox: NuOrderSandbox,
                                             tmp_path: Any) -> None:
    config = tmp_path / "config.toml"
    nuorder_toml(config, nuorder_sandbox.url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "nuorder", "handshake", "--config", str(config),
        cwd=ROOT, env={**os.environ, "NU_KEY": GOOD.consumer_key,
                       "NU_SECRET": GOOD.consumer_secret},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(b"not-the-verifier\n"), timeout=20)
    assert process.returncode == 1
    assert "GET /api/token: HTTP 401: Request token not approved" in out.decode()
