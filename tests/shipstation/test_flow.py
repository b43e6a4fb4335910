"""End to end through loopback HTTP: sandbox webhooks and polls become reconciled FO statuses."""

from __future__ import annotations

import orjson
from aiohttp import web

from connectors.shipstation.pacific import pacific_stamp
from tests.shipstation.conftest import Sandbox, ShipStationGateway

SKU = "TSHIRT-BLK-M"


def status_changes(fo: dict) -> list[tuple[str, str]]:
    return [(t["from_status"], t["to_status"]) for t in fo["timeline"]
            if t["kind"] == "status_changed"]


async def split_order(sandbox: Sandbox, fo_id: str) -> list[dict]:
    order = await sandbox.order("1001", [(SKU, 10)], order_key=fo_id)
    result = await sandbox.control(f"/orders/{order['orderId']}/split", {
        "parts": [[{"sku": SKU, "quantity": 6}], [{"sku": SKU, "quantity": 4}]]})
    return result["orders"]


async def test_golden_split_by_webhooks(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    await sandbox.subscribe(gw.webhook_url)
    fo = await gw.create_fo([(SKU, 10)], order_number="1001", channel="wholesale")
    assert fo["status"] == "unfulfilled"
    first, second = await split_order(sandbox, fo["id"])
    assert (first["orderNumber"], second["orderNumber"]) == ("1001-1", "1001-2")

    shipped = await sandbox.ship(first["orderId"])
    assert [d["status"] for d in shipped["webhooks"]] == [200]
    fo = await gw.wait_status(fo["id"], "partially_fulfilled")
    assert fo["lines"][0]["requested"] == 10 and fo["lines"][0]["fulfilled"] == 6

    await sandbox.ship(second["orderId"])
    fo = await gw.wait_status(fo["id"], "fulfilled")
    assert fo["lines"] == [{"line_id": "1", "sku": SKU, "requested": 10, "fulfilled": 10}]
    assert sorted(s["order_refs"][2]["value"] for s in fo["shipments"]) == ["1001-1", "1001-2"]
    assert status_changes(fo) == [("unfulfilled", "partially_fulfilled"),
                                  ("partially_fulfilled", "fulfilled")]
    # The resource_url asked for no items; the gateway asked again with them.
    fetched = [r for r in sandbox.state.requests if r["path"] == "/shipments"]
    assert fetched and all(r["query"]["includeShipmentItems"] == "true" for r in fetched)


async def test_golden_split_by_polling_only(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    fo = await gw.create_fo([(SKU, 10)], order_number="1001")
    first, second = await split_order(sandbox, fo["id"])
    await sandbox.ship(first["orderId"], notify=False)
    result = await gw.poll()
    assert result["records"] == 1 and result["new_events"] == 1
    fo = await gw.wait_status(fo["id"], "partially_fulfilled")
    await sandbox.ship(second["orderId"], notify=False)
    await gw.poll()
    fo = await gw.wait_status(fo["id"], "fulfilled")
    assert fo["lines"][0]["fulfilled"] == 10
    assert not sandbox.state.deliveries  # no webhook was involved


async def test_one_order_several_shipments(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    await sandbox.subscribe(gw.webhook_url)
    fo = await gw.create_fo([(SKU, 5), ("MUG", 2)], order_number="1002")
    order = await sandbox.order("1002", [(SKU, 5), ("MUG", 2)], order_key=fo["id"])
    await sandbox.ship(order["orderId"], [(SKU, 5)])
    fo = await gw.wait_status(fo["id"], "partially_fulfilled")
    await sandbox.ship(order["orderId"], [("MUG", 2)])
    fo = await gw.wait_status(fo["id"], "fulfilled")
    assert {ln["sku"]: ln["fulfilled"] for ln in fo["lines"]} == {SKU: 5, "MUG": 2}
    assert all(s["match_rule"] == "fulfillment_order_id" for s in fo["shipments"])


async def test_merge_allocates_oldest_fo_first(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    await sandbox.subscribe(gw.webhook_url)
    older = await gw.create_fo([(SKU, 3)], order_number="2001")
    newer = await gw.create_fo([(SKU, 2), ("MUG", 1)], order_number="2002")
    a = await sandbox.order("2001", [(SKU, 3)], order_key=older["id"])
    b = await sandbox.order("2002", [(SKU, 2), ("MUG", 1)], order_key=newer["id"])
    survivor = await sandbox.control("/orders/merge", {"orderIds": [a["orderId"], b["orderId"]]})
    assert survivor["advancedOptions"]["mergedIds"] == [b["orderId"]]
    # One box with 4 of the 5 shirts and the mug: the older FO is filled first.
    await sandbox.ship(survivor["orderId"], [(SKU, 4), ("MUG", 1)])
    older_fo = await gw.wait_status(older["id"], "fulfilled")
    newer_fo = await gw.wait_status(newer["id"], "partially_fulfilled")
    assert older_fo["lines"][0]["fulfilled"] == 3
    assert {ln["sku"]: ln["fulfilled"] for ln in newer_fo["lines"]} == {SKU: 1, "MUG": 1}
    shipment = older_fo["shipments"][0]
    assert sorted(shipment["fulfillment_order_ids"]) == sorted([older["id"], newer["id"]])


async def test_overshipment_is_kept_and_reported(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    fo = await gw.create_fo([(SKU, 2)], order_number="3001")
    order = await sandbox.order("3001", [(SKU, 5)], order_key=fo["id"])
    await sandbox.ship(order["orderId"], notify=False)
    await gw.poll()
    fo = await gw.wait_status(fo["id"], "fulfilled")
    assert fo["lines"][0]["fulfilled"] == 2
    assert fo["shipments"][0]["overshipped"] == {SKU: 3}


async def test_void_then_reship(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    await sandbox.subscribe(gw.webhook_url)
    fo = await gw.create_fo([(SKU, 4)], order_number="4001")
    order = await sandbox.order("4001", [(SKU, 4)], order_key=fo["id"])
    shipped = await sandbox.ship(order["orderId"])
    await gw.wait_status(fo["id"], "fulfilled")

    # A voided label fires no webhook: only the poll (voidDate window) learns of it.
    await sandbox.control(f"/shipments/{shipped['shipment']['shipmentId']}/void")
    await gw.poll()
    fo_after_void = await gw.wait_status(fo["id"], "unfulfilled")
    assert fo_after_void["lines"][0]["fulfilled"] == 0
    voided = fo_after_void["shipments"][0]
    assert voided["status"] == "voided" and voided["allocations"] == []

    relabel = await sandbox.control(f"/shipments/{shipped['shipment']['shipmentId']}/relabel")
    assert relabel["shipment"]["shipmentId"] != shipped["shipment"]["shipmentId"]
    fo = await gw.wait_status(fo["id"], "fulfilled")
    assert sorted(s["status"] for s in fo["shipments"]) == ["shipped", "voided"]
    assert status_changes(fo) == [("unfulfilled", "fulfilled"), ("fulfilled", "unfulfilled"),
                                  ("unfulfilled", "fulfilled")]


async def test_duplicate_webhook_does_not_double_count(gw: ShipStationGateway,
                                                       sandbox: Sandbox) -> None:
    fo = await gw.create_fo([(SKU, 10)], order_number="5001")
    order = await sandbox.order("5001", [(SKU, 10)], order_key=fo["id"])
    shipped = await sandbox.ship(order["orderId"], [(SKU, 6)], notify=False)
    body = {"resource_url": f"{sandbox.url}/shipments?storeID=1&batchId="
                            f"{shipped['shipment']['batchNumber']}&includeShipmentItems=False",
            "resource_type": "SHIP_NOTIFY"}
    for _ in range(3):
        async with gw.session.post(gw.webhook_url, json=body) as resp:
            assert resp.status == 200
    await gw.wait_status(fo["id"], "partially_fulfilled")
    # The same shipment arriving by poll as well is stored once.
    await gw.poll()
    await gw.wait_idle()
    fo = await gw.fo(fo["id"])
    assert fo["lines"][0]["fulfilled"] == 6
    assert len(fo["shipments"]) == 1
    assert await gw.sql("SELECT COUNT(*) FROM inbox_events WHERE kind = 'webhook'") == [(1,)]
    assert await gw.sql("SELECT COUNT(*) FROM shipments") == [(1,)]


async def test_unmatched_then_fo_created_later(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    order = await sandbox.order("6001", [(SKU, 2)])  # ShipStation made up its own orderKey
    await sandbox.ship(order["orderId"], notify=False)
    await gw.poll()
    await gw.wait_idle()
    page = await gw.call("GET", "/api/v1/unmatched-shipments")
    assert len(page["items"]) == 1
    unmatched = page["items"][0]
    assert unmatched["unmatched_reason"] == "no_fulfillment_order_matches"
    assert unmatched["candidates"] == []

    fo = await gw.create_fo([(SKU, 2)], order_number="6001")
    assert fo["status"] == "fulfilled"  # rule 5: unmatched shipments are tried again at once
    assert fo["shipments"][0]["match_rule"] == "reference"
    assert (await gw.call("GET", "/api/v1/unmatched-shipments"))["items"] == []


async def test_ambiguous_reference_waits_with_candidates(gw: ShipStationGateway,
                                                         sandbox: Sandbox) -> None:
    a = await gw.create_fo([(SKU, 1)], order_number="7001", channel="web")
    b = await gw.create_fo([(SKU, 1)], order_number="7001", channel="wholesale")
    order = await sandbox.order("7001", [(SKU, 1)])
    await sandbox.ship(order["orderId"], notify=False)
    await gw.poll()
    await gw.wait_idle()
    [item] = (await gw.call("GET", "/api/v1/unmatched-shipments"))["items"]
    assert item["unmatched_reason"] == "ambiguous_reference"
    assert sorted(item["candidates"]) == sorted([a["id"], b["id"]])

    matched = await gw.call("POST", f"/api/v1/unmatched-shipments/{item['id']}/match",
                            {"fulfillment_order_ids": [b["id"]]})
    assert matched["match_rule"] == "manual" and matched["fulfillment_order_ids"] == [b["id"]]
    assert (await gw.fo(b["id"]))["status"] == "fulfilled"
    assert (await gw.fo(a["id"]))["status"] == "unfulfilled"
    again = await gw.call("POST", f"/api/v1/unmatched-shipments/{item['id']}/match",
                          {"fulfillment_order_ids": [a["id"]]}, expect=409)
    assert again["error"]["code"] == "conflict"


async def test_manual_match_errors(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    order = await sandbox.order("8001", [(SKU, 1)])
    await sandbox.ship(order["orderId"], notify=False)
    await gw.poll()
    await gw.wait_idle()
    [item] = (await gw.call("GET", "/api/v1/unmatched-shipments"))["items"]
    missing = await gw.call("POST", f"/api/v1/unmatched-shipments/{item['id']}/match",
                            {"fulfillment_order_ids": ["fo_nope"]}, expect=404)
    assert "fo_nope" in missing["error"]["message"]
    bad = await gw.call("POST", f"/api/v1/unmatched-shipments/{item['id']}/match", {},
                        expect=400)
    assert bad["error"]["code"] == "bad_request"
    await gw.call("POST", "/api/v1/unmatched-shipments/shp_nope/match",
                  {"fulfillment_order_ids": ["x"]}, expect=404)


async def test_marked_shipped_order_arrives_through_fulfillments(gw: ShipStationGateway,
                                                                 sandbox: Sandbox) -> None:
    fo = await gw.create_fo([(SKU, 3)], order_number="9001")
    order = await sandbox.order("9001", [(SKU, 3)], order_key=fo["id"])
    await sandbox.control(f"/orders/{order['orderId']}/mark-shipped", {"notify": False})
    result = await gw.poll()
    stats = result["feeds"]["shipments"]
    assert stats["fulfillments"] == 1 and stats["shipments_created"] == 0
    fo = await gw.wait_status(fo["id"], "fulfilled")
    assert fo["shipments"][0]["external_id"].startswith("fulfillment:")


async def test_poll_overlap_catches_late_shipment_once(gw: ShipStationGateway,
                                                       sandbox: Sandbox) -> None:
    from datetime import UTC, datetime, timedelta

    fo = await gw.create_fo([(SKU, 2)], order_number="9101")
    order = await sandbox.order("9101", [(SKU, 2)], order_key=fo["id"])
    first = await gw.poll()
    assert first["records"] == 0
    # A label created 10 minutes ago that only now becomes visible: before the cursor.
    late = pacific_stamp(datetime.now(UTC) - timedelta(minutes=10))
    await sandbox.ship(order["orderId"], notify=False, createDate=late)
    second = await gw.poll()
    assert second["records"] == 1 and second["new_events"] == 1
    third = await gw.poll()
    assert third["records"] == 1 and third["new_events"] == 0
    fo = await gw.wait_status(fo["id"], "fulfilled")
    assert len(fo["shipments"]) == 1 and fo["lines"][0]["fulfilled"] == 2
    shipped_at = datetime.fromisoformat(fo["shipments"][0]["shipped_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - timedelta(minutes=10) - shipped_at).total_seconds()) < 5


# Moved from the API tests: what GET /connectors and the scheduler show for ShipStation.

async def test_shipments_listing_by_fo(gw: ShipStationGateway, sandbox: Sandbox) -> None:
    fo = await gw.create_fo([("A", 2)], order_number="S1")
    order = await sandbox.order("S1", [("A", 2)], order_key=fo["id"])
    await sandbox.ship(order["orderId"], [("A", 1)], notify=False)
    await sandbox.ship(order["orderId"], [("A", 1)], notify=False)
    await gw.poll()
    await gw.wait_status(fo["id"], "fulfilled")
    page = await gw.call("GET", f"/api/v1/shipments?fulfillment_order_id={fo['id']}")
    assert len(page["items"]) == 2
    one = await gw.call("GET", f"/api/v1/shipments/{page['items'][0]['id']}")
    assert one["allocations"] == [{"fo_id": fo["id"], "line_id": "1", "sku": "A", "quantity": 1}]
    assert one["tracking_numbers"] and one["carrier"] == "ups"
    everything = await gw.call("GET", "/api/v1/shipments?limit=1")
    assert len(everything["items"]) == 1 and everything["next_cursor"]


async def test_connectors_listing(gw: ShipStationGateway) -> None:
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    assert item["name"] == "shipstation" and item["enabled"]
    assert item["webhooks"] and item["operations"] == ["cancel_order", "push_order"]
    assert item["rate_limit"]["budget_per_window"] == 40
    [feed] = item["feeds"]
    assert feed["name"] == "shipments" and feed["enabled"] and feed["interval_minutes"] == 15
    assert feed["last_poll_at"] is None and feed["cursor"] is None
    await gw.poll()
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    [feed] = item["feeds"]
    assert feed["last_poll_at"] and feed["cursor"] and not feed["running"]
    await gw.call("POST", "/api/v1/connectors/shipstation/poll?feed=shipments")
    missing = await gw.call("POST", "/api/v1/connectors/shipstation/poll?feed=nope", expect=404)
    assert "shipments" in missing["error"]["message"]  # names the feeds it has
    await gw.call("POST", "/api/v1/connectors/shipstation/poll?fed=x", expect=400)


async def test_scheduler_polls_by_itself(start_gateway, sandbox: Sandbox) -> None:
    gw = await start_gateway(first_poll_delay=0.2)
    fo = await gw.create_fo([("A", 1)], order_number="P1")
    order = await sandbox.order("P1", [("A", 1)], order_key=fo["id"])
    await sandbox.ship(order["orderId"], notify=False)
    await gw.wait_status(fo["id"], "fulfilled", within=10)
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    assert item["feeds"][0]["last_poll_at"] is not None


async def test_webhooks_it_cannot_act_on_are_refused_at_intake(
        gw: ShipStationGateway, sandbox: Sandbox, aiohttp_server) -> None:
    """A body that names another server, another path, or no resource at all is answered
    400 and stored nowhere: never fetched, no credentials leave, nothing retried for a day."""
    seen: list[str] = []

    async def trap(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"shipments": [], "page": 1, "pages": 1})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", trap)
    other = await aiohttp_server(app)
    origin = sandbox.url
    hostile = [
        "https://evil.example.com/shipments?batchId=1",
        f"http://127.0.0.1:{other.port}/shipments?batchId=1".replace("127.0.0.1", "localhost"),
        f"http://user:pw@127.0.0.1:{other.port}/shipments",
        f"http://127.0.0.1:{other.port}/admin/export",
        "file:///etc/passwd",
        f"{origin}/shipmentsXYZ?batchId=1",
        f"{origin}/shipments/",
        f"{origin}/shipments/%2E%2E/orders",
        f"{origin}/shipments/..%2Forders",
        f"{origin}/shipments/../orders",
        f"{origin}/fulfillments%2F..%2Fusers",
        f"{origin}/orders?storeID=1",
        "",
        "not a url",
        f"{origin}/shipments?batchId=1#x",  # the same prefix as the good one below, and more
        f"{origin}/shipments#x?batchId=1",
        f"{origin}/shipments?" + "b" * 2048,
    ]
    # A good one first: its prefix is then known safe, and each refusal must still hold.
    good = {"resource_url": f"{origin}/shipments?batchId=999", "resource_type": "SHIP_NOTIFY"}
    async with gw.session.post(gw.webhook_url, data=orjson.dumps(good)) as resp:
        assert resp.status == 200
    bodies = [{"resource_url": url, "resource_type": "SHIP_NOTIFY"} for url in hostile] + [
        [], "text", 7, None, {"resource_type": "SHIP_NOTIFY"},
        {"resource_url": 12, "resource_type": "SHIP_NOTIFY"},
        {"resource_url": f"{origin}/shipments", "resource_type": ["SHIP_NOTIFY"]}]
    for body in bodies:
        async with gw.session.post(gw.webhook_url, data=orjson.dumps(body)) as resp:
            answer = await resp.json()
            assert resp.status == 400, (body, answer)
            assert answer["error"]["code"] == "bad_request"
    # ShipStation's own events the gateway does not act on: acknowledged, not stored
    for kind in ("ORDER_NOTIFY", "ITEM_ORDER_NOTIFY"):
        body = {"resource_url": f"{origin}/orders?storeID=1&importBatch=x", "resource_type": kind}
        async with gw.session.post(gw.webhook_url, data=orjson.dumps(body)) as resp:
            assert resp.status == 200
    assert await gw.sql("SELECT COUNT(*) FROM inbox_events") == [(1,)]  # the good one
    assert seen == []
    async with gw.session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert f'result="malformed"}} {len(bodies)}.0' in text
    assert 'result="ignored"} 2.0' in text


async def test_paging_follows_every_page(start_gateway, sandbox: Sandbox) -> None:
    gw: ShipStationGateway = await start_gateway(page_size=2)
    fo = await gw.create_fo([("A", 5)], order_number="PG1")
    order = await sandbox.order("PG1", [("A", 5)], order_key=fo["id"])
    for _ in range(5):
        await sandbox.ship(order["orderId"], [("A", 1)], notify=False)
    result = await gw.poll()
    assert result["feeds"]["shipments"]["shipments_created"] == 5
    pages = [r["query"].get("page") for r in sandbox.state.requests
             if r["path"] == "/shipments" and "createDateStart" in r["query"]]
    assert pages == ["1", "2", "3"]
    await gw.wait_status(fo["id"], "fulfilled")
