"""Shopify on each side of a marketplace channel, against its GraphQL sandbox over loopback
HTTP (the other side the scripted fake connector), on both storage backends."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from tests.stores.conftest import (
    SHOP_SECRET,
    MarketplaceGateway,
    ShopifySandbox,
    fake_connector,
    fake_ship,
    marketplace_doc,
    sent,
    shopify_connector,
    soon,
)


async def buyer_gateway(start_market: Any, tmp_path: Any, shopify: ShopifySandbox
                        ) -> MarketplaceGateway:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", shopify_connector("shop", shopify.url), fake_connector("wh")))
    await shopify.control("/hooks", {"url": f"{gw.url}/webhooks/shop"})
    return gw


async def test_buyer_order_by_webhook_and_fulfilments_with_tracking(
        start_market: Any, tmp_path: Any, shopify: ShopifySandbox) -> None:
    gw = await buyer_gateway(start_market, tmp_path, shopify)
    order = await shopify.control("/orders", {"lines": [{"sku": "MUG", "quantity": 2},
                                                        {"sku": "TEE", "quantity": 1}]})
    fo = await gw.only_fo()  # orders/create, verified, then the order read by GraphQL
    assert fo["order_number"] == order["name"]
    assert {ln["sku"]: ln["requested"] for ln in fo["lines"]} == {"MUG": 2, "TEE": 1}

    # two items, two tracking numbers: one Shopify fulfilment carrying both, with the URL
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 2)], ["1Z-A", "1Z-B"])
    state = shopify.state
    number = int(order["id"].rsplit("/", 1)[1])
    await gw.wait_for(soon(lambda: state.orders[number]["fulfillments"]))
    [made] = state.orders[number]["fulfillments"]
    assert [t["number"] for t in made["trackingInfo"]] == ["1Z-A", "1Z-B"]
    assert made["fulfillmentLineItems"][0]["quantity"] == 2

    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"],
                    url="https://track.example/1Z-C")
    await gw.wait_status(fo["id"], "fulfilled")
    await gw.wait_for(soon(lambda: len(state.orders[number]["fulfillments"]) == 2))
    assert state.orders[number]["fulfillments"][1]["trackingInfo"] == [
        {"company": "ups", "number": "1Z-C", "url": "https://track.example/1Z-C"}]
    from connectors.shopify.sandbox import display_status
    assert display_status(state.orders[number]) == "FULFILLED"

    # a void cancels the fulfilment in Shopify; the quantities are open again there
    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"], status="voided",
                    updated_at="2026-12-01T11:00:00Z")
    await gw.wait_for(soon(lambda: state.orders[number]["fulfillments"][1]["status"]
                           == "CANCELLED"))
    assert display_status(state.orders[number]) == "PARTIALLY_FULFILLED"

    async def recorded() -> Any:  # the cancel's result on the link, once it is committed
        link = await gw.link(fo["id"], "origin")
        return sorted(p["status"] for p in link["pushed"].values()) == ["cancelled", "pushed"]

    await gw.wait_for(recorded)


async def test_buyer_single_item_two_numbers_rejected_and_lost_answer_not_doubled(
        start_market: Any, tmp_path: Any, shopify: ShopifySandbox, receiver: Any) -> None:
    gw = await start_market({**marketplace_doc(
        tmp_path / "g.sqlite3", shopify_connector("shop", shopify.url), fake_connector("wh")),
        "subscribers": [{"name": "ops", "url": receiver.url, "secret_env": "SUB_SECRET",
                         "events": ["shipment.rejected"]}]})
    await shopify.control("/hooks", {"url": f"{gw.url}/webhooks/shop"})
    order = await shopify.control("/orders", {"lines": [{"sku": "MUG", "quantity": 1},
                                                        {"sku": "TEE", "quantity": 1}]})
    fo = await gw.only_fo()
    number = int(order["id"].rsplit("/", 1)[1])
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 1)], ["1Z-A", "1Z-B"])
    from tests.conftest import wait_events
    [event] = await wait_events(receiver, 1, "shipment.rejected")
    assert "one item with 2 tracking numbers" in event["data"]["reason"]
    assert event["data"]["connector"] == "shop"

    # the next fulfilment's answer is lost after Shopify made it: the retry finds it
    await shopify.control("/faults", {"path": "/admin", "status": 502, "after": True,
                                      "skip": 1})  # the order's read passes, not the create
    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"])
    link = await gw.wait_for(lambda: _pushed(gw, fo["id"], 2))
    assert 502 in [r["status"] for r in shopify.state.requests]
    assert len(shopify.state.orders[number]["fulfillments"]) == 1
    assert link["last_result"].get("repeated") is True
    statuses = sorted(p["status"] for p in link["pushed"].values())
    assert statuses == ["pushed", "rejected"]


async def _pushed(gw: MarketplaceGateway, fo_id: str, n: int) -> Any:
    link = await gw.link(fo_id, "origin")
    return link if len(link["pushed"]) == n and all(
        p["status"] in ("pushed", "rejected") for p in link["pushed"].values()) else None


async def test_webhook_signatures_and_duplicates(
        start_market: Any, tmp_path: Any, shopify: ShopifySandbox) -> None:
    gw = await buyer_gateway(start_market, tmp_path, shopify)
    order = await shopify.control("/orders", {"lines": [{"sku": "MUG", "quantity": 1}]})
    await gw.only_fo()
    body = (b'{"id": %d, "admin_graphql_api_id": "%s"}'
            % (int(order["id"].rsplit("/", 1)[1]), order["id"].encode()))
    good = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest())
    base = {"X-Shopify-Topic": "orders/updated", "X-Shopify-Webhook-Id": "w-1",
            "Content-Type": "application/json"}
    for headers, expected in (({**base, "X-Shopify-Hmac-Sha256": "AAAA"}, 401),
                              (base, 401),
                              ({**base, "X-Shopify-Hmac-Sha256": good.decode()}, 200),
                              ({**base, "X-Shopify-Hmac-Sha256": good.decode()}, 200)):
        async with gw.session.post(f"{gw.url}/webhooks/shop", data=body,
                                   headers=headers) as resp:
            assert resp.status == expected, await resp.text()
    rows = await gw.sql("SELECT COUNT(*) FROM inbox_events WHERE delivery_key = ?",
                        ("webhook:w-1",))
    assert rows[0][0] == 1  # the repeat stored once, both answered 2xx


async def test_seller_fulfilments_in_one_read_and_throttle_waited_out(
        start_market: Any, tmp_path: Any, shopify: ShopifySandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"), shopify_connector("seller", shopify.url)))
    await gw.fake_order("market", "B1", [("MUG", 2), ("TEE", 1)],
                        ship_to={"name": "Eve End", "city": "Boston", "country": "US"})
    fo = await gw.only_fo()
    await gw.wait_for(lambda: _partner_order_id(gw, fo["id"]))
    order = shopify.order_of(fo["id"])
    assert order["shippingAddress"]["city"] == "Boston"
    number = int(order["id"].rsplit("/", 1)[1])

    await shopify.control(f"/orders/{number}/fulfill", {
        "items": [{"sku": "MUG", "quantity": 2}], "numbers": ["1Z-ONE"],
        "url": "https://track.example/1Z-ONE"})
    shopify.state.bucket.restore = 10.0  # a query's cost takes a second to come back
    shopify.state.bucket.drain(0)  # less than a query costs: THROTTLED, then refilled
    result = await gw.poll_feed("seller", "fulfillments")
    shopify.state.bucket.restore = 50.0
    assert result["read"] == 1
    assert result["requests"] == 2  # the listing throttled once, then again: one page
    await gw.wait_status(fo["id"], "partially_fulfilled")
    await gw.wait_for(soon(lambda: sent("market", "push_fulfillment")))
    [first] = sent("market", "push_fulfillment")
    assert first["shipment"]["tracking_numbers"] == ["1Z-ONE"]
    assert first["shipment"]["tracking_url"] == "https://track.example/1Z-ONE"

    await shopify.control(f"/orders/{number}/fulfill", {
        "items": [{"sku": "TEE", "quantity": 1}], "numbers": ["1Z-TWO"]})
    assert (await gw.poll_feed("seller", "fulfillments"))["requests"] == 1
    await gw.wait_status(fo["id"], "fulfilled")
    assert (await gw.poll_feed("seller", "fulfillments"))["requests"] == 0  # polling stops

    # a correction after shipped: the seller cancels the second fulfilment, fulfils again
    second = shopify.state.orders[number]["fulfillments"][1]["id"].rsplit("/", 1)[1]
    await shopify.control(f"/fulfillments/{second}/cancel")
    await shopify.control(f"/orders/{number}/fulfill", {
        "items": [{"sku": "TEE", "quantity": 1}], "numbers": ["1Z-THREE"]})
    assert (await gw.poll_feed("seller", "corrections"))["read"] == 1
    await gw.wait_for(soon(lambda: sent("market", "cancel_fulfillment")))
    await gw.wait_for(soon(lambda: any(p["shipment"]["tracking_numbers"] == ["1Z-THREE"]
                                       for p in sent("market", "push_fulfillment"))))
    assert (await gw.fo(fo["id"]))["status"] == "fulfilled"


async def _partner_order_id(gw: MarketplaceGateway, fo_id: str) -> Any:
    return (await gw.link(fo_id, "fulfiller")).get("partner_order_id")


async def test_seller_order_cancelled_when_the_fo_is(
        start_market: Any, tmp_path: Any, shopify: ShopifySandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"), shopify_connector("seller", shopify.url)))
    await gw.fake_order("market", "B1", [("MUG", 1)])
    fo = await gw.only_fo()
    await gw.wait_for(lambda: _partner_order_id(gw, fo["id"]))
    await gw.call("POST", f"/api/v1/fulfillment-orders/{fo['id']}/cancel", {})
    order = shopify.order_of(fo["id"])
    await gw.wait_for(soon(lambda: order["cancelledAt"]))
