"""Killed (SIGKILL) after Amazon answered a receiving read and before the gateway committed
it: after a restart the same receipts are read again and counted once. The gateway runs as
its own `serve` process; Amazon's sandbox runs in the test, which kills the gateway the moment
it asks for a second shipment's items (the first answer is then read, and nothing of the
feed run is committed: a run commits its reads together)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from connectors.amazon_sp.sandbox import state_of
from tests.amazon.conftest import ENV as AMAZON_ENV
from tests.amazon.conftest import add
from tests.conftest import API_TOKEN, ENV
from tests.processes import free_port, read, start


def write_config(path: Path, db: Path, port: int, url: str) -> None:
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
[storage]
path = "{db}"
[api]
tokens_env = "GATEWAY_API_TOKENS"
[[connectors]]
name = "amazon"
type = "amazon_sp"
base_url = "{url}"
token_url = "{url}/auth/o2/token"
client_id_env = "AMZ_ID"
client_secret_env = "AMZ_SECRET"
refresh_token_env = "AMZ_REFRESH"
end_lag_minutes = 0
request_timeout_seconds = 5
""")


class Api:
    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session, self.url = session, f"http://127.0.0.1:{port}"

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with self.session.request(method, self.url + path, json=body, headers={
                "Authorization": f"Bearer {API_TOKEN}"}) as resp:
            answer = await resp.json()
            assert resp.status == expect, (resp.status, answer)
            return answer

    async def poll(self, feed: str) -> None:
        """One run of a feed; a feed still leased by the killed process is waited for."""
        deadline = time.monotonic() + 60
        while True:
            async with self.session.post(f"{self.url}/api/v1/connectors/amazon/poll?feed={feed}",
                                         headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
                if resp.status == 200:
                    return
                assert resp.status == 409 and time.monotonic() < deadline, await resp.text()
            await asyncio.sleep(0.5)

    async def items_read(self) -> None:
        """Until both shipments are kept with their items (the receiving feed reads the
        shipments the gateway keeps: once the shipments feed's reads are applied)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            page = await self.call("GET", "/api/v1/inbound-shipments")
            if all(s["items"] for s in page["items"]) and len(page["items"]) == 2:
                return
            await self.poll("receiving")
            await asyncio.sleep(0.1)
        raise AssertionError(page)


async def test_a_crash_after_amazons_answer_before_the_commit_receives_once(
        aiohttp_server: Any, tmp_path: Path) -> None:
    from connectors.amazon_sp.sandbox import create_app
    from tests.amazon.conftest import CLIENT, REFRESH, SECRET

    app = create_app(CLIENT, SECRET, REFRESH)
    state = state_of(app)
    crash: dict[str, Any] = {"armed": False, "reads": 0, "process": None}

    @web.middleware
    async def kill_on_the_second_read(request: web.Request, handler: Any) -> Any:
        if crash["armed"] and request.path.endswith("/items"):
            crash["reads"] += 1
            if crash["reads"] == 2:  # the first answer is with the gateway, uncommitted
                crash["armed"] = False
                crash["process"].send_signal(signal.SIGKILL)
                await asyncio.sleep(0.2)
                raise web.HTTPServiceUnavailable()
        return await handler(request)

    app.middlewares.insert(0, kill_on_the_second_read)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    port, db, config, log = free_port(), tmp_path / "gw.sqlite3", tmp_path / "gw.toml", \
        tmp_path / "gw.log"
    write_config(config, db, port, url)
    env = {**ENV, **AMAZON_ENV}
    for shipment_id in ("FBA15K1", "FBA15K2"):
        add(state, {"ShipmentId": shipment_id, "ShipmentStatus": "RECEIVING",
                    "items": [{"SellerSKU": "MUG", "QuantityShipped": 10}]})
    process = await start(config, port, log, env=env)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, port)
            await api.poll("shipments")
            await api.items_read()
            orders = [await api.call("POST", f"/api/v1/inbound-shipments/{s}/reconcile",
                                     {"source_location": "WH"}, expect=201)
                      for s in ("FBA15K1", "FBA15K2")]
            for order in orders:
                await api.call("POST", f"/api/v1/transfer-orders/{order['id']}/ship")
            for shipment_id in ("FBA15K1", "FBA15K2"):
                state.items[shipment_id][0]["QuantityReceived"] = 6

            crash.update(armed=True, process=process)
            async with session.post(f"{api.url}/api/v1/connectors/amazon/poll?feed=receiving",
                                    headers={"Authorization": f"Bearer {API_TOKEN}"}):
                pass  # the process is killed under it (reached here only if it answers)
    except aiohttp.ClientError:
        pass
    finally:
        if crash["process"] is None:  # failed before the crash: stop it all the same
            process.kill()
    assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL, read(log)
    with sqlite3.connect(db) as conn:  # nothing of the killed run was committed
        assert conn.execute("SELECT COUNT(*) FROM inbound_receipts").fetchone()[0] == 0

    process = await start(config, port, log, env=env)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, port)
            for _ in range(2):  # re-polled, and once more: the same reads, counted once
                await api.poll("receiving")
                await asyncio.sleep(0.3)
            deadline = time.monotonic() + 20
            while True:
                levels = (await api.call("GET", "/api/v1/inventory?location=amazon"))["items"]
                if levels and levels[0]["on_hand"] == 12 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert [(lv["sku"], lv["on_hand"], lv["in_transit"]) for lv in levels] == [
                ("MUG", 12, 8)]  # 6 of 10 from each of two shipments
            for shipment_id in ("FBA15K1", "FBA15K2"):
                one = await api.call("GET", f"/api/v1/inbound-shipments/{shipment_id}")
                assert [(r["kind"], r["quantity"]) for r in one["receipts"]] == [("receipt", 6)]
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
