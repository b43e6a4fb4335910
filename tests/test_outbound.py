"""The outbound half of the core through the API, on the scripted fake connector type: what a
channel pushes (custom fields under the partner's names), channels listed, invoice timings and
the invoice-first route, a cancel while the push is in flight, a refused push retired by a
cancel. ShipStation's own outbound tests are in tests/shipstation/test_outbox.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.errors import PartnerRejected
from tests.conftest import SKU, GatewayUnderTest, Receiver, fake_doc, wait_events, wait_pushed
from tests.fake_partner import partner
from tests.test_contract import wait_calls

WHOLESALE = {"name": "wholesale", "warehouse_group": "east", "internal": True,
             "description": "Wholesale reps", "tags": ["b2b"],
             "oms": {"connector": "wms", "store_id": 42},
             "custom_fields": {"shipping_notes": "notes", "shipping_type": "options.type"}}
SHOWROOM = {"name": "showroom", "internal": True}


async def start(start_fake, tmp_path: Path, receiver: Receiver | None = None,
                **wholesale: Any) -> GatewayUnderTest:
    subscribers = [{"name": "erp", "url": receiver.url, "secret_env": "SUB_SECRET",
                    "events": ["*"]}] if receiver else []
    return await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms", subscribers=subscribers,
                                     channels=[{**WHOLESALE, **wholesale}, SHOWROOM]))


async def test_a_push_carries_the_fo_and_its_custom_fields_under_the_partners_names(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await start(start_fake, tmp_path, receiver)
    ship_to = {"name": "Ann Buyer", "city": "Portland", "country": "US"}
    fo = await gw.create_fo([(SKU, 10), ("CAP", 2)], channel="wholesale", order_number="1001",
                            ship_to=ship_to, custom_fields={
                                "shipping_notes": "Dock 4 only", "shipping_type": "LTL",
                                "unmapped": "stays home"})
    fo = await wait_pushed(gw, fo["id"])
    [push] = partner("wms").called("push_order")
    assert push.key == f"push_order:{fo['id']}:connector:wms"  # the partner's idempotency key
    body = push.payload
    assert (body["fulfillment_order_id"], body["order_number"], body["channel"],
            body["store_id"]) == (fo["id"], "1001", "wholesale", 42)
    assert [(ln["line_id"], ln["sku"], ln["quantity"]) for ln in body["lines"]] == [
        ("1", SKU, 10), ("2", "CAP", 2)]
    assert body["ship_to"] == ship_to
    assert body["partner_fields"] == {"notes": "Dock 4 only", "options.type": "LTL"}
    assert "stays home" not in str(body)
    assert {"kind": "partner_order_id", "value": f"P-{fo['id']}"} in fo["external_refs"]
    [sent] = fo["outbound"]
    assert sent["attempts"] == 1 and sent["result"] == {"partner_order_id": f"P-{fo['id']}"}
    assert [t["kind"] for t in fo["timeline"]] == ["created", "push_scheduled", "pushed"]
    [pushed] = await wait_events(receiver, 1, "order.pushed")
    assert pushed["data"]["partner_order_id"] == f"P-{fo['id']}"


async def test_channels_are_listed_and_an_unknown_channel_is_refused(
        start_fake, tmp_path: Path) -> None:
    gw = await start(start_fake, tmp_path, oms={"connector": "wms", "delay_minutes": 15})
    channels = (await gw.call("GET", "/api/v1/channels"))["items"]
    assert channels[0] == {
        "name": "wholesale", "warehouse_group": "east", "internal": True,
        "description": "Wholesale reps", "tags": ["b2b"],
        "oms": {"connector": "wms", "store_id": None, "delay_minutes": 15.0},
        "push_fulfillment_updates": False,
        "custom_fields": {"shipping_notes": "notes", "shipping_type": "options.type"},
        "invoice_timing": None, "source_connector": None}
    error = await gw.call("POST", "/api/v1/fulfillment-orders", {
        "channel": "wholesal", "lines": [{"sku": SKU, "quantity": 1}]}, expect=400)
    assert "not a configured channel" in error["error"]["message"]
    # A channel without an OMS push records the FO and pushes nothing.
    fo = await gw.create_fo([(SKU, 1)], channel="showroom")
    await asyncio.sleep(0.3)
    assert (await gw.fo(fo["id"]))["outbound"] == [] and partner("wms").calls == []


async def test_invoice_on_order_created(start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await start(start_fake, tmp_path, receiver, invoice_timing="on_order_created")
    fo = await gw.create_fo([(SKU, 10), ("CAP", 2)], channel="wholesale", order_number="I1")
    await wait_pushed(gw, fo["id"])
    [invoice] = await wait_events(receiver, 1, "invoice.requested")
    assert invoice["data"] == {
        "fulfillment_order_id": fo["id"], "channel": "wholesale", "order_number": "I1",
        "shipment_id": None, "lines": [{"line_id": "1", "sku": SKU, "quantity": 10},
                                       {"line_id": "2", "sku": "CAP", "quantity": 2}]}
    # An FO of a channel without invoice timing asks for none.
    await gw.create_fo([(SKU, 1)], channel="showroom")
    await wait_events(receiver, 2, "fulfillment_order.created")
    assert len(receiver.events("invoice.requested")) == 1


async def test_invoice_first_creates_and_pushes_without_asking_for_an_invoice(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await start(start_fake, tmp_path, receiver, invoice_timing="on_order_created")
    body = {"invoice_id": "INV-77", "order_number": "1002",
            "lines": [{"sku": SKU, "quantity": 5}], "ship_to": {"name": "B"}}
    fo = await gw.call("POST", "/api/v1/channels/wholesale/orders", body, expect=201)
    assert fo["channel"] == "wholesale" and fo["flow"] == "invoice_first"
    assert fo["invoice_id"] == "INV-77"
    again = await gw.call("POST", "/api/v1/channels/wholesale/orders",
                          {**body, "id": fo["id"]}, expect=200)
    assert again["id"] == fo["id"]
    await wait_pushed(gw, fo["id"])
    await wait_events(receiver, 1, "order.pushed")
    assert receiver.events("invoice.requested") == []
    assert len(partner("wms").called("push_order")) == 1
    await gw.call("POST", "/api/v1/channels/nope/orders", body, expect=404)
    error = await gw.call("POST", "/api/v1/channels/wholesale/orders",
                          {k: v for k, v in body.items() if k != "invoice_id"}, expect=400)
    assert "invoice_id" in error["error"]["message"]


async def test_a_cancel_while_the_push_is_in_flight_is_sent_after_it(
        start_fake, tmp_path: Path) -> None:
    gw = await start(start_fake, tmp_path)
    wms = partner("wms")
    release = wms.hold("push_order")  # the partner is slow to answer the push
    fo = await gw.create_fo([(SKU, 1)], channel="wholesale", order_number="F1")
    await wait_calls(gw, "wms", "push_order", 1)
    cancelled = await gw.call("POST", f"/api/v1/fulfillment-orders/{fo['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    await asyncio.sleep(0.3)
    assert wms.called("cancel_order") == []  # not beside the push in flight
    release.set()
    view = await wait_pushed(gw, fo["id"], kind="cancel_order")
    assert [m.kind for m in wms.calls] == ["push_order", "cancel_order"]
    [cancel] = wms.called("cancel_order")
    assert cancel.payload["fulfillment_order_id"] == fo["id"]
    # The push landed after the cancel: the FO shows what the partner has, then the cancel.
    assert {"kind": "partner_order_id", "value": f"P-{fo['id']}"} in view["external_refs"]
    kinds = [t["kind"] for t in view["timeline"]]
    assert kinds[2:] == ["status_changed", "push_cancelled", "pushed", "cancel_sent"]
    assert view["timeline"][2]["to_status"] == "cancelled"
    assert view["timeline"][4]["detail"]["after_cancel"] is True


async def test_cancelling_an_fo_whose_push_was_refused_retires_the_dead_letter(
        start_fake, tmp_path: Path) -> None:
    gw = await start(start_fake, tmp_path)
    partner("wms").answer("push_order", PartnerRejected("Unknown store", 422))
    fo = await gw.create_fo([(SKU, 1)], channel="wholesale", order_number="Z1")

    async def dead() -> list[dict[str, Any]]:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"]

    [letter] = await gw.wait_for(dead)
    assert "Unknown store" in letter["error"]
    fo = await gw.call("POST", f"/api/v1/fulfillment-orders/{fo['id']}/cancel")
    assert [o["status"] for o in fo["outbound"]] == ["cancelled"]  # never placed: no cancel
    assert await dead() == []
    await gw.call("POST", f"/api/v1/dead-letters/{letter['id']}/replay", expect=404)
    await asyncio.sleep(0.3)
    assert [m.kind for m in partner("wms").calls] == ["push_order"]
