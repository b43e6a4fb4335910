"""Amazon FBA inbound into the gateway's stock: an inbound shipment reconciled into a transfer
order, marked shipped, received in parts into the inventory ledger; discrepancies reported,
not applied; receipts held until the shipment is reconciled. Against the sandbox over
loopback HTTP, on both storage backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from tests.amazon.conftest import ENV as AMAZON_ENV
from tests.amazon.conftest import add, amazon_doc, changed, start, sync
from tests.conftest import GatewayUnderTest, wait_events

STOCK_EVENTS = ["transfer_order.created", "transfer_order.shipped", "purchase_order.received",
                "purchase_order.closed", "inventory.discrepancy"]


def ops(receiver: Any) -> list[dict[str, Any]]:
    return [{"name": "ops", "url": receiver.url, "secret_env": "SUB_SECRET",
             "events": STOCK_EVENTS}]


async def levels(gw: GatewayUnderTest, location: str) -> dict[str, tuple[int, int]]:
    """(on hand, in transit) per SKU at a location."""
    page = await gw.call("GET", f"/api/v1/inventory?location={location}")
    return {lv["sku"]: (lv["on_hand"], lv["in_transit"]) for lv in page["items"]}


async def receipts(gw: GatewayUnderTest, shipment_id: str) -> list[tuple[str, str, int, str]]:
    one = await gw.call("GET", f"/api/v1/inbound-shipments/{shipment_id}")
    return [(r["sku"], r["kind"], r["quantity"], r["state"]) for r in one["receipts"]]


async def reconciled(gw: GatewayUnderTest, shipment_id: str, expect: int = 201,
                     source: str = "WH-EAST") -> dict[str, Any]:
    return await gw.call("POST", f"/api/v1/inbound-shipments/{shipment_id}/reconcile",
                         {"source_location": source}, expect=expect)


async def shipped(gw: GatewayUnderTest, state: Any, shipment_id: str,
                  **units: int) -> dict[str, Any]:
    """A shipment Amazon has, synced, reconciled and marked shipped: its transfer order."""
    add(state, shipment(shipment_id, **units))
    await sync(gw)
    order = await reconciled(gw, shipment_id)
    await gw.call("POST", f"/api/v1/transfer-orders/{order['id']}/ship")
    return order


def shipment(shipment_id: str, **units: int) -> dict[str, Any]:
    return {"ShipmentId": shipment_id, "ShipmentName": f"Restock {shipment_id}",
            "ShipmentStatus": "SHIPPED",
            "items": [{"SellerSKU": sku, "QuantityShipped": n} for sku, n in units.items()]}


async def test_reconciled_shipped_and_received_in_parts_once_each(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any,
        receiver: Any) -> None:
    app = amazon_app()
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app, ops(receiver),
                               location="amazon-us")
    add(state, shipment("FBA15A", MUG=100, TEE=100))
    await sync(gw)

    order = await reconciled(gw, "FBA15A")
    again = await reconciled(gw, "FBA15A", expect=200)  # the same transfer order
    assert again["id"] == order["id"]
    assert again["sales_order"]["fulfillment_order_id"] == order["sales_order"][
        "fulfillment_order_id"]
    await reconciled(gw, "FBA15A", expect=409, source="WH-WEST")  # not a second one
    assert (order["status"], order["source_location"], order["destination_location"]) == (
        "reconciled", "WH-EAST", "amazon-us")
    assert [(ln["sku"], ln["ordered"], ln["received"]) for ln in order["purchase_order"][
        "lines"]] == [("MUG", 100, 0), ("TEE", 100, 0)]
    fo_id = order["sales_order"]["fulfillment_order_id"]
    fo = await gw.fo(fo_id)  # a sales order like any FO
    assert fo["status"] == "unfulfilled"
    assert {ln["sku"]: ln["requested"] for ln in fo["lines"]} == {"MUG": 100, "TEE": 100}
    assert len((await gw.call("GET", "/api/v1/fulfillment-orders"))["items"]) == 1

    waiting = await gw.call("GET", "/api/v1/transfer-orders?status=reconciled")
    assert [o["id"] for o in waiting["items"]] == [order["id"]]  # not marked shipped yet
    shipped = await gw.call("POST", f"/api/v1/transfer-orders/{order['id']}/ship",
                            {"carrier": "UPS", "tracking_numbers": ["1Z-FBA"]})
    assert (await gw.call("GET", "/api/v1/transfer-orders?status=reconciled"))["items"] == []
    assert [o["status"] for o in (await gw.call(
        "GET", "/api/v1/transfer-orders?connector=amazon"))["items"]] == ["shipped"]
    assert shipped["status"] == "shipped"
    assert shipped["shipped"]["tracking_numbers"] == ["1Z-FBA"]
    assert (await gw.fo(fo_id))["status"] == "fulfilled"  # through the shipment command
    await gw.call("POST", f"/api/v1/transfer-orders/{order['id']}/ship", {
        "carrier": "UPS", "tracking_numbers": ["1Z-FBA"]})  # again: nothing moves twice
    await gw.call("POST", f"/api/v1/transfer-orders/{order['id']}/ship", {
        "carrier": "FedEx", "tracking_numbers": ["999"]}, expect=409)
    assert await levels(gw, "WH-EAST") == {"MUG": (-100, 0), "TEE": (-100, 0)}
    assert await levels(gw, "amazon-us") == {"MUG": (0, 100), "TEE": (0, 100)}

    # Amazon scans in 60 of one SKU, then the other 40 and all of the other
    state.items["FBA15A"][0]["QuantityReceived"] = 60
    state.shipments["FBA15A"]["ShipmentStatus"] = "RECEIVING"
    await sync(gw)
    assert await levels(gw, "amazon-us") == {"MUG": (60, 40), "TEE": (0, 100)}
    await sync(gw)  # the same poll again: nothing changes
    await sync(gw, "receiving")
    assert await levels(gw, "amazon-us") == {"MUG": (60, 40), "TEE": (0, 100)}
    state.items["FBA15A"][0]["QuantityReceived"] = 100
    state.items["FBA15A"][1]["QuantityReceived"] = 100
    await sync(gw, "receiving")
    assert await levels(gw, "amazon-us") == {"MUG": (100, 0), "TEE": (100, 0)}
    assert sorted(await receipts(gw, "FBA15A")) == [
        ("MUG", "receipt", 40, "applied"), ("MUG", "receipt", 60, "applied"),
        ("TEE", "receipt", 100, "applied")]
    view = await gw.call("GET", f"/api/v1/transfer-orders/{order['id']}")
    assert (view["status"], view["purchase_order"]["status"]) == ("received", "received")

    state.shipments["FBA15A"]["ShipmentStatus"] = "CLOSED"
    changed(state, "FBA15A")
    await sync(gw)  # closed, then its items read once more: the purchase order complete
    view = await gw.call("GET", f"/api/v1/transfer-orders/{order['id']}")
    assert (view["status"], view["purchase_order"]["status"]) == ("closed", "closed")
    events = await wait_events(receiver, 5)
    kinds = [e["type"] for e in events]
    assert kinds == ["transfer_order.created", "transfer_order.shipped",
                     "purchase_order.received", "purchase_order.received",
                     "purchase_order.closed"], kinds
    assert events[2]["data"]["units"] == [{"sku": "MUG", "quantity": 60}]
    assert events[4]["data"]["shortfall"] == []
    movements = (await gw.call("GET", "/api/v1/inventory/movements?location=amazon-us&sku=MUG"
                               ))["items"]
    assert [(m["on_hand"], m["in_transit"], m["reason"]) for m in movements] == [
        (0, 100, "transfer_shipped"), (60, -60, "transfer_received"),
        (40, -40, "transfer_received")]
    timeline = [t["kind"] for t in (await gw.fo(fo_id))["timeline"]]
    assert "transfer_order_shipped" in timeline and "purchase_order_closed" in timeline

    for path in ("/api/v1/inventory", "/api/v1/inventory/movements", "/api/v1/inbound-receipts",
                 "/api/v1/transfer-orders"):  # every list pages one by one to the same rows
        whole = (await gw.call("GET", f"{path}?limit=200"))["items"]
        paged, cursor = [], None
        while True:
            page = await gw.call("GET", f"{path}?limit=1" + (f"&cursor={cursor}" if cursor
                                                              else ""))
            paged += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == whole and whole, path
        bad = await gw.call("GET", f"{path}?cursor=bm90LWEtY3Vyc29y", expect=400)
        assert "cursor" in bad["error"]["message"]


async def test_receipts_on_an_unreconciled_shipment_held_then_applied(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    app = amazon_app()
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app)
    add(state, shipment("FBA15H", MUG=10))
    await sync(gw)
    state.items["FBA15H"][0]["QuantityReceived"] = 4
    await sync(gw, "receiving")
    assert await receipts(gw, "FBA15H") == [("MUG", "receipt", 4, "held")]
    held = await gw.call("GET", "/api/v1/inbound-receipts?state=held")
    assert [(r["inbound_shipment_id"], r["quantity"]) for r in held["items"]] == [("FBA15H", 4)]
    assert await levels(gw, "amazon") == {}  # not in the ledger before it is reconciled
    state.items["FBA15H"][0]["QuantityReceived"] = 7
    await sync(gw, "receiving")

    order = await reconciled(gw, "FBA15H")
    assert await receipts(gw, "FBA15H") == [("MUG", "receipt", 4, "applied"),
                                            ("MUG", "receipt", 3, "applied")]
    assert (await gw.call("GET", "/api/v1/inbound-receipts?state=held"))["items"] == []
    assert order["purchase_order"]["lines"][0]["received"] == 7
    assert order["purchase_order"]["status"] == "partially_received"
    assert await levels(gw, "amazon") == {"MUG": (7, -7)}  # received before shipped
    await gw.call("POST", f"/api/v1/transfer-orders/{order['id']}/ship")
    assert await levels(gw, "amazon") == {"MUG": (7, 3)}
    assert await levels(gw, "WH-EAST") == {"MUG": (-10, 0)}


async def test_decrease_over_receipt_and_unplanned_sku_reported_not_applied(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any,
        receiver: Any) -> None:
    app = amazon_app()
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app, ops(receiver))
    order = await shipped(gw, state, "FBA15D", MUG=10, TEE=5)
    mug, tee = state.items["FBA15D"]
    mug["QuantityReceived"], tee["QuantityReceived"] = 6, 7  # TEE: 2 above those shipped
    state.items["FBA15D"].append({"ShipmentId": "FBA15D", "SellerSKU": "CAP",
                                  "QuantityShipped": 0, "QuantityReceived": 3})
    await sync(gw, "receiving")
    mug["QuantityReceived"] = 4  # Amazon's count went down
    await sync(gw, "receiving")
    mug["QuantityReceived"] = 6  # and back: nothing new to count
    await sync(gw, "receiving")
    assert sorted(await receipts(gw, "FBA15D")) == sorted([
        ("MUG", "receipt", 6, "applied"), ("TEE", "receipt", 5, "applied"),
        ("TEE", "over_receipt", 2, "reported"), ("CAP", "unplanned_sku", 3, "reported"),
        ("MUG", "decrease", 2, "reported")])
    assert await levels(gw, "amazon") == {"MUG": (6, 4), "TEE": (5, 0)}  # no CAP, no extra TEE
    reported = await wait_events(receiver, 3, "inventory.discrepancy")
    assert sorted((e["data"]["kind"], e["data"]["sku"], e["data"]["quantity"])
                  for e in reported) == [("decrease", "MUG", 2), ("over_receipt", "TEE", 2),
                                         ("unplanned_sku", "CAP", 3)]
    timeline = (await gw.fo(order["sales_order"]["fulfillment_order_id"]))["timeline"]
    assert sum(t["kind"] == "inventory_discrepancy" for t in timeline) == 3
    listed = await gw.call("GET", "/api/v1/inbound-receipts?state=reported")
    assert len(listed["items"]) == 3


async def test_closed_with_a_shortfall_reported(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any,
        receiver: Any) -> None:
    app = amazon_app()
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app, ops(receiver))
    order = await shipped(gw, state, "FBA15S", MUG=10, TEE=4)
    state.items["FBA15S"][0]["QuantityReceived"] = 8
    state.items["FBA15S"][1]["QuantityReceived"] = 4
    state.shipments["FBA15S"]["ShipmentStatus"] = "CLOSED"
    changed(state, "FBA15S")
    await sync(gw)
    view = await gw.call("GET", f"/api/v1/transfer-orders/{order['id']}")
    assert view["purchase_order"]["status"] == "closed"
    assert [(ln["sku"], ln["received"]) for ln in view["purchase_order"]["lines"]] == [
        ("MUG", 8), ("TEE", 4)]
    assert ("MUG", "shortfall", 2, "reported") in await receipts(gw, "FBA15S")
    [closed] = await wait_events(receiver, 1, "purchase_order.closed")
    assert closed["data"]["shortfall"] == [{"sku": "MUG", "quantity": 2}]
    [short] = await wait_events(receiver, 1, "inventory.discrepancy")
    assert (short["data"]["kind"], short["data"]["quantity"]) == ("shortfall", 2)
    assert await levels(gw, "amazon") == {"MUG": (8, 2), "TEE": (4, 0)}  # 2 for a person
    await sync(gw)  # closed: read no more, report no more
    assert len(await receipts(gw, "FBA15S")) == 3


async def test_reconcile_refused_clearly(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    app = amazon_app()
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app)
    add(state, {**shipment("FBA15C", MUG=1), "ShipmentStatus": "CANCELLED"})
    add(state, {**shipment("FBA15W", MUG=1), "ShipmentStatus": "WORKING"})
    await sync(gw, "shipments")
    await reconciled(gw, "FBA15NONE", expect=404)
    cancelled = await reconciled(gw, "FBA15C", expect=409)
    assert "CANCELLED" in cancelled["error"]["message"]
    no_items = await reconciled(gw, "FBA15W", expect=409)  # items not read yet
    assert "no items" in no_items["error"]["message"]
    bad = await gw.call("POST", "/api/v1/inbound-shipments/FBA15W/reconcile", {}, expect=400)
    assert bad["error"]["problems"][0]["field"] == "source_location"
    add(state, shipment("FBA15X", MUG=1))
    await sync(gw)
    order = await reconciled(gw, "FBA15X")
    await gw.call("POST", f"/api/v1/fulfillment-orders/"
                  f"{order['sales_order']['fulfillment_order_id']}/cancel")
    refused = await gw.call("POST", f"/api/v1/transfer-orders/{order['id']}/ship", expect=409)
    assert "cancelled" in refused["error"]["message"]
    await gw.call("GET", "/api/v1/transfer-orders/to_none", expect=404)
    await gw.call("POST", "/api/v1/transfer-orders/to_none/ship", expect=404)


async def test_two_replicas_reading_one_shipment_at_once_count_each_unit_once(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    if start_fake.backend == "sqlite":
        pytest.skip("one process per SQLite file: no second replica to race")
    app = amazon_app()

    @web.middleware
    async def scan_one_more(request: web.Request, handler: Any) -> Any:
        """Amazon scans one more unit in before each read: no two reads are alike."""
        if request.path.endswith("/items") and "FBA15R" in request.path:
            state.items["FBA15R"][0]["QuantityReceived"] += 1
        return await handler(request)

    app.middlewares.insert(0, scan_one_more)
    one, state, url = await start(start_fake, aiohttp_server, tmp_path, app)
    two = await start_fake(amazon_doc(tmp_path, url), env=AMAZON_ENV)  # the same database
    add(state, shipment("FBA15R", MUG=50))
    await sync(one, "shipments")
    await sync(one, "receiving")  # 1 received
    await reconciled(one, "FBA15R")
    for _ in range(6):
        await asyncio.gather(sync(one, "receiving"), sync(two, "receiving"))
    await one.wait_idle()
    await two.wait_idle()
    final = state.items["FBA15R"][0]["QuantityReceived"]
    kept = await one.call("GET", "/api/v1/inbound-shipments/FBA15R")
    counted = sum(r["quantity"] for r in kept["receipts"] if r["kind"] == "receipt")
    assert counted == kept["items"][0]["received"] <= final  # an older read never counts
    assert final - counted <= 1  # at most the last read, older than another, left out
    assert await levels(one, "amazon") == {"MUG": (counted, -counted)}


async def test_the_console_lists_discrepancies_and_held_receipts(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    import aiohttp

    from connectors.amazon_sp.sandbox import state_of
    from tests.console.conftest import CONSOLE_ENV, Operator

    app = amazon_app()
    server = await aiohttp_server(app)
    doc = amazon_doc(tmp_path, str(server.make_url("")).rstrip("/"))
    doc["console"] = {"tokens_env": "CONSOLE_TOKENS"}
    gw = await start_fake(doc, env={**AMAZON_ENV, **CONSOLE_ENV})
    state = state_of(app)
    order = await shipped(gw, state, "FBA15V", MUG=5)
    add(state, shipment("FBA15U", TEE=3))
    await sync(gw)
    state.items["FBA15V"][0]["QuantityReceived"] = 7  # 2 above those shipped
    state.items["FBA15U"][0]["QuantityReceived"] = 1  # not reconciled: held
    await sync(gw, "receiving")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        op = Operator(gw, session)
        await op.login()
        page = await op.get("/console/stock")
        rows = page[page.index('id="receipts"'):]
        assert "over receipt" in rows and "0 → 7" in rows
        assert order["sales_order"]["fulfillment_order_id"] in rows and "FBA15U" not in rows
        held = await op.get("/console/stock?state=held")
        rows = held[held.index('id="receipts"'):]
        assert "FBA15U" in rows and "not reconciled" in rows and "FBA15V" not in rows
