"""The gateway run as its own process, as a user runs it: `serve` until ready, one-off CLI
commands, and a launcher that registers the scripted fake connector type first (as
tests/conftest.py does in-process), so the core's process tests need no real partner."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson

from tests.conftest import ENV, FAKE_TOKEN

ROOT = Path(__file__).resolve().parent.parent
CLI = ("-m", "gateway.cli")
FAKE_CLI = ("-c", "import sys, tests.fake_partner as fake; sys.modules['connectors.fake'] = fake;"
            " from gateway.cli import main; sys.exit(main(sys.argv[1:]))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(log: Path) -> str:
    return log.read_text()


async def start(config: Path, port: int, log: Path, program: tuple[str, ...] = CLI,
                env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """`serve` as a process of its own, once it is ready; `program` is what python runs."""
    with log.open("ab") as sink:  # noqa: ASYNC230 - opened once, handed to the child
        process = await asyncio.create_subprocess_exec(
            sys.executable, *program, "--config", str(config), "serve",
            cwd=ROOT, env={**os.environ, **(env or ENV)}, stdout=sink,
            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.returncode is None, read(log)
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    await process.wait()
    raise AssertionError(f"gateway did not become ready:\n{read(log)}")


async def run_cli(*args: str, env: dict[str, str] | None = None, seconds: float = 20,
                  program: tuple[str, ...] = CLI) -> tuple[int, str]:
    """A one-off command: its exit code and everything it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *program, *args, cwd=ROOT,
        env={**os.environ, **(env if env is not None else ENV)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=seconds)
    return process.returncode or 0, out.decode()


def write_fake_config(path: Path, db: Path, port: int = 0, *names: str,
                      **options: str | int | bool) -> None:
    """A config.toml with fake connectors only (run it with `program=FAKE_CLI`)."""
    extra = "".join(f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}\n"
                    .replace("'", '"') for key, value in options.items())
    connectors = "".join(f"""
[[connectors]]
name = "{name}"
type = "fake"
base_url = "http://127.0.0.1:9"
token_env = "FAKE_TOKEN"
{extra}""" for name in names or ("fake",))
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
[storage]
path = "{db}"
[retry]
attempts = 5
schedule_seconds = [0.2]
{connectors}""")


async def post_fake_shipment(session: aiohttp.ClientSession, api: str, n: int, fos: int,
                             connector: str = "wms") -> int:
    """Webhook n of a burst to a gateway on the fake type: shipment S<n>, one unit of
    fo-<n % fos>, delivery key d<n>. Its status, or 0 when the connection failed."""
    body = orjson.dumps({"kind": "shipment", "record": {
        "id": f"S{n}", "order_refs": [["fulfillment_order_id", f"fo-{n % fos}"]],
        "lines": [["A", 1]], "updated_at": "2026-12-01T10:00:00Z"}})
    try:
        async with session.post(f"{api}/webhooks/{connector}", data=body, headers={
                "X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": f"d{n}",
                "Content-Type": "application/json"}) as resp:
            return resp.status
    except aiohttp.ClientError:
        return 0


async def run_demo(tmp_path: Path, *args: str, within: float = 90) -> tuple[str, int]:
    """`fulfillment-gateway demo` as a newcomer runs it (the shipped config.toml, on free
    ports, no secrets set), until it says it is serving: what it printed, and its port."""
    config = tmp_path / "demo.toml"
    gateway_port = free_port()
    text = (ROOT / "config.toml").read_text().replace("port = 8080", f"port = {gateway_port}")
    ports = {gateway_port}
    for sandbox_port in ("8081", "8082", "8083", "8084", "8087"):
        port = free_port()
        while port in ports:  # a port just released may be handed out again
            port = free_port()
        ports.add(port)
        # whole numbers only: a port chosen before must not be rewritten by a later one
        text = re.sub(rf":{sandbox_port}(?!\d)", f":{port}", text)
    config.write_text(text.replace('path = "data/gateway.sqlite3"',
                                   f'path = "{tmp_path / "gateway.sqlite3"}"'))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHIPSTATION_", "GATEWAY_", "NUORDER_", "SHOPIFY_",
                                  "BIGCOMMERCE_", "AMAZON_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "--config", str(config), "demo", *args, cwd=ROOT,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + within
        while not any("Serving until Ctrl-C" in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = await asyncio.wait_for(process.stdout.readline(), timeout=within)
            assert line, "".join(lines)
            lines.append(line.decode())
    finally:
        process.terminate()
        await process.wait()
    return "".join(lines), gateway_port
