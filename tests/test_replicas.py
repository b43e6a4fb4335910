"""Three `serve` processes on one PostgreSQL database (the scripted fake connector type,
launched as tests/processes.py does): webhooks spread over all three, one replica killed
with SIGKILL in the middle of the burst. Every acknowledged webhook is processed exactly once
(what the dead one had claimed is taken over when its lease runs out), the same delivery
sent to two replicas at once is stored once, each FO becomes fulfilled once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from storage.postgres.backend import migrations
from tests.conftest import API_TOKEN, ENV, Databases
from tests.processes import FAKE_CLI, free_port, post_fake_shipment, read, start

FOS, PER_FO = 30, 40  # 1,200 webhooks of one unit each
REPLICAS = 3


def write_config(path: Path, port: int) -> None:
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
[storage]
backend = "postgresql"
dsn_env = "TEST_DATABASE_URL"
pool_size = 4
[worker]
lease_seconds = 2
[retry]
attempts = 5
schedule_seconds = [0.2]
[[connectors]]
name = "wms"
type = "fake"
base_url = "http://127.0.0.1:9"
token_env = "FAKE_TOKEN"
""")


async def test_three_replicas_one_killed_mid_burst_lose_nothing_and_double_nothing(
        pg_server: Any, tmp_path: Path) -> None:
    databases = Databases(pg_server)
    dsn = await databases.dsn_for(tmp_path)
    env = {**ENV, "TEST_DATABASE_URL": dsn}
    ports = [free_port() for _ in range(REPLICAS)]
    processes: list[asyncio.subprocess.Process] = []
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        for n, port in enumerate(ports):  # started together: migrations applied once
            write_config(tmp_path / f"r{n}.toml", port)
        processes = list(await asyncio.gather(*(
            start(tmp_path / f"r{n}.toml", port, tmp_path / f"r{n}.log", program=FAKE_CLI,
                  env=env) for n, port in enumerate(ports))))
        apis = [f"http://127.0.0.1:{port}" for port in ports]
        async with aiohttp.ClientSession() as session:
            for i in range(FOS):
                async with session.post(f"{apis[i % REPLICAS]}/api/v1/fulfillment-orders",
                                        headers=headers, json={"id": f"fo-{i}", "lines": [
                                            {"sku": "A", "quantity": PER_FO}]}) as resp:
                    assert resp.status == 201

            async def deliver(n: int, replica: int) -> int:
                return await post_fake_shipment(session, apis[replica], n, FOS)

            total = FOS * PER_FO
            # the first hundred each go to two replicas at once as well
            twice = [asyncio.create_task(deliver(n, (n + 1) % REPLICAS)) for n in range(100)]
            sending = [asyncio.create_task(deliver(n, n % REPLICAS)) for n in range(total)]
            await asyncio.sleep(0.5)
            processes[1].send_signal(signal.SIGKILL)  # mid-burst
            statuses = await asyncio.gather(*sending)
            await asyncio.gather(*twice)
            await processes[1].wait()
            assert statuses.count(200) > total // 3  # most got through before the kill
            # The partner delivers again what was not acknowledged, to a live replica.
            retry = [n for n, status in enumerate(statuses) if status != 200]
            again = await asyncio.gather(*(deliver(n, 0 if n % 2 else 2) for n in retry))
            assert set(again) <= {200}

            deadline = time.monotonic() + 60
            while True:
                async with session.get(f"{apis[2]}/api/v1/fulfillment-orders?status=fulfilled"
                                       "&limit=100", headers=headers) as resp:
                    done = (await resp.json())["items"]
                if len(done) == FOS:
                    break
                assert time.monotonic() < deadline, len(done)
                await asyncio.sleep(0.2)
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            await process.wait()

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetch("SELECT status, COUNT(*) FROM inbox_events GROUP BY status"
                                ) == [("processed", total)]  # each delivery stored once
        assert await conn.fetchval("SELECT SUM(quantity) FROM allocations") == total
        assert await conn.fetchval("SELECT COUNT(*) FROM timeline WHERE kind = 'status_changed'"
                                   " AND to_status = 'fulfilled'") == FOS
        assert await conn.fetchval("SELECT COUNT(*) FROM timeline WHERE kind ="
                                   " 'status_changed'") == 2 * FOS  # one change each way
        assert await conn.fetchval("SELECT MAX(version) FROM schema_version"
                                   ) == len(migrations())  # applied once, by one of them
    finally:
        await conn.close()
        await databases.drop()
    logs = [read(tmp_path / f"r{n}.log") for n in range(REPLICAS)]
    assert all("gateway.started" in text for text in logs)
    assert not any(dsn in text for text in logs)
