"""Three `serve` replicas on one PostgreSQL database against the ShipStation sandbox: their
pushes together never exceed the partner's limit in any window (counted at the sandbox, which
would answer 429), and the shipments feed runs once per interval however many replicas
schedule it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import API_TOKEN, Databases
from tests.processes import free_port, start
from tests.shipstation.conftest import SS_ENV, Sandbox

REPLICAS, FOS, LIMIT, WINDOW = 3, 24, 6, 1.0


def write_config(path: Path, port: int, sandbox_url: str, extra: str = "") -> None:
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
[storage]
backend = "postgresql"
dsn_env = "TEST_DATABASE_URL"
pool_size = 4
[retry]
attempts = 20
schedule_seconds = [0.2]
[[connectors]]
name = "shipstation"
type = "shipstation"
base_url = "{sandbox_url}"
api_key_env = "SS_KEY"
api_secret_env = "SS_SECRET"
webhook_token_env = "SS_HOOK"
rate_limit_per_minute = {LIMIT}
rate_limit_window_seconds = {WINDOW}
{extra}
[[channels]]
name = "web"
[channels.oms]
connector = "shipstation"
""")


async def test_three_replicas_together_keep_within_the_partners_rate_limit(
        pg_server: Any, sandbox: Sandbox, tmp_path: Path) -> None:
    await sandbox.control("/rate-limit", {"limit": LIMIT, "window_seconds": WINDOW, "used": 0})
    databases = Databases(pg_server)
    env = {**SS_ENV, "TEST_DATABASE_URL": await databases.dsn_for(tmp_path)}
    ports = [free_port() for _ in range(REPLICAS)]
    for n, port in enumerate(ports):
        write_config(tmp_path / f"r{n}.toml", port, sandbox.url)
    processes = list(await asyncio.gather(*(
        start(tmp_path / f"r{n}.toml", port, tmp_path / f"r{n}.log", env=env)
        for n, port in enumerate(ports))))
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(session.post(
                f"http://127.0.0.1:{ports[i % REPLICAS]}/api/v1/fulfillment-orders",
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                json={"channel": "web", "order_number": f"R{i}",
                      "lines": [{"sku": "A", "quantity": 1}]}) for i in range(FOS)))
        deadline = time.monotonic() + 40
        while len(sandbox.state.orders) < FOS:
            assert time.monotonic() < deadline, len(sandbox.state.orders)
            await asyncio.sleep(0.1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await process.wait()
        await databases.drop()
    calls = [r for r in sandbox.state.requests if r["path"] == "/orders/createorder"]
    assert len(calls) >= FOS and not [r for r in calls if r["status"] == 429]
    stamps = sorted(r["at"] for r in sandbox.state.requests)
    busiest = max(sum(1 for s in stamps if t <= s < t + WINDOW) for t in stamps)
    assert busiest <= LIMIT, f"{busiest} requests within {WINDOW} s from three replicas"


INTERVAL_SECONDS = 1.5


async def test_the_feed_runs_once_per_interval_across_replicas(
        pg_server: Any, sandbox: Sandbox, tmp_path: Path) -> None:
    databases = Databases(pg_server)
    env = {**SS_ENV, "TEST_DATABASE_URL": await databases.dsn_for(tmp_path)}
    ports = [free_port() for _ in range(REPLICAS)]
    for n, port in enumerate(ports):
        write_config(tmp_path / f"r{n}.toml", port, sandbox.url,
                     f"shipments_interval_minutes = {INTERVAL_SECONDS / 60}")
        (tmp_path / f"r{n}.toml").write_text((tmp_path / f"r{n}.toml").read_text()
                                             + "[polling]\nfirst_run_delay_seconds = 0.5\n")
    processes = list(await asyncio.gather(*(
        start(tmp_path / f"r{n}.toml", port, tmp_path / f"r{n}.log", env=env)
        for n, port in enumerate(ports))))
    try:
        await asyncio.sleep(6.0)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await process.wait()
        await databases.drop()
    runs = sorted(r["at"] for r in sandbox.state.requests  # one listing per feed run
                  if r["path"] == "/shipments" and "createDateStart" in r["query"]
                  and r["query"].get("page", "1") == "1")
    assert len(runs) >= 2, runs  # it does poll
    span = runs[-1] - runs[0]
    # Each replica schedules the feed every 1.5 s; a run started elsewhere within 90 % of
    # the interval is skipped. Three independent replicas would make about three times this.
    assert len(runs) <= span / (INTERVAL_SECONDS * 0.9) + 1, (len(runs), span)
