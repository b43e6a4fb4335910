"""Magento 2 on each side of a marketplace channel, against its sandbox over loopback HTTP (the
other side the scripted fake connector), on both storage backends. Magento sends no webhooks
and cannot cancel a shipment: a correction replaces a shipment's tracks."""

from __future__ import annotations

from typing import Any

from tests.stores.conftest import (
    MagentoSandbox,
    fake_connector,
    fake_ship,
    magento_connector,
    marketplace_doc,
    sent,
    soon,
)


async def test_seller_shipments_and_a_correction_by_new_tracks(
        start_market: Any, tmp_path: Any, magento: MagentoSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        magento_connector("seller", magento.url)))
    await gw.fake_order("market", "B1", [("MUG", 2), ("TEE", 1)],
                        ship_to={"name": "Eve End", "city": "Boston", "country": "US"})
    fo = await gw.only_fo()

    async def placed() -> Any:
        return (await gw.link(fo["id"], "fulfiller")).get("partner_order_id")

    order_id = await gw.wait_for(placed)
    order = magento.order_of(fo["id"])
    assert str(order["entity_id"]) == order_id
    address = order["extension_attributes"]["shipping_assignments"][0]["shipping"]["address"]
    assert address["city"] == "Boston"

    await magento.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "MUG", "qty": 2}],
        "tracks": [{"track_number": "1Z-MUG", "title": "UPS", "carrier_code": "ups"}]})
    result = await gw.poll_feed("seller", "fulfillments")
    assert (result["read"], result["requests"]) == (1, 2)  # the listing, its shipments
    await gw.wait_status(fo["id"], "partially_fulfilled")
    second = await magento.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "TEE", "qty": 1}],
        "tracks": [{"track_number": "1Z-TEE-TYPO", "title": "UPS", "carrier_code": "ups"}]})
    await gw.poll_feed("seller", "fulfillments")
    await gw.wait_status(fo["id"], "fulfilled")
    # shipped but not invoiced: Magento keeps it processing (the gateway does not invoice)
    assert magento.state.orders[int(order_id)]["status"] == "processing"
    assert (await gw.poll_feed("seller", "fulfillments"))["requests"] == 0

    await magento.control(f"/shipments/{second['entity_id']}/retrack", {
        "tracks": [{"track_number": "1Z-TEE", "title": "UPS", "carrier_code": "ups"}]})
    assert (await gw.poll_feed("seller", "corrections"))["read"] == 1
    await gw.wait_for(soon(lambda: sent("market", "cancel_fulfillment")))
    await gw.wait_for(soon(lambda: any(p["shipment"]["tracking_numbers"] == ["1Z-TEE"]
                                         for p in sent("market", "push_fulfillment"))))
    assert (await gw.fo(fo["id"]))["status"] == "fulfilled"


async def test_buyer_shipments_and_a_void_replacing_tracks(
        start_market: Any, tmp_path: Any, magento: MagentoSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", magento_connector("shop", magento.url), fake_connector("wh")))
    order = await magento.control("/orders", {"lines": [{"sku": "MUG", "quantity": 2},
                                                        {"sku": "TEE", "quantity": 1}]})
    result = await gw.poll_feed("shop", "orders")
    assert (result["orders"], result["requests"]) == (1, 1)
    fo = await gw.only_fo()
    assert fo["order_number"] == order["increment_id"]

    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 2)], ["1Z-A", "1Z-B"])
    state = magento.state
    await gw.wait_for(soon(lambda: state.shipments))
    [shipment] = state.shipments.values()
    assert [t["track_number"] for t in shipment["tracks"]] == ["1Z-A", "1Z-B"]
    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"])
    await gw.wait_status(fo["id"], "fulfilled")
    await gw.wait_for(soon(lambda: state.orders[order["entity_id"]]["status"] == "complete"))

    # the second label voided and relabelled: Magento's shipment keeps its items, its
    # tracks are replaced (no second shipment of shipped items)
    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"], status="voided",
                    updated_at="2026-12-01T11:00:00Z")
    tee = next(s for s in state.shipments.values() if s["items"][0]["sku"] == "TEE")
    await gw.wait_for(soon(lambda: not tee["tracks"]))
    await fake_ship(gw, "wh", fo["id"], "S3", [("TEE", 1)], ["1Z-D"])
    await gw.wait_for(soon(lambda: [t["track_number"] for t in tee["tracks"]] == ["1Z-D"]))
    assert len(state.shipments) == 2


async def test_listing_pages_by_total_count_and_a_lost_answer(
        start_market: Any, tmp_path: Any, magento: MagentoSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", magento_connector("shop", magento.url, page_size=2),
        fake_connector("wh")))
    for n in range(5):
        await magento.control("/orders", {"lines": [{"sku": f"SKU{n}", "quantity": 1}]})
    await magento.control("/faults", {"path": "/rest/default/V1/orders", "method": "GET",
                                      "status": 429})  # a proxy's limit, with Retry-After
    result = await gw.poll_feed("shop", "orders")
    # three pages of 2, 2 and 1 (and the 429 waited out); the old versions' repeated last
    # page never read as new
    assert (result["orders"], result["requests"]) == (5, 4)
    assert [r["status"] for r in magento.state.requests][:2] == [429, 200]
    await gw.wait_idle()
    assert len((await gw.call("GET", "/api/v1/fulfillment-orders"))["items"]) == 5

    # a shipment made, its answer lost: the retry finds it by its tracks
    fo = (await gw.call("GET", "/api/v1/fulfillment-orders"))["items"][0]
    await magento.control("/faults", {"path": "/rest/default/V1/order/", "method": "POST",
                                      "status": 502, "after": True})
    await fake_ship(gw, "wh", fo["id"], "S1", [(fo["lines"][0]["sku"], 1)], ["1Z-X"])

    async def pushed() -> Any:
        link = await gw.link(fo["id"], "origin")
        return next((p for p in link["pushed"].values() if p["status"] == "pushed"), None)

    await gw.wait_for(pushed)
    assert len(magento.state.shipments) == 1
    assert 502 in [r["status"] for r in magento.state.requests]
