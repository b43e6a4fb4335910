"""`fulfillment-gateway sandbox shipstation`: the sandbox from the console script."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp

from connectors.shipstation.client import basic_auth
from tests.processes import CLI, free_port, run_cli


async def test_the_sandbox_help_names_its_credentials_and_control_routes() -> None:
    code, out = await run_cli("sandbox", "shipstation", "--help")
    assert code == 0
    for word in ("--port", "8081", "SHIPSTATION_API_KEY", "sandbox-secret", "/_sandbox/fail",
                 "/_sandbox/orders/{id}/split", "/_sandbox/requests"):
        assert word in out, word


async def test_the_sandbox_runs_from_the_console_script() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *CLI, "sandbox", "shipstation", "--port", str(port),
        env={**os.environ, "SHIPSTATION_API_KEY": "k1", "SHIPSTATION_API_SECRET": "s1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 20)  # type: ignore[union-attr]
        assert f"shipstation sandbox on http://127.0.0.1:{port}/" in line.decode()
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/shipments"
            async with session.get(url, headers={"Authorization": basic_auth("k1", "s1")}
                                   ) as resp:
                assert resp.status == 200
            async with session.get(url, headers={
                    "Authorization": basic_auth("sandbox-key", "sandbox-secret")}) as resp:
                assert resp.status == 401  # the variables' credentials, not the defaults
        code, out = await run_cli("sandbox", "shipstation", "--port", str(port))
        assert code == 1 and out.strip() == (
            f"error: --port: 127.0.0.1:{port} is in use by another process; stop it or"
            " choose another port")
    finally:
        process.terminate()
        assert await process.wait() == 0
