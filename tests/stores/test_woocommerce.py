"""WooCommerce on each side of a marketplace channel, against its sandbox over loopback HTTP
(the other side the scripted fake connector), on both storage backends."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from tests.stores.conftest import (
    WOO_HOOK,
    MarketplaceGateway,
    WooSandbox,
    fake_connector,
    fake_ship,
    marketplace_doc,
    sent,
    soon,
    woocommerce_connector,
)


async def seller(start_market: Any, tmp_path: Any, woo: WooSandbox,
                 lines: list[tuple[str, int]], **options: Any
                 ) -> tuple[MarketplaceGateway, str, dict[str, Any]]:
    for sku, _ in lines:
        await woo.control("/products", {"sku": sku})
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        woocommerce_connector("seller", woo.url, **options)))
    await gw.fake_order("market", "B1", lines)
    fo = await gw.only_fo()

    async def placed() -> Any:
        return (await gw.link(fo["id"], "fulfiller")).get("partner_order_id")

    await gw.wait_for(placed)
    return gw, fo["id"], woo.order_of(fo["id"])


async def test_seller_per_item_tracking_partial_then_complete_and_a_correction(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    gw, fo_id, order = await seller(start_market, tmp_path, woocommerce,
                                    [("MUG", 2), ("TEE", 1)])
    assert order["status"] == "processing"
    items = {i["sku"]: i["id"] for i in order["line_items"]}
    await woocommerce.control(f"/orders/{order['id']}/track", {
        "tracking_number": "1Z-MUG", "tracking_provider": "UPS",
        "products_list": [{"item_id": items["MUG"], "qty": 2}]})
    result = await gw.poll_feed("seller", "fulfillments")
    assert (result["read"], result["requests"]) == (1, 1)  # the order listing carries it all
    await gw.wait_status(fo_id, "partially_fulfilled")
    await gw.wait_for(soon(lambda: sent("market", "push_fulfillment")))
    [first] = sent("market", "push_fulfillment")
    assert first["shipment"]["tracking_numbers"] == ["1Z-MUG"]
    assert first["shipment"]["tracking_url"] == "https://track.example/ups/1Z-MUG"

    tee = await woocommerce.control(f"/orders/{order['id']}/track", {
        "tracking_number": "1Z-TEE", "tracking_provider": "UPS", "complete": True,
        "products_list": [{"item_id": items["TEE"], "qty": 1}]})
    await gw.poll_feed("seller", "fulfillments")
    await gw.wait_status(fo_id, "fulfilled")
    assert (await gw.poll_feed("seller", "fulfillments"))["requests"] == 0

    # corrected after completion: the TEE's number deleted, another added
    await woocommerce.control(f"/orders/{order['id']}/untrack/{tee['tracking_id']}")
    await woocommerce.control(f"/orders/{order['id']}/track", {
        "tracking_number": "1Z-TEE2", "tracking_provider": "UPS",
        "products_list": [{"item_id": items["TEE"], "qty": 1}]})
    assert (await gw.poll_feed("seller", "corrections"))["read"] == 1
    await gw.wait_for(soon(lambda: sent("market", "cancel_fulfillment")))
    await gw.wait_for(soon(lambda: any(p["shipment"]["tracking_numbers"] == ["1Z-TEE2"]
                                         for p in sent("market", "push_fulfillment"))))
    assert (await gw.fo(fo_id))["status"] == "fulfilled"


async def test_seller_classic_tracking_ships_the_whole_order_when_completed(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    gw, fo_id, order = await seller(start_market, tmp_path, woocommerce,
                                    [("MUG", 2), ("TEE", 1)])
    await woocommerce.control(f"/orders/{order['id']}/track", {
        "tracking_number": "1Z-A", "tracking_provider": "UPS"})
    await gw.poll_feed("seller", "fulfillments")
    await gw.wait_idle()
    assert (await gw.fo(fo_id))["status"] == "unfulfilled"  # which items: unknown yet
    await woocommerce.control(f"/orders/{order['id']}/track", {
        "tracking_number": "1Z-B", "tracking_provider": "UPS", "complete": True})
    await gw.poll_feed("seller", "fulfillments")
    await gw.wait_status(fo_id, "fulfilled")
    [shipment] = (await gw.fo(fo_id))["shipments"]
    assert shipment["tracking_numbers"] == ["1Z-A", "1Z-B"]
    assert sum(ln["quantity"] for ln in shipment["lines"]) == 3


async def buyer(start_market: Any, tmp_path: Any, woo: WooSandbox, **options: Any
                ) -> tuple[MarketplaceGateway, dict[str, Any], dict[str, Any]]:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", woocommerce_connector("shop", woo.url, **options),
        fake_connector("wh")))
    await woo.control("/hooks", {"url": f"{gw.url}/webhooks/shop"})
    order = await woo.control("/orders", {"lines": [{"sku": "MUG", "quantity": 2},
                                                    {"sku": "TEE", "quantity": 1}]})
    fo = await gw.only_fo()  # order.created, signed, the order in the body
    return gw, order, fo


async def test_buyer_tracking_items_completed_and_withdrawn(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    gw, order, fo = await buyer(start_market, tmp_path, woocommerce)
    assert fo["order_number"] == str(order["id"])
    before = len(woocommerce.state.requests)
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 2)], ["1Z-A", "1Z-B"])
    state = woocommerce.state
    from connectors.woocommerce.normalize import tracking_items

    await gw.wait_for(soon(lambda: len(tracking_items(state.orders[order["id"]])) == 2))
    await fake_ship(gw, "wh", fo["id"], "S2", [("TEE", 1)], ["1Z-C"],
                    url="https://carrier.example/1Z-C")
    await gw.wait_for(soon(lambda: state.orders[order["id"]]["status"] == "completed"))
    items = tracking_items(state.orders[order["id"]])
    assert [i["tracking_number"] for i in items] == ["1Z-A", "1Z-B", "1Z-C"]
    assert items[2]["custom_tracking_link"] == "https://carrier.example/1Z-C"
    assert len(state.requests) > before

    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 2)], ["1Z-A", "1Z-B"], status="voided",
                    updated_at="2026-12-01T11:00:00Z")
    await gw.wait_for(soon(lambda: [i["tracking_number"] for i in tracking_items(
        state.orders[order["id"]])] == ["1Z-C"]))


async def test_buyer_order_notes_when_the_extension_is_absent(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    gw, order, fo = await buyer(start_market, tmp_path, woocommerce, tracking="order_notes")
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 2)], ["1Z-A"])
    notes = woocommerce.state.notes[order["id"]]
    await gw.wait_for(soon(lambda: notes))
    assert notes[0]["customer_note"] is True
    assert "Shipped 2 x MUG with ups, tracking 1Z-A" in notes[0]["note"]
    assert woocommerce.state.calls("POST", "/wp-json/wc-shipment-tracking") == 0


async def test_webhook_signatures_rate_limit_and_a_lost_answer(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    gw, order, fo = await buyer(start_market, tmp_path, woocommerce)
    body = b'{"id": 1, "status": "processing", "line_items": []}'
    good = base64.b64encode(hmac.new(WOO_HOOK.encode(), body, hashlib.sha256).digest()).decode()
    base = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Delivery-ID": "d-1",
            "Content-Type": "application/json"}
    for headers, expected in (({**base, "X-WC-Webhook-Signature": "AAAA"}, 401), (base, 401),
                              ({"X-WC-Webhook-Signature": base64.b64encode(hmac.new(
                                  WOO_HOOK.encode(), b"webhook_id=7", hashlib.sha256
                              ).digest()).decode()}, 200),  # the ping on saving a webhook
                              ({**base, "X-WC-Webhook-Signature": good}, 200)):
        data = b"webhook_id=7" if "X-WC-Webhook-Topic" not in headers else body
        async with gw.session.post(f"{gw.url}/webhooks/shop", data=data,
                                   headers=headers) as resp:
            assert resp.status == expected, await resp.text()
    rows = await gw.sql("SELECT delivery_key FROM inbox_events WHERE connector = ?", ("shop",))
    assert len(rows) == 2  # the sandbox's order.created and the good one; not the ping

    # a host's 429 with Retry-After, waited out, then the listing
    await woocommerce.control("/faults", {"path": "/wp-json/wc/v3/orders", "method": "GET",
                                          "status": 429})
    result = await gw.poll_feed("shop", "orders")
    assert result["requests"] == 2 and result["orders"] == 1
    assert 429 in [r["status"] for r in woocommerce.state.requests]


async def test_seller_lost_order_answer_found_by_its_meta(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    await woocommerce.control("/products", {"sku": "MUG"})
    await woocommerce.control("/faults", {"path": "/wp-json/wc/v3/orders", "method": "POST",
                                          "status": 502, "after": True})
    gw, fo_id, order = await seller(start_market, tmp_path, woocommerce, [("MUG", 1)])
    assert len(woocommerce.state.orders) == 1
    assert 502 in [r["status"] for r in woocommerce.state.requests]


async def test_oauth1_one_legged_over_plain_http(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    await woocommerce.control("/orders", {"lines": [{"sku": "MUG", "quantity": 1}]})
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", woocommerce_connector("shop", woocommerce.url, auth="oauth1"),
        fake_connector("wh")))
    result = await gw.poll_feed("shop", "orders")
    assert result["orders"] == 1
    [call] = [r for r in woocommerce.state.requests if r["path"].endswith("/orders")]
    assert call["status"] == 200 and call["query"]["oauth_signature_method"] == "HMAC-SHA256"
    assert "consumer_secret" not in call["query"]  # the secret signs; it is never sent
    fo = await gw.only_fo()
    await fake_ship(gw, "wh", fo["id"], "S1", [("MUG", 1)], ["1Z-O"])  # a signed POST too
    from connectors.woocommerce.normalize import tracking_items

    order_id = int(fo["order_number"])
    await gw.wait_for(soon(lambda: tracking_items(woocommerce.state.orders[order_id])))


async def test_oauth1_with_a_wrong_secret_is_refused(
        start_market: Any, tmp_path: Any, woocommerce: WooSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", woocommerce_connector(
            "shop", woocommerce.url, auth="oauth1", consumer_secret_env="WOO_HOOK"),
        fake_connector("wh")))
    result = await gw.call("POST", "/api/v1/connectors/shop/poll?feed=orders", expect=None)
    assert "401" in str(result) and "cannot list resources" in str(result)
    assert [r["status"] for r in woocommerce.state.requests] == [401]
