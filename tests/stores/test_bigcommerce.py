"""BigCommerce on each side of a marketplace channel, against its sandbox over loopback HTTP
(the other side is the scripted fake connector), on both storage backends."""

from __future__ import annotations

import asyncio
from typing import Any

from tests import fake_partner
from tests.stores.conftest import (
    BigCommerceSandbox,
    MarketplaceGateway,
    bigcommerce_connector,
    fake_connector,
    fake_ship,
    marketplace_doc,
    sent,
    soon,
)


async def placed(gw: MarketplaceGateway, bc: BigCommerceSandbox,
                 lines: list[tuple[str, int]]) -> tuple[str, int]:
    """A buyer's order through the gateway into the BigCommerce seller store."""
    await gw.fake_order("market", "B1", lines)
    fo = await gw.only_fo()

    async def pushed() -> Any:
        return (await gw.link(fo["id"], "fulfiller")).get("partner_order_id")

    order_id = await gw.wait_for(pushed)
    assert bc.order_of(fo["id"])["id"] == int(order_id)
    return fo["id"], int(order_id)


def statuses() -> list[str]:
    return [m.payload["new_status"] for m in fake_partner.partner("market").calls
            if m.payload.get("type") == "status_changed"]


async def test_seller_partial_then_complete_shipped_once_and_polling_stops(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        bigcommerce_connector("seller", bigcommerce.url)))
    fo_id, order_id = await placed(gw, bigcommerce, [("MUG", 2), ("TEE", 1)])
    order = bigcommerce.state.orders[order_id]
    assert order["status_id"] == 11 and order["external_source"] == "fulfillment-gateway"

    await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "MUG", "quantity": 2}], "tracking_number": "1Z-ONE"})
    result = await gw.poll_feed("seller", "fulfillments")
    # the listing, then the watched order's products (once) and its shipments
    assert result["requests"] == 3 and result["read"] == 1
    await gw.wait_status(fo_id, "partially_fulfilled")
    await gw.wait_for(soon(lambda: len(sent("market", "push_fulfillment")) == 1))
    first = sent("market", "push_fulfillment")[0]
    assert first["shipment"]["tracking_numbers"] == ["1Z-ONE"]
    assert first["lines"][0]["quantity"] == 2 and first["partner_order_id"] == "B1"

    await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "TEE", "quantity": 1}], "tracking_number": "1Z-TWO"})
    await asyncio.sleep(1.1)  # BigCommerce's stamps are to the second
    result = await gw.poll_feed("seller", "fulfillments")
    assert result["requests"] == 2  # the products are kept from the first read
    await gw.wait_status(fo_id, "fulfilled")
    await gw.wait_for(soon(lambda: "fulfilled" in statuses()))
    assert bigcommerce.state.orders[order_id]["status_id"] == 2
    assert statuses() == ["partially_fulfilled", "fulfilled"]
    assert [p["shipment"]["tracking_numbers"] for p in sent("market", "push_fulfillment")] == [
        ["1Z-ONE"], ["1Z-TWO"]]

    # The FO is done: the 15-minute feed no longer asks about it at all.
    before = len(bigcommerce.state.requests)
    result = await gw.poll_feed("seller", "fulfillments")
    assert result["requests"] == 0 and len(bigcommerce.state.requests) == before
    assert (await gw.link(fo_id, "fulfiller"))["state"] == "watching"
    # the hourly check lists it again (its window overlaps): read already, not read again
    result = await gw.poll_feed("seller", "corrections")
    assert (result["requests"], result["read"], result["unchanged"]) == (1, 0, 1)


async def test_seller_correction_after_shipped_reaches_the_buyer(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        bigcommerce_connector("seller", bigcommerce.url)))
    fo_id, order_id = await placed(gw, bigcommerce, [("MUG", 1)])
    shipped = await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "MUG", "quantity": 1}], "tracking_number": "1Z-WRONG"})
    await gw.poll_feed("seller", "fulfillments")
    await gw.wait_status(fo_id, "fulfilled")
    await gw.wait_for(soon(lambda: len(sent("market", "push_fulfillment")) >= 1))

    # The seller corrects the tracking: deletes the shipment and ships again.
    await bigcommerce.control(f"/orders/{order_id}/shipments/{shipped['id']}/delete")
    await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "MUG", "quantity": 1}], "tracking_number": "1Z-RIGHT"})
    assert (await gw.poll_feed("seller", "fulfillments"))["requests"] == 0
    result = await gw.poll_feed("seller", "corrections")
    assert result["read"] == 1
    await gw.wait_for(soon(lambda: len(sent("market", "cancel_fulfillment")) == 1))
    await gw.wait_for(soon(lambda: any(
        p.get("shipment", {}).get("tracking_numbers") == ["1Z-RIGHT"]
        for p in sent("market", "push_fulfillment"))))
    [cancel] = sent("market", "cancel_fulfillment")
    assert cancel["partner_fulfillment_id"].startswith("F-")
    fo = await gw.fo(fo_id)
    assert fo["status"] == "fulfilled"
    assert sorted(s["status"] for s in fo["shipments"]) == ["shipped", "voided"]



async def buyer_order(gw: MarketplaceGateway, bc: BigCommerceSandbox,
                      products: list[tuple[str, int]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order placed in the BigCommerce buyer store, taken by the orders feed."""
    order = await bc.control("/orders", {
        "products": [{"sku": s, "quantity": q} for s, q in products],
        "shipping_address": {"first_name": "Eve", "last_name": "End", "street_1": "2 Elm St",
                             "city": "Boston", "zip": "02110", "country_iso2": "US"}})
    result = await gw.poll_feed("buyer", "orders")
    assert result["orders"] == 1 and result["requests"] == 3  # listing, products, addresses
    fo = await gw.only_fo()
    return order, fo


async def test_buyer_order_becomes_an_fo_and_fulfilments_go_back(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", bigcommerce_connector("buyer", bigcommerce.url),
        fake_connector("wh")))
    order, fo = await buyer_order(gw, bigcommerce, [("MUG", 2), ("TEE", 1)])
    assert fo["order_number"] == str(order["id"])
    assert {ln["sku"]: ln["requested"] for ln in fo["lines"]} == {"MUG": 2, "TEE": 1}
    fo = await gw.fo(fo["id"])
    assert fo["ship_to"]["city"] == "Boston" and fo["ship_to"]["name"] == "Eve End"
    # polled again: the same order, no second FO
    await gw.poll_feed("buyer", "orders")
    await gw.wait_idle()
    assert len((await gw.call("GET", "/api/v1/fulfillment-orders"))["items"]) == 1

    # two items, two tracking numbers: two BigCommerce shipments, one number each
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 2)], ["1Z-A", "1Z-B"])
    await gw.wait_status(fo["id"], "partially_fulfilled")
    state = bigcommerce.state

    async def shipments(n: int) -> Any:
        return len(state.shipments[order["id"]]) == n

    await gw.wait_for(lambda: shipments(2))
    assert sorted(s["tracking_number"] for s in state.shipments[order["id"]]) == ["1Z-A", "1Z-B"]
    assert all(s["items"][0]["quantity"] == 1 for s in state.shipments[order["id"]])
    assert state.orders[order["id"]]["status_id"] == 3

    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"],
                    url="https://track.example/1Z-C")
    await gw.wait_status(fo["id"], "fulfilled")
    await gw.wait_for(lambda: shipments(3))
    third = state.shipments[order["id"]][2]
    assert (third["tracking_number"], third["tracking_link"], third["shipping_provider"]) == (
        "1Z-C", "https://track.example/1Z-C", "ups")

    async def both_recorded() -> Any:  # the pushes' results on the link, once committed
        link = await gw.link(fo["id"], "origin")
        return link if [p["status"] for p in link["pushed"].values()] == ["pushed", "pushed"] \
            else None

    link = await gw.wait_for(both_recorded)
    assert sorted(len(p["partner_id"].split(",")) for p in link["pushed"].values()) == [1, 2]
    assert state.orders[order["id"]]["status_id"] == 2

    # the seller voids the second: its BigCommerce shipment is deleted
    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"], status="voided",
                    updated_at="2026-12-01T11:00:00Z")
    await gw.wait_for(lambda: shipments(2))
    assert "1Z-C" not in {s["tracking_number"] for s in state.shipments[order["id"]]}


async def test_buyer_one_item_with_two_tracking_numbers_is_rejected(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", bigcommerce_connector("buyer", bigcommerce.url),
        fake_connector("wh")))
    order, fo = await buyer_order(gw, bigcommerce, [("MUG", 1), ("TEE", 1)])
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 1)], ["1Z-A", "1Z-B"])
    await gw.wait_status(fo["id"], "partially_fulfilled")

    async def flagged() -> Any:
        link = await gw.link(fo["id"], "origin")
        return next(iter(link["pushed"].values()), None)

    flag = await gw.wait_for(flagged)
    assert flag["status"] == "rejected" and "2 tracking numbers" in flag["reason"]
    timeline = (await gw.fo(fo["id"]))["timeline"]
    assert any(t["kind"] == "fulfillment_rejected" for t in timeline)
    await asyncio.sleep(0.3)
    assert bigcommerce.state.shipments[order["id"]] == []
    assert bigcommerce.calls("POST", f"/v2/orders/{order['id']}/shipments") == 0


async def test_webhooks_verified_before_anything_is_stored(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", bigcommerce_connector("buyer", bigcommerce.url),
        fake_connector("wh")))
    await bigcommerce.control("/hooks", {"url": f"{gw.url}/webhooks/buyer"})
    order = await bigcommerce.control("/orders", {"products": [{"sku": "MUG", "quantity": 1}]})
    fo = await gw.only_fo()  # the signed store/order/created webhook, then the order read
    assert fo["order_number"] == str(order["id"])
    [sent] = bigcommerce.state.hooks_sent
    assert sent["status"] == 200

    body = b'{"scope":"store/order/created","data":{"type":"order","id":1},"hash":"x"}'
    signed = _signed(body)
    for headers, expected in (
            ({**signed, "webhook-signature": "v1,AAAA"}, 401),  # bad
            ({}, 401),  # missing
            ({**signed, "webhook-timestamp": "1000000000"}, 401),  # too old
            (signed, 200)):  # good: stored and processed (the order read from the store)
        async with gw.session.post(f"{gw.url}/webhooks/buyer", data=body,
                                   headers=headers) as resp:
            assert resp.status == expected, await resp.text()
    rows = await gw.sql("SELECT COUNT(*) FROM inbox_events WHERE connector = ?", ("buyer",))
    assert rows[0][0] == 2  # the sandbox's and the good one; none of the refused
    await gw.wait_idle()  # the good one names an order the store no longer has: nothing
    dead = await gw.call("GET", "/api/v1/dead-letters")
    assert dead["items"] == []


def _signed(body: bytes) -> dict[str, str]:
    import base64
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    from tests.stores.conftest import BC_SECRET

    moment = datetime.now(UTC)
    signature = Webhook(base64.b64encode(BC_SECRET.encode()).decode()).sign(
        "msg_test", moment, body.decode())
    return {"webhook-id": "msg_test", "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature, "Content-Type": "application/json"}


async def test_rate_limit_waited_out_and_lost_answers_not_doubled(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        bigcommerce_connector("seller", bigcommerce.url)))
    # the store's quota used up by another app: 429 with the reset header, waited out
    bigcommerce.state.quota.limit = 2
    bigcommerce.state.quota.window_seconds = 1.0
    bigcommerce.state.quota.used = 2
    bigcommerce.state.quota.started = __import__("time").monotonic()
    # and the order's creation carried out, its answer lost: the retry finds it
    await bigcommerce.control("/faults", {"path": "/v2/orders", "method": "POST",
                                          "status": 502, "after": True})
    await gw.fake_order("market", "B1", [("MUG", 1)])
    fo = await gw.only_fo()

    async def pushed() -> Any:
        return (await gw.link(fo["id"], "fulfiller")).get("partner_order_id")

    await gw.wait_for(pushed, within=15)
    assert len([o for o in bigcommerce.state.orders.values()
                if o.get("external_id") == fo["id"]]) == 1
    statuses = [r["status"] for r in bigcommerce.state.requests]
    assert 429 in statuses and 502 in statuses
    metrics = await (await gw.session.get(f"{gw.url}/metrics")).text()
    assert 'gateway_partner_rate_limited_total{connector="seller"}' in metrics


async def test_buyer_lost_shipment_answer_not_doubled(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", bigcommerce_connector("buyer", bigcommerce.url),
        fake_connector("wh")))
    order, fo = await buyer_order(gw, bigcommerce, [("MUG", 2)])
    # the first shipment is made, its answer lost: the retry finds it by its key
    await bigcommerce.control("/faults", {"path": f"/v2/orders/{order['id']}/shipments",
                                          "method": "POST", "status": 502, "after": True})
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 2)], ["1Z-A", "1Z-B"])

    async def pushed() -> Any:
        link = await gw.link(fo["id"], "origin")
        return next((p for p in link["pushed"].values() if p["status"] == "pushed"), None)

    entry = await gw.wait_for(pushed)
    made = bigcommerce.state.shipments[order["id"]]
    assert sorted(s["tracking_number"] for s in made) == ["1Z-A", "1Z-B"]
    assert sorted(entry["partner_id"].split(",")) == sorted(str(s["id"]) for s in made)
    assert 502 in [r["status"] for r in bigcommerce.state.requests]


async def test_seller_order_linked_by_reference_not_pushed(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        bigcommerce_connector("seller", bigcommerce.url, place_orders="by_reference")))
    # the platforms share the order: the seller's copy carries the buyer's order number
    shared = await bigcommerce.control("/orders", {"products": [{"sku": "MUG", "quantity": 1}],
                                                   "external_id": "B-B1"})
    await gw.fake_order("market", "B1", [("MUG", 1)])
    fo = await gw.only_fo()

    async def linked() -> Any:
        return (await gw.link(fo["id"], "fulfiller")).get("partner_order_id")

    assert await gw.wait_for(linked) == str(shared["id"])
    assert bigcommerce.calls("POST", "/v2/orders") == 0 and len(bigcommerce.state.orders) == 1
    await bigcommerce.control(f"/orders/{shared['id']}/ship", {
        "items": [{"sku": "MUG", "quantity": 1}], "tracking_number": "1Z-SHARED"})
    await gw.poll_feed("seller", "fulfillments")
    await gw.wait_status(fo["id"], "fulfilled")

    # an order the seller's store does not have (yet): retried, then a dead letter saying so
    await gw.fake_order("market", "B2", [("MUG", 1)])

    async def dead() -> Any:
        items = (await gw.call("GET", "/api/v1/dead-letters"))["items"]
        return items[0] if items else None

    letter = await gw.wait_for(dead)
    assert "no bigcommerce order with external_id = B-B2 yet" in str(letter)


async def test_seller_order_cancelled_when_the_buyer_cancels(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        bigcommerce_connector("seller", bigcommerce.url)))
    fo_id, order_id = await placed(gw, bigcommerce, [("MUG", 1)])
    await gw.fake_order("market", "B1", [("MUG", 1)], updated_at="2026-12-01T11:00:00Z",
                        status="cancelled")
    await gw.wait_status(fo_id, "cancelled")

    async def cancelled() -> Any:
        await asyncio.sleep(0)
        return bigcommerce.state.orders[order_id]["status_id"] == 5

    await gw.wait_for(cancelled)
