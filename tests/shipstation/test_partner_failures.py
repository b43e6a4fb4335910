"""Partner trouble: 429 storms, 5xx, time-outs; retries, dead letters and their replay."""

from __future__ import annotations

import time

from tests.shipstation.conftest import Sandbox, ShipStationGateway

SKU = "SKU-1"


async def test_429_with_reset_poll_waits_and_completes(gw: ShipStationGateway,
                                                       sandbox: Sandbox) -> None:
    fos = [await gw.create_fo([(SKU, 1)], order_number=f"R{i}") for i in range(3)]
    for i, fo in enumerate(fos):
        order = await sandbox.order(f"R{i}", [(SKU, 1)], order_key=fo["id"])
        await sandbox.ship(order["orderId"], notify=False)
    # Two requests a 2-second window, already spent by another app on the same key: the
    # first call gets 429, and the poll's 3 listings must wait for resets.
    await sandbox.control("/rate-limit", {"limit": 2, "window_seconds": 2, "used": 2})
    started = time.monotonic()
    result = await gw.poll()
    assert result["records"] == 3
    assert time.monotonic() - started >= 1.0  # it waited the window out
    statuses = [r["status"] for r in sandbox.state.requests]
    assert statuses[0] == 429 and statuses.count(200) >= 3
    for fo in fos:
        await gw.wait_status(fo["id"], "fulfilled", within=20)
    connectors = await gw.call("GET", "/api/v1/connectors")
    [ss] = connectors["items"][0]["feeds"]
    assert ss["last_error"] is None and ss["last_result"]["new_events"] == 3
    metrics = await gw.session.get(f"{gw.url}/metrics")
    text = await metrics.text()
    assert 'gateway_partner_rate_limited_total{connector="shipstation"}' in text


async def test_our_budget_keeps_under_the_partner_limit(start_gateway, sandbox: Sandbox) -> None:
    """With our budget set to the partner's, the partner never has to say 429."""
    gw = await start_gateway(rate_limit_per_minute=3, rate_limit_window_seconds=1)
    await sandbox.control("/rate-limit", {"limit": 3, "window_seconds": 1})
    for i in range(4):
        order = await sandbox.order(f"B{i}", [(SKU, 1)])
        await sandbox.ship(order["orderId"], notify=False)
    await gw.poll()
    await gw.poll()
    assert all(r["status"] != 429 for r in sandbox.state.requests)
    assert len(sandbox.state.requests) >= 6


async def test_5xx_then_recovery_is_retried(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    await sandbox.subscribe(gw.webhook_url)
    fo = await gw.create_fo([(SKU, 2)], order_number="F1")
    order = await sandbox.order("F1", [(SKU, 2)], order_key=fo["id"])
    await sandbox.control("/fail", {"count": 2, "status": 503, "path_prefix": "/shipments"})
    await sandbox.ship(order["orderId"])
    fo = await gw.wait_status(fo["id"], "fulfilled")
    failed = [r for r in sandbox.state.requests if r["status"] == 503]
    assert len(failed) == 2
    assert (await gw.call("GET", "/api/v1/dead-letters"))["items"] == []


async def test_exhausted_retries_dead_letter_then_replay(gw: ShipStationGateway,
                                                         sandbox: Sandbox) -> None:
    await sandbox.subscribe(gw.webhook_url)
    fo = await gw.create_fo([(SKU, 2)], order_number="F2")
    order = await sandbox.order("F2", [(SKU, 2)], order_key=fo["id"])
    await sandbox.control("/fail", {"count": 3, "status": 500, "path_prefix": "/shipments"})
    await sandbox.ship(order["orderId"])

    async def dead_letters() -> list[dict]:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"]

    [dead] = await gw.wait_for(dead_letters)
    assert dead["attempts"] == 3 and "HTTP 500" in dead["error"]
    assert (await gw.fo(fo["id"]))["status"] == "unfulfilled"

    replay = await gw.call("POST", f"/api/v1/dead-letters/{dead['id']}/replay", expect=202)
    assert replay["status"] == "replaying"
    await gw.wait_status(fo["id"], "fulfilled")
    assert await dead_letters() == []
    missing = await gw.call("POST", f"/api/v1/dead-letters/{dead['id']}/replay", expect=404)
    assert missing["error"]["code"] == "not_found"
    await gw.call("POST", "/api/v1/dead-letters/garbage/replay", expect=404)


async def test_partner_timeout_is_retried(start_gateway, sandbox: Sandbox) -> None:
    gw = await start_gateway(request_timeout_seconds=0.3)
    await sandbox.subscribe(gw.webhook_url)
    fo = await gw.create_fo([(SKU, 1)], order_number="T1")
    order = await sandbox.order("T1", [(SKU, 1)], order_key=fo["id"])
    await sandbox.control("/fail", {"count": 1, "status": 200, "delay_seconds": 1,
                                    "path_prefix": "/shipments"})
    await sandbox.ship(order["orderId"])
    await gw.wait_status(fo["id"], "fulfilled")


async def test_poll_error_is_reported_and_cursor_kept(gw: ShipStationGateway,
                                                      sandbox: Sandbox) -> None:
    await gw.poll()
    [before] = (await gw.call("GET", "/api/v1/connectors"))["items"][0]["feeds"]
    await sandbox.control("/fail", {"count": 1, "status": 500, "path_prefix": "/shipments"})
    failed = await gw.call("POST", "/api/v1/connectors/shipstation/poll", expect=502)
    assert failed["error"]["code"] == "partner_unavailable"
    [after] = (await gw.call("GET", "/api/v1/connectors"))["items"][0]["feeds"]
    assert after["cursor"] == before["cursor"] and not after["running"]
    assert "HTTP 500" in after["last_error"]
    await gw.call("POST", "/api/v1/connectors/nope/poll", expect=404)


async def test_bad_partner_credentials_are_not_retried_forever(start_gateway,
                                                               sandbox: Sandbox) -> None:
    gw = await start_gateway(env={"SS_SECRET": "not-the-secret"})
    failed = await gw.call("POST", "/api/v1/connectors/shipstation/poll", expect=502)
    assert failed["error"]["code"] == "partner_rejected" and "401" in failed["error"]["message"]
