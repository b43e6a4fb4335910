"""Kill -9 while a burst of acknowledged webhooks is being processed; restart; each is
processed exactly once; SIGTERM stops cleanly. The gateway runs as its own process with the
scripted fake connector type (registered by a small launcher, as conftest does in-process)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp

from tests.conftest import API_TOKEN, FAKE_TOKEN
from tests.processes import (
    FAKE_CLI,
    free_port,
    post_fake_shipment,
    read,
    start,
    write_fake_config,
)

FOS, PER_FO = 40, 100  # 4,000 webhooks: one unit each


def write_config(path: Path, db: Path, port: int) -> None:
    write_fake_config(path, db, port, "wms")


async def serve(config: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    return await start(config, port, log, program=FAKE_CLI)


async def test_sigkill_during_a_burst_loses_nothing_acknowledged_and_doubles_nothing(
        tmp_path: Path) -> None:
    port, db, config, log = free_port(), tmp_path / "gw.sqlite3", tmp_path / "gw.toml", \
        tmp_path / "gw.log"
    write_config(config, db, port)
    api = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    process = await serve(config, port, log)
    acknowledged = 0
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(FOS):
                async with session.post(f"{api}/api/v1/fulfillment-orders", headers=headers,
                                        json={"id": f"fo-{i}", "lines": [
                                            {"sku": "A", "quantity": PER_FO}]}) as resp:
                    assert resp.status == 201

            first_ack = asyncio.Event()

            async def deliver(n: int) -> int:
                status = await post_fake_shipment(session, api, n, FOS)
                if status == 200:
                    first_ack.set()
                return status

            sending = [asyncio.create_task(deliver(n)) for n in range(FOS * PER_FO)]
            # Killed once some are acknowledged (so some processed, some on the way),
            # however slow the machine is today.
            await asyncio.wait_for(first_ack.wait(), timeout=20)
            await asyncio.sleep(0.1)
            process.send_signal(signal.SIGKILL)
            statuses = await asyncio.gather(*sending)
            acknowledged = statuses.count(200)
        await process.wait()
        assert 0 < acknowledged

        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM inbox_events").fetchone()[0]
        assert stored >= acknowledged  # every 2xx was durable (a commit may beat its answer)

        # The partner delivers again what was not acknowledged; the rest is not stored twice.
        process = await serve(config, port, log)
        async with aiohttp.ClientSession() as session:
            retry = [n for n, status in enumerate(statuses) if status != 200]
            await asyncio.gather(*(deliver(n) for n in retry))
            deadline = time.monotonic() + 30
            while True:
                async with session.get(f"{api}/api/v1/fulfillment-orders?status=fulfilled",
                                       headers=headers) as resp:
                    done = (await resp.json())["items"]
                if len(done) == FOS:
                    break
                assert time.monotonic() < deadline, len(done)
                await asyncio.sleep(0.2)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, COUNT(*) FROM inbox_events GROUP BY status"
                            ).fetchall() == [("processed", FOS * PER_FO)]
        assert conn.execute("SELECT SUM(quantity) FROM allocations").fetchone() == (
            FOS * PER_FO,)
        changes = conn.execute("SELECT COUNT(*) FROM timeline WHERE kind = 'status_changed'"
                               " AND to_status = 'fulfilled'").fetchone()
        assert changes == (FOS,)  # each FO became fulfilled once


async def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    port, db, config, log = free_port(), tmp_path / "gw.sqlite3", tmp_path / "gw.toml", \
        tmp_path / "gw.log"
    write_config(config, db, port)
    process = await serve(config, port, log)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    text = read(log)
    assert "gateway.started" in text and "gateway.stopping" in text and "gateway.stopped" in text
    assert FAKE_TOKEN not in text and API_TOKEN not in text
    wal = tmp_path / "gw.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0
