"""ShipStation's outbound half: channel pushes to its sandbox (the createorder body, custom
fields under its names, orderKey absorbing a resend), its cancel, its 429s, 5xx and timeouts,
a dead letter replayed, one invoice per label however many webhooks tell of it. The core's
outbound behaviour, on the fake type, is in tests/test_outbound.py and test_contract.py."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import OperationUnsupported
from storage import OutboxMessage
from tests.conftest import Receiver, wait_events, wait_pushed
from tests.shipstation.conftest import Sandbox, ShipStationGateway, gateway_doc

SKU = "TSHIRT-BLK-M"


def outbound_doc(db: Path, sandbox: Sandbox, receiver: Receiver | None = None,
                 delay_minutes: float = 0, invoice_timing: str | None = None,
                 retry: dict[str, Any] | None = None, **connector: Any) -> dict[str, Any]:
    doc = gateway_doc(db, sandbox.url, **connector)
    channel: dict[str, Any] = {
        "name": "wholesale", "warehouse_group": "east", "internal": True,
        "description": "Wholesale reps", "tags": ["b2b"],
        "oms": {"connector": "shipstation", "store_id": 42, "delay_minutes": delay_minutes},
        "push_fulfillment_updates": True,
        "custom_fields": {"shipping_notes": "internalNotes",
                          "shipping_type": "advancedOptions.customField1"}}
    if invoice_timing:
        channel["invoice_timing"] = invoice_timing
    doc["channels"] = [channel, {"name": "showroom", "internal": True}]
    if receiver is not None:
        doc["subscribers"] = [{"name": "erp", "url": receiver.url, "secret_env": "SUB_SECRET",
                               "events": ["*"]}]
    if retry:
        doc["retry"] = retry
    return doc


async def start(start_gateway, tmp_path: Path, sandbox: Sandbox, receiver: Receiver | None = None,
                **options: Any) -> ShipStationGateway:
    return await start_gateway(outbound_doc(tmp_path / "gateway.sqlite3", sandbox, receiver,
                                            **options))


def createorders(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.state.requests if r["path"] == "/orders/createorder"]


async def test_immediate_push_carries_the_fo_and_custom_fields_verbatim(
        start_gateway, tmp_path: Path, sandbox: Sandbox, receiver: Receiver) -> None:
    gw = await start(start_gateway, tmp_path, sandbox, receiver)
    fo = await gw.create_fo([(SKU, 10)], channel="wholesale", order_number="1001",
                            ship_to={"name": "Ann Buyer", "street1": "1 Main St",
                                     "city": "Portland", "state": "OR", "postal_code": "97201",
                                     "country": "US"},
                            custom_fields={"shipping_notes": "Dock 4 only",
                                           "shipping_type": "LTL", "unmapped": "stays home"})
    fo = await wait_pushed(gw, fo["id"])
    [call] = createorders(sandbox)
    body = call["json"]
    assert body["orderKey"] == fo["id"] and body["orderNumber"] == "1001"
    assert body["orderStatus"] == "awaiting_shipment"
    assert body["items"] == [{"lineItemKey": "1", "sku": SKU, "name": SKU, "quantity": 10}]
    assert body["shipTo"] == {"name": "Ann Buyer", "street1": "1 Main St", "city": "Portland",
                              "state": "OR", "postalCode": "97201", "country": "US"}
    assert body["internalNotes"] == "Dock 4 only"
    assert body["advancedOptions"] == {"storeId": 42, "customField1": "LTL"}
    assert "unmapped" not in str(body)
    order = next(iter(sandbox.state.orders.values()))
    assert {"kind": "partner_order_id", "value": str(order["orderId"])} in fo["external_refs"]
    [push] = fo["outbound"]
    assert push["result"]["partner_order_id"] == str(order["orderId"]) and push["attempts"] == 1
    assert [t["kind"] for t in fo["timeline"]] == ["created", "push_scheduled", "pushed"]
    [pushed] = await wait_events(receiver, 1, "order.pushed")
    assert pushed["data"]["partner_order_id"] == str(order["orderId"])

    # The pushed order ships in two parts at the sandbox: status comes back by webhook.
    await sandbox.subscribe(gw.webhook_url)
    await sandbox.ship(order["orderId"], [(SKU, 6)])
    await sandbox.ship(order["orderId"], [(SKU, 4)])
    await gw.wait_status(fo["id"], "fulfilled")


async def test_delayed_push_waits_and_survives_a_restart(
        start_gateway, tmp_path: Path, sandbox: Sandbox) -> None:
    delay_minutes = 2.0 / 60  # 2 s here; 15 minutes in config.toml
    gw = await start(start_gateway, tmp_path, sandbox, delay_minutes=delay_minutes)
    created = time.monotonic()
    fo = await gw.create_fo([(SKU, 3)], channel="wholesale", order_number="D1")
    [push] = (await gw.fo(fo["id"]))["outbound"]
    assert push["status"] == "pending"
    await asyncio.sleep(0.5)
    await gw.server.close()  # the gateway stops during the delay; nothing sleeps in memory
    assert createorders(sandbox) == []

    gw2 = await start(start_gateway, tmp_path, sandbox, delay_minutes=delay_minutes)
    await wait_pushed(gw2, fo["id"])
    assert time.monotonic() - created >= 2.0
    await asyncio.sleep(0.5)
    assert len(createorders(sandbox)) == 1 and len(sandbox.state.orders) == 1


async def test_cancel_after_the_push_sends_the_partners_cancel(
        start_gateway, tmp_path: Path, sandbox: Sandbox) -> None:
    gw = await start(start_gateway, tmp_path, sandbox)
    fo = await gw.create_fo([(SKU, 2)], channel="wholesale", order_number="C2")
    await wait_pushed(gw, fo["id"])
    await gw.call("POST", f"/api/v1/fulfillment-orders/{fo['id']}/cancel")
    fo = await wait_pushed(gw, fo["id"], kind="cancel_order")
    push, cancel = createorders(sandbox)
    assert cancel["json"]["orderKey"] == push["json"]["orderKey"] == fo["id"]
    assert cancel["json"]["orderStatus"] == "cancelled"
    [order] = sandbox.state.orders.values()
    assert order["orderStatus"] == "cancelled"
    assert "cancel_sent" in [t["kind"] for t in fo["timeline"]]
    # Cancelling again changes nothing and sends nothing more.
    await gw.call("POST", f"/api/v1/fulfillment-orders/{fo['id']}/cancel")
    await asyncio.sleep(0.3)
    assert len(createorders(sandbox)) == 2


async def test_a_resent_push_is_absorbed_by_the_order_key(gw: ShipStationGateway,
                                                          sandbox: Sandbox) -> None:
    """What a crash between ShipStation's 2xx and marking the message sent amounts to."""
    connector = gw.gateway.connectors["shipstation"]
    order = {"fulfillment_order_id": "fo_same", "order_number": "R1", "channel": "wholesale",
             "created_at": "2026-11-23T12:00:00.000000Z", "store_id": None,
             "lines": [{"line_id": "1", "sku": SKU, "quantity": 1}], "ship_to": {},
             "partner_fields": {}}
    message = OutboxMessage(id=1, key="push_order:fo_same", destination="connector:shipstation",
                            kind="push_order", payload_json=orjson.dumps(order), fo_id="fo_same", attempts=0,
                            created_at=order["created_at"])
    first = await connector.perform("push_order", message)
    again = await connector.perform("push_order", message)
    assert first["partner_order_id"] == again["partner_order_id"]
    assert len(sandbox.state.orders) == 1
    # Once shipped, ShipStation refuses the update; the order is there, so it is a success.
    await sandbox.ship(int(first["partner_order_id"]), notify=False)
    third = await connector.perform("push_order", message)
    assert third["partner_order_id"] == first["partner_order_id"] and third["already"]
    # The same for a cancel repeated after it landed.
    other = dataclasses.replace(message, key="push_order:fo_other", fo_id="fo_other",
                                payload_json=orjson.dumps(
                                    order | {"fulfillment_order_id": "fo_other",
                                             "order_number": "R2"}))
    await connector.perform("push_order", other)
    await connector.perform("cancel_order", other)
    assert (await connector.perform("cancel_order", other))["order_status"] == "cancelled"
    unsupported = await gw.call("GET", "/api/v1/connectors")
    assert "push_inventory" not in unsupported["items"][0]["operations"]
    try:
        await connector.perform("push_inventory", message)
    except OperationUnsupported as exc:
        assert "push_inventory" in exc.message and exc.status == 501
    else:
        raise AssertionError("an operation the type does not have must be refused")


async def test_429_storm_then_recovery_within_the_shared_budget(
        start_gateway, tmp_path: Path, sandbox: Sandbox) -> None:
    window, budget = 1.0, 4
    gw = await start(start_gateway, tmp_path, sandbox, rate_limit_per_minute=budget,
                     rate_limit_window_seconds=window)
    # Another app on the same key has spent this window: the first call meets a 429.
    await sandbox.control("/rate-limit", {"limit": budget, "window_seconds": window,
                                          "used": budget})
    fos = [await gw.create_fo([(SKU, 1)], channel="wholesale", order_number=f"S{i}")
           for i in range(10)]
    poll = asyncio.create_task(gw.poll())  # polling spends the same budget
    for fo in fos:
        await wait_pushed(gw, fo["id"], within=30)
    await poll
    assert len(sandbox.state.orders) == 10
    stamps = [r["at"] for r in sandbox.state.requests]
    limited = sum(1 for r in sandbox.state.requests if r["status"] == 429)
    assert limited >= 1
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    assert item["rate_limit"]["rate_limited_last_hour"] == limited  # the console shows it
    busiest = max(sum(1 for s in stamps if t <= s < t + window) for t in stamps)
    assert busiest <= budget, f"{busiest} requests within {window} s; budget {budget}"


async def test_5xx_then_recovery_delivers_after_retries(
        start_gateway, tmp_path: Path, sandbox: Sandbox) -> None:
    gw = await start(start_gateway, tmp_path, sandbox)
    await sandbox.control("/fail", {"count": 2, "status": 500, "path_prefix": "/orders/createorder"})
    fo = await gw.create_fo([(SKU, 1)], channel="wholesale", order_number="E1")
    fo = await wait_pushed(gw, fo["id"])
    [push] = fo["outbound"]
    assert push["attempts"] == 3 and push["last_error"] is None
    assert [r["status"] for r in createorders(sandbox)] == [500, 500, 200]
    assert (await gw.call("GET", "/api/v1/dead-letters"))["items"] == []


async def test_a_timeout_is_retried(start_gateway, tmp_path: Path, sandbox: Sandbox) -> None:
    gw = await start(start_gateway, tmp_path, sandbox, request_timeout_seconds=0.5)
    await sandbox.control("/fail", {"count": 1, "status": 500, "delay_seconds": 2,
                                    "path_prefix": "/orders/createorder"})
    fo = await gw.create_fo([(SKU, 1)], channel="wholesale", order_number="T1")
    fo = await wait_pushed(gw, fo["id"])
    assert fo["outbound"][0]["attempts"] == 2


async def test_400_is_a_dead_letter_at_once_and_replay_delivers_it(
        start_gateway, tmp_path: Path, sandbox: Sandbox, receiver: Receiver) -> None:
    gw = await start(start_gateway, tmp_path, sandbox, receiver)
    await sandbox.control("/fail", {"count": 1, "status": 400, "message": "Invalid shipTo country",
                                    "path_prefix": "/orders/createorder"})
    fo = await gw.create_fo([(SKU, 1)], channel="wholesale", order_number="X1")

    async def dead() -> list[dict[str, Any]]:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"]

    [letter] = await gw.wait_for(dead)
    assert letter["id"].startswith("outbox-") and letter["source"] == "outbox"
    assert letter["attempts"] == 1 and letter["fulfillment_order_id"] == fo["id"]
    assert "Invalid shipTo country" in letter["error"] and letter["error"].startswith("rejected")
    [failed] = await wait_events(receiver, 1, "order.push_failed")
    assert "Invalid shipTo country" in failed["data"]["error"]
    assert "push_failed" in [t["kind"] for t in (await gw.fo(fo["id"]))["timeline"]]

    # The sandbox is fixed (its one failure is spent); a replay delivers the push.
    await gw.call("POST", f"/api/v1/dead-letters/{letter['id']}/replay", expect=202)
    fo = await wait_pushed(gw, fo["id"])
    assert await dead() == [] and len(sandbox.state.orders) == 1
    await gw.call("POST", f"/api/v1/dead-letters/{letter['id']}/replay", expect=404)


async def test_invoice_once_per_shipment_not_per_webhook(
        start_gateway, tmp_path: Path, sandbox: Sandbox, receiver: Receiver) -> None:
    gw = await start(start_gateway, tmp_path, sandbox, receiver,
                     invoice_timing="on_shipment_created")
    fo = await gw.create_fo([(SKU, 10)], channel="wholesale", order_number="1001")
    fo = await wait_pushed(gw, fo["id"])
    order_id = int(fo["outbound"][0]["result"]["partner_order_id"])
    await sandbox.subscribe(gw.webhook_url)
    await sandbox.subscribe(gw.webhook_url, "ITEM_SHIP_NOTIFY")  # two webhooks per label
    children = (await sandbox.control(f"/orders/{order_id}/split", {"parts": [
        [{"sku": SKU, "quantity": 6}], [{"sku": SKU, "quantity": 4}]]}))["orders"]
    first = await sandbox.ship(children[0]["orderId"])
    await gw.wait_status(fo["id"], "partially_fulfilled")
    second = await sandbox.ship(children[1]["orderId"])
    await gw.wait_status(fo["id"], "fulfilled")
    await gw.poll()  # the same labels once more, by polling
    await gw.wait_idle()
    await asyncio.sleep(0.3)
    invoices = receiver.events("invoice.requested")
    assert len(invoices) == 2
    by_shipment = {i["data"]["shipment_id"]: i["data"]["lines"] for i in invoices}
    shipments = {s["external_id"]: s["id"] for s in (await gw.fo(fo["id"]))["shipments"]}
    assert by_shipment == {
        shipments[str(first["shipment"]["shipmentId"])]: [
            {"line_id": "1", "sku": SKU, "quantity": 6}],
        shipments[str(second["shipment"]["shipmentId"])]: [
            {"line_id": "1", "sku": SKU, "quantity": 4}]}


async def test_cancel_while_the_push_is_in_flight_sends_the_cancel_after_it(
        start_gateway, tmp_path: Path, sandbox: Sandbox) -> None:
    gw = await start(start_gateway, tmp_path, sandbox)
    # ShipStation answers the createorder slowly: the FO is cancelled while it is in flight.
    await sandbox.control("/fail", {"count": 1, "status": 0, "delay_seconds": 1.0,
                                    "path_prefix": "/orders/createorder"})
    fo = await gw.create_fo([(SKU, 1)], channel="wholesale", order_number="F1")
    await gw.wait_for(lambda: asyncio.sleep(0, createorders(sandbox)))
    cancelled = await gw.call("POST", f"/api/v1/fulfillment-orders/{fo['id']}/cancel")
    assert [o["status"] for o in cancelled["outbound"]] == ["cancelled"]
    await wait_pushed(gw, fo["id"], kind="cancel_order")
    push, cancel = createorders(sandbox)
    assert push["json"]["orderStatus"] == "awaiting_shipment"
    assert cancel["json"]["orderStatus"] == "cancelled"
    [order] = sandbox.state.orders.values()
    assert order["orderStatus"] == "cancelled" and order["orderKey"] == fo["id"]


async def test_injected_429_waits_for_the_reset(start_gateway, tmp_path: Path,
                                                sandbox: Sandbox) -> None:
    gw = await start(start_gateway, tmp_path, sandbox)
    await sandbox.control("/fail", {"count": 1, "status": 429, "reset_seconds": 1,
                                    "path_prefix": "/orders/createorder"})
    started = time.monotonic()
    fo = await gw.create_fo([(SKU, 1)], channel="wholesale", order_number="L1")
    fo = await wait_pushed(gw, fo["id"])
    assert time.monotonic() - started >= 1.0
    assert [r["status"] for r in createorders(sandbox)] == [429, 200]
    assert fo["outbound"][0]["attempts"] == 1  # waited inside the call, not retried later
