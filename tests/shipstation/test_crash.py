"""ShipStation under SIGKILL: webhooks acknowledged but not yet processed when the process dies
are each processed once after a restart; a push the partner took before the death is resent
once and absorbed by ShipStation's orderKey."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp

from tests import processes
from tests.conftest import API_TOKEN
from tests.processes import free_port, read
from tests.shipstation.conftest import (
    SS_ENV,
    SS_HOOK_TOKEN,
    SS_KEY,
    SS_SECRET,
    Sandbox,
    write_config,
)

N = 8


async def start(config: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    return await processes.start(config, port, log, env=SS_ENV)


async def test_sigkill_between_ack_and_processing(sandbox: Sandbox, tmp_path: Path) -> None:
    port, db, config, log = free_port(), tmp_path / "gw.sqlite3", tmp_path / "gw.toml", \
        tmp_path / "gw.log"
    write_config(config, db, sandbox.url, port, request_timeout_seconds=60)
    api = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    process = await start(config, port, log)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{api}/api/v1/fulfillment-orders", headers=headers, json={
                    "id": "fo-crash", "lines": [{"sku": "A", "quantity": N}]}) as resp:
                assert resp.status == 201
            order = await sandbox.order("C1", [("A", N)], order_key="fo-crash")
            batches = [(await sandbox.ship(order["orderId"], [("A", 1)], notify=False))
                       ["shipment"]["batchNumber"] for _ in range(N)]
            # The partner hangs: every fetch the worker starts stays in flight.
            await sandbox.control("/fail", {"count": 1000, "status": 503, "delay_seconds": 30,
                                            "path_prefix": "/shipments"})
            for batch in batches:
                body = {"resource_url": f"{sandbox.url}/shipments?batchId={batch}"
                                        "&includeShipmentItems=False",
                        "resource_type": "SHIP_NOTIFY"}
                async with session.post(f"{api}/webhooks/shipstation?token={SS_HOOK_TOKEN}",
                                        json=body) as resp:
                    assert resp.status == 200
            deadline = time.monotonic() + 10
            while not any(r["path"] == "/shipments" for r in sandbox.state.requests):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        await process.wait()

        sandbox.state.failures.clear()
        process = await start(config, port, log)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                async with session.get(f"{api}/api/v1/fulfillment-orders/fo-crash",
                                       headers=headers) as resp:
                    fo = await resp.json()
                if fo["status"] == "fulfilled":
                    break
                assert time.monotonic() < deadline, fo
                await asyncio.sleep(0.1)
        assert fo["lines"][0]["fulfilled"] == N and len(fo["shipments"]) == N
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, COUNT(*) FROM inbox_events GROUP BY status"
                            ).fetchall() == [("processed", N)]
        assert conn.execute("SELECT SUM(quantity) FROM allocations").fetchone() == (N,)
        changes = conn.execute("SELECT to_status FROM timeline WHERE kind = 'status_changed'"
                               ).fetchall()
        assert changes[-1] == ("fulfilled",) and changes.count(("fulfilled",)) == 1
    text = read(log)
    assert "gateway.started" in text and "inbox.pending_at_start" in text
    for secret in (SS_KEY, SS_SECRET, SS_HOOK_TOKEN, API_TOKEN):
        assert secret not in text


async def test_sigkill_after_the_partner_took_the_push_resends_it_once_absorbed(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """The partner has the order, the gateway dies before marking the push sent: the restart
    sends it again and ShipStation's orderKey keeps it one order."""
    port, db, config, log = free_port(), tmp_path / "gw.sqlite3", tmp_path / "gw.toml", \
        tmp_path / "gw.log"
    write_config(config, db, sandbox.url, port)
    config.write_text(config.read_text() + """
[[channels]]
name = "wholesale"
[channels.oms]
connector = "shipstation"
""")
    api = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    # ShipStation takes its time answering the createorder (and creates the order anyway).
    await sandbox.control("/fail", {"count": 1, "status": 0, "delay_seconds": 1.5,
                                    "path_prefix": "/orders/createorder"})
    process = await start(config, port, log)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{api}/api/v1/fulfillment-orders", headers=headers, json={
                    "id": "fo-push-crash", "channel": "wholesale", "order_number": "P1",
                    "lines": [{"sku": "A", "quantity": 2}]}) as resp:
                assert resp.status == 201
            deadline = time.monotonic() + 10
            while not any(r["path"] == "/orders/createorder" for r in sandbox.state.requests):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        deadline = time.monotonic() + 10
        while not sandbox.state.orders:  # the partner finishes the call nobody waits for
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        process = await start(config, port, log)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while True:
                async with session.get(f"{api}/api/v1/fulfillment-orders/fo-push-crash",
                                       headers=headers) as resp:
                    fo = await resp.json()
                if fo["outbound"][0]["status"] == "sent":
                    break
                assert time.monotonic() < deadline, fo
                await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    calls = [r for r in sandbox.state.requests if r["path"] == "/orders/createorder"]
    assert len(calls) == 2  # sent twice ...
    [order] = sandbox.state.orders.values()  # ... one order
    assert order["orderKey"] == "fo-push-crash"
    assert {"kind": "partner_order_id", "value": str(order["orderId"])} in fo["external_refs"]


async def test_sigkill_half_way_through_a_capped_poll_resumes_without_skipping(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """A poll that needs three runs (max_poll_requests) dies in its second: the restarted
    gateway goes on from the last committed page, and every label is applied exactly once."""
    labels = 9
    port, db, config, log = free_port(), tmp_path / "gw.sqlite3", tmp_path / "gw.toml", \
        tmp_path / "gw.log"
    write_config(config, db, sandbox.url, port, page_size=1, max_poll_requests=4)
    api = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    process = await start(config, port, log)
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(labels):
                async with session.post(f"{api}/api/v1/fulfillment-orders", headers=headers,
                                        json={"id": f"fo-p{n}",
                                              "lines": [{"sku": "A", "quantity": 1}]}) as resp:
                    assert resp.status == 201
                order = await sandbox.order(f"P{n}", [("A", 1)], order_key=f"fo-p{n}")
                await sandbox.ship(order["orderId"], notify=False)
            poll_url = f"{api}/api/v1/connectors/shipstation/poll"
            async with session.post(poll_url, headers=headers) as resp:  # pages 1-4
                assert (await resp.json())["feeds"]["shipments"]["complete"] is False
            # the next run hangs on its second page; the process dies there
            await sandbox.control("/fail", {"count": 1, "status": 0, "delay_seconds": 30,
                                            "path_prefix": "/shipments"})
            mark = len(sandbox.state.requests)
            running = asyncio.ensure_future(session.post(poll_url, headers=headers))
            deadline = time.monotonic() + 10
            while len(sandbox.state.requests) == mark:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            running.cancel()
        sandbox.state.failures.clear()
        process = await start(config, port, log)
        async with aiohttp.ClientSession() as session:
            pages = []
            for _ in range(4):
                mark = len(sandbox.state.requests)
                async with session.post(poll_url, headers=headers) as resp:
                    result = (await resp.json())["feeds"]["shipments"]
                pages += [int(r["query"]["page"]) for r in sandbox.state.requests[mark:]
                          if "createDateStart" in r["query"]]
                if result["complete"]:
                    break
            assert result["complete"]
            assert pages[0] == 5  # went on where the last committed run stopped
            deadline = time.monotonic() + 20
            while True:
                async with session.get(f"{api}/api/v1/fulfillment-orders?status=fulfilled",
                                       headers=headers) as resp:
                    done = (await resp.json())["items"]
                if len(done) == labels:
                    break
                assert time.monotonic() < deadline, len(done)
                await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM shipments").fetchone() == (labels,)
        assert conn.execute("SELECT SUM(quantity) FROM allocations").fetchone() == (labels,)
