"""NuOrder's orders in, through the gateway's API against the sandbox over loopback: only
approved orders come in, once each, marked processed; a size with no SKU holds its order;
cancellations and changes in NuOrder reach the FO."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.nuorder.signing import LEGACY_HEX, RFC5849
from connectors.nuorder.skus import STYLE_COLOR_SIZE, UPC, SkuMap, line_id, sku_of
from tests.fake_partner import partner
from tests.nuorder.conftest import NuOrderGateway, NuOrderSandbox


async def _catalogue(sandbox: NuOrderSandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    coat = await sandbox.product("COAT1", "Navy", {"S": "0001", "M": "0002", "L": "0003"})
    hat = await sandbox.product("HAT9", "Red", {"OS": "0009"})
    return coat, hat


async def _fos(gw: NuOrderGateway) -> list[dict[str, Any]]:
    return (await gw.call("GET", "/api/v1/fulfillment-orders"))["items"]


@pytest.mark.parametrize("style", [RFC5849, LEGACY_HEX])
async def test_approved_orders_become_one_fo_each_and_are_marked_processed(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox, style: str) -> None:
    gw = await start_nuorder(signature_style=style)  # query strings signed in both styles
    coat, hat = await _catalogue(nuorder_sandbox)
    approved = await nuorder_sandbox.order("1001", [(coat, {"S": 2, "M": 4}), (hat, {"OS": 1})])
    await nuorder_sandbox.order("1002", [(coat, {"L": 1})], status="pending")
    await nuorder_sandbox.order("1003", [(coat, {"L": 1})], status="draft")
    await gw.poll_feed("products")
    await gw.wait_idle()  # the products kept before the orders poll maps their sizes
    await gw.poll_feed("orders")
    await gw.wait_idle()

    [fo] = await _fos(gw)
    fo = await gw.fo(fo["id"])
    assert fo["channel"] == "wholesale" and fo["order_number"] == "1001"
    assert sorted((ln["sku"], ln["requested"]) for ln in fo["lines"]) == [
        ("0001", 2), ("0002", 4), ("0009", 1)]
    assert {ln["line_id"] for ln in fo["lines"]} == {
        line_id(coat["_id"], "S"), line_id(coat["_id"], "M"), line_id(hat["_id"], "OS")}
    refs = {(r["kind"], r["value"]) for r in fo["external_refs"]}
    assert ("partner_order_id", approved["_id"]) in refs and ("order_number", "1001") in refs

    async def processed() -> bool:
        return nuorder_sandbox.state.orders[approved["_id"]]["status"] == "processed"

    await gw.wait_for(processed)
    [placed] = partner("wms").called("push_order")
    assert placed.payload["ship_to"] == {"street1": "1 High St", "city": "Leeds",
                                         "postal_code": "LS1 1AA", "country": "GB",
                                         "company": "Boutique One", "name": "Ann Buyer"}

    # Seen again (an overlapping poll, a tracked re-read): still one FO, one push.
    await gw.poll_feed("orders")
    await gw.poll_feed("orders")
    await gw.wait_idle()
    assert len(await _fos(gw)) == 1
    assert len(partner("wms").called("push_order")) == 1
    assert nuorder_sandbox.calls("POST", f"/api/order/{approved['_id']}/process") == 1
    [kept] = [o for o in await gw.partner_orders() if o["id"] == approved["_id"]]
    assert kept["fulfillment_order_id"] == fo["id"] and kept["hold_reason"] is None
    orders = {r["id"]: r for r in await gw.records("orders")}
    assert orders[approved["_id"]]["fields"]["status"] == "processed"  # as last seen
    assert len(orders) == 1  # the pending and draft orders never came in


async def test_a_size_with_no_sku_holds_the_order_until_the_product_has_one(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    coat = await nuorder_sandbox.product("COAT1", "Navy", {"S": "0001", "XL": None})
    order = await nuorder_sandbox.order("2001", [(coat, {"S": 1, "XL": 2})])
    await gw.poll_feed("products")
    await gw.wait_idle()  # the products kept before the orders poll maps their sizes
    await gw.poll_feed("orders")
    await gw.wait_idle()

    assert await _fos(gw) == []
    [held] = await gw.partner_orders("&held=true")
    assert held["id"] == order["_id"] and held["fulfillment_order_id"] is None
    assert "COAT1 Navy size XL" in held["hold_reason"]
    assert await gw.partner_orders("&unclaimed=true") == []  # held is not unclaimed
    assert nuorder_sandbox.state.orders[order["_id"]]["status"] == "approved"  # not taken

    # The brand adds the UPC in NuOrder; the products feed brings it; the next orders poll
    # takes the held order although it did not change.
    coat["sizes"][1]["upc"] = "0004"
    await nuorder_sandbox.control("/products", coat)
    [fo] = await gw.take_orders()
    assert sorted((ln["sku"], ln["requested"]) for ln in (await gw.fo(fo["id"]))["lines"]) == [
        ("0001", 1), ("0004", 2)]
    assert await gw.partner_orders("&held=true") == []


def test_the_sku_map_goes_both_ways_under_either_rule() -> None:
    coat = {"_id": "p1", "style_number": "COAT1", "color": "Navy",
            "sizes": [{"size": "S", "upc": "0001", "_id": "k1"},
                      {"size": "M", "upc": "", "_id": "k2"}]}
    by_upc = SkuMap(UPC, [coat])
    assert by_upc.sku("p1", "S") == "0001" and by_upc.sku("p1", "M") is None
    assert by_upc.size_of("0001").product_id == "p1" and by_upc.size_of("0001").size == "S"
    assert by_upc.size_of("0001").sku_id == "k1" and by_upc.size_of("COAT1-Navy-S") is None
    by_style = SkuMap(STYLE_COLOR_SIZE, [coat])
    assert by_style.sku("p1", "M") == "COAT1-Navy-M"
    assert by_style.size_of("COAT1-Navy-M").sku_id == "k2"
    assert sku_of(STYLE_COLOR_SIZE, {"style_number": "X"}, {"size": "S"}) is None  # no color
    # Two products claiming one SKU: the first keeps it, the clash is reported.
    twin = {**coat, "_id": "p2"}
    clash = SkuMap(UPC, [coat, twin])
    assert clash.size_of("0001").product_id == "p1" and "0001" in clash.duplicates


async def test_an_order_cancelled_in_nuorder_cancels_the_fo_and_its_push(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    coat, _ = await _catalogue(nuorder_sandbox)
    order = await nuorder_sandbox.order("3001", [(coat, {"M": 3})])
    [fo] = await gw.take_orders()
    await gw.wait_for(lambda: _async(bool(partner("wms").called("push_order"))))

    await nuorder_sandbox.control(f"/orders/{order['_id']}", {"status": "cancelled"})
    await gw.poll_feed("orders")  # tracked orders are read again
    cancelled = await gw.wait_status(fo["id"], "cancelled")
    assert any(t["kind"] == "source_cancelled" for t in cancelled["timeline"])
    await gw.wait_for(lambda: _async(bool(partner("wms").called("cancel_order"))))


async def test_a_changed_order_is_recorded_and_the_fo_stays(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    coat, _ = await _catalogue(nuorder_sandbox)
    order = await nuorder_sandbox.order("4001", [(coat, {"M": 3})])
    [fo] = await gw.take_orders()

    changed = dict(order["line_items"][0])
    changed["sizes"] = [{"size": "M", "quantity": 5, "upc": "0002", "price": 40}]
    await nuorder_sandbox.control(f"/orders/{order['_id']}", {"line_items": [changed]})
    await gw.poll_feed("orders")
    await gw.wait_idle()
    after = await gw.fo(fo["id"])
    [entry] = [t for t in after["timeline"] if t["kind"] == "source_changed"]
    assert entry["detail"]["changes"]["lines"]["after"][0]["quantity"] == 5
    assert [(ln["sku"], ln["requested"]) for ln in after["lines"]] == [("0002", 3)]
    assert after["status"] == "unfulfilled"


async def _async(value: Any) -> Any:
    return value


async def test_a_cancel_in_nuorder_cancels_the_order_placed_with_shipstation(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox, aiohttp_server: Any) -> None:
    """The real fulfiller: ShipStation's sandbox has the order; NuOrder's cancel reaches it."""
    from connectors.shipstation.sandbox import create_app, sandbox_state
    from tests.shipstation.conftest import SS_ENV, SS_KEY, SS_SECRET

    shipstation = await aiohttp_server(create_app(SS_KEY, SS_SECRET))
    gw = await start_nuorder(env=SS_ENV, fulfiller={
        "name": "wms", "type": "shipstation",
        "base_url": str(shipstation.make_url("")).rstrip("/"),
        "api_key_env": "SS_KEY", "api_secret_env": "SS_SECRET", "webhook_token_env": "SS_HOOK",
        "allowed_resource_origin": r"http://127\.0\.0\.1:\d+"})
    coat, _ = await _catalogue(nuorder_sandbox)
    order = await nuorder_sandbox.order("6001", [(coat, {"L": 2})])
    [fo] = await gw.take_orders()
    placed = sandbox_state(shipstation.app).orders

    async def at_shipstation() -> Any:
        return next((o for o in placed.values() if o.get("orderKey") == fo["id"]), None)

    ss_order = await gw.wait_for(at_shipstation)
    assert ss_order["orderStatus"] == "awaiting_shipment"
    assert [(i["sku"], i["quantity"]) for i in ss_order["items"]] == [("0003", 2)]

    await nuorder_sandbox.control(f"/orders/{order['_id']}", {"status": "cancelled"})
    await gw.poll_feed("orders")
    await gw.wait_status(fo["id"], "cancelled")

    async def cancelled_there() -> bool:
        return (await at_shipstation())["orderStatus"] == "cancelled"

    await gw.wait_for(cancelled_there)


async def test_an_order_cancelled_before_it_is_marked_processed_is_no_dead_letter(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    coat, _ = await _catalogue(nuorder_sandbox)
    order = await nuorder_sandbox.order("7001", [(coat, {"S": 1})])
    # NuOrder is slow to answer /process; the buyer cancels meanwhile.
    await nuorder_sandbox.control("/faults", {"path": f"/api/order/{order['_id']}/process",
                                              "status": 200, "delay_seconds": 1.5})
    [fo] = await gw.take_orders()
    await nuorder_sandbox.control(f"/orders/{order['_id']}", {"status": "cancelled"})

    async def acknowledged() -> Any:
        sent = [m for m in (await gw.fo(fo["id"]))["outbound"]
                if m["kind"] == "acknowledge_order" and m["status"] == "sent"]
        return sent or None

    [ack] = await gw.wait_for(acknowledged)
    assert ack["result"]["skipped"].startswith("cancelled in NuOrder")
    assert (await gw.call("GET", "/api/v1/dead-letters"))["items"] == []
    await gw.poll_feed("orders")
    await gw.wait_status(fo["id"], "cancelled")


async def test_tracked_orders_are_read_again_in_turns_of_max_order_reads(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder(max_order_reads=2, mark_processed=False)
    coat, _ = await _catalogue(nuorder_sandbox)
    orders = [await nuorder_sandbox.order(f"80{n}", [(coat, {"S": 1})]) for n in range(3)]
    fos = await gw.take_orders()
    assert len(fos) == 3
    # Out of the listing's reach from now on (not approved any more): only re-reads see them.
    for order in orders:
        await nuorder_sandbox.control(f"/orders/{order['_id']}", {"status": "processed"})

    def reads() -> dict[str, int]:
        return {o["_id"]: nuorder_sandbox.calls("GET", f"/api/order/{o['_id']}")
                for o in orders}

    before = reads()
    first = (await gw.poll_feed("orders"))["feeds"]["orders"]
    assert first["tracked"] == 3 and first["tracked_read"] == 2
    second = (await gw.poll_feed("orders"))["feeds"]["orders"]
    assert second["tracked_read"] == 2
    after = reads()
    assert sum(after.values()) - sum(before.values()) == 4  # two a poll, never more
    assert all(after[o["_id"]] > before[o["_id"]] for o in orders)  # each one had its turn

    # A cancel of any of them is seen within a turn.
    await nuorder_sandbox.control(f"/orders/{orders[0]['_id']}", {"status": "cancelled"})
    for _ in range(2):
        await gw.poll_feed("orders")
    await gw.wait_idle()
    cancelled = [fo for fo in (await gw.call("GET", "/api/v1/fulfillment-orders"))["items"]
                 if fo["status"] == "cancelled"]
    assert len(cancelled) == 1
