"""Signed events to internal services: retries as a subscriber's answers say, connections
that close or break, a subscriber that is back, one failing message among good ones. On the
scripted fake connector type: events come from FOs created through the API."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gateway import logs
from tests.conftest import (
    SKU,
    SUBSCRIBER_SECRET,
    GatewayUnderTest,
    Receiver,
    fake_doc,
    wait_events,
)


async def subscriber_only(start_fake, tmp_path: Path, receiver: Receiver,
                          **retry: Any) -> GatewayUnderTest:
    doc = fake_doc(tmp_path / "gateway.sqlite3")
    doc["subscribers"] = [{"name": "erp", "url": receiver.url + "?key=s3cr3t-in-url",
                           "secret_env": "SUB_SECRET", "events": ["fulfillment_order.created"]}]
    if retry:
        doc["retry"] = retry
    return await start_fake(doc)


async def test_subscriber_answers_retry_or_give_up_as_they_say(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await subscriber_only(start_fake, tmp_path, receiver,
                               attempts=5, schedule_seconds=[0.05], jitter=0)
    # 503 with a chunked body, then 429 with Retry-After, then accepted.
    receiver.answer, receiver.chunked = 503, True
    fo = await gw.create_fo([(SKU, 1)])
    await gw.wait_for(lambda: asyncio.sleep(0, len(receiver.deliveries) >= 2))
    receiver.answer, receiver.chunked = 429, False
    receiver.answer_headers = {"Retry-After": "1"}
    await gw.wait_for(lambda: asyncio.sleep(0, receiver.deliveries[-1][2] == 429))
    refused_at = time.monotonic()
    receiver.answer, receiver.answer_headers = 200, {}
    [event] = await wait_events(receiver, 1)
    assert time.monotonic() - refused_at >= 0.9  # Retry-After was honoured
    assert event["data"]["fulfillment_order_id"] == fo["id"]
    ids = {headers["webhook-id"] for headers, _, _ in receiver.deliveries}
    assert ids == {event["id"]}  # every attempt carried the same id

    # A 422 is not worth retrying: a dead letter at once, with what the subscriber said.
    receiver.answer = 422
    tries = len(receiver.deliveries)
    async def dead() -> list[dict[str, Any]]:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"]

    said = io.StringIO()  # what the operator sees: an ERROR line and the metrics
    logs.configure("WARNING", stream=said)
    try:
        await gw.create_fo([(SKU, 2)])
        [letter] = await gw.wait_for(dead)
    finally:
        logs.configure("WARNING")
    assert letter["destination"] == "subscriber:erp" and letter["attempts"] == 1
    assert "HTTP 422 refused with 422" in letter["error"]
    assert "s3cr3t" not in letter["error"]  # a URL's query may hold a secret: never shown
    assert len(receiver.deliveries) == tries + 1
    [line] = [orjson.loads(x) for x in said.getvalue().splitlines()
              if '"outbox.dead_letter"' in x]
    assert line["level"] == "error" and line["destination"] == "subscriber:erp"
    assert "HTTP 422" in line["error"] and "s3cr3t" not in said.getvalue()
    async with gw.session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert ('gateway_outbox_messages_total{destination="subscriber:erp",result="dead_letter"}'
            ' 1.0') in text
    assert 'gateway_dead_letters{source="outbox"} 1.0' in text


async def test_deliveries_survive_closed_and_broken_connections(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await subscriber_only(start_fake, tmp_path, receiver)
    receiver.answer_headers = {"Connection": "close"}  # no keep-alive at all
    for i in range(3):
        await gw.create_fo([(SKU, 1)], order_number=f"K{i}")
    await wait_events(receiver, 3)
    receiver.answer_headers = {}
    await gw.create_fo([(SKU, 1)], order_number="K3")
    await wait_events(receiver, 4)
    # The receiver restarts: the pooled keep-alive connection is dead; the next delivery
    # goes out on a new one without failing.
    await receiver.stop()
    await receiver.start()
    await gw.create_fo([(SKU, 1)], order_number="K4")
    events = await wait_events(receiver, 5)
    assert sorted(e["data"]["order_number"] for e in events) == [f"K{i}" for i in range(5)]
    assert all(d[2] == 200 for d in receiver.deliveries) and len(receiver.deliveries) == 5


async def test_a_subscriber_that_is_back_gets_its_backlog_without_waiting_out_backoffs(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await subscriber_only(start_fake, tmp_path, receiver,
                               attempts=20, schedule_seconds=[0.05, 0.05, 60], jitter=0)
    await receiver.stop()
    first = await gw.create_fo([(SKU, 1)], order_number="B1")

    async def waiting_a_minute() -> bool:
        [row] = await gw.sql("SELECT attempts FROM outbox_messages")
        return row[0] >= 3

    await gw.wait_for(waiting_a_minute)  # three failures; the next try is a minute away
    await receiver.start()
    started = time.monotonic()
    await gw.create_fo([(SKU, 1)], order_number="B2")  # delivered at once: it is back
    events = await wait_events(receiver, 2, within=5)
    assert time.monotonic() - started < 5
    assert {e["data"]["fulfillment_order_id"] for e in events} >= {first["id"]}


async def test_one_failing_message_keeps_its_backoff_while_others_go_through(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await subscriber_only(start_fake, tmp_path, receiver,
                               attempts=20, schedule_seconds=[0.05, 60], jitter=0)
    receiver.refuse_containing = b'"order_number":"POISON"'
    await gw.create_fo([(SKU, 1)], order_number="POISON")

    async def two_attempts() -> bool:
        return (await gw.sql("SELECT MAX(attempts) FROM outbox_messages"))[0][0] == 2

    await gw.wait_for(two_attempts)
    for i in range(5):
        await gw.create_fo([(SKU, 1)], order_number=f"OK{i}")
    await wait_events(receiver, 5)
    await asyncio.sleep(0.5)
    assert await gw.sql("SELECT MAX(attempts) FROM outbox_messages WHERE status = 'pending'"
                  ) == [(2,)]


async def test_each_change_is_one_event_in_order_and_an_invoice_once_per_shipment(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    """The core's events for an FO pushed to a fulfiller and shipped in two parts, the same
    shipment delivered twice (a repeat and a poll), with a subscriber down meanwhile."""
    from tests.fake_partner import partner
    from tests.test_contract import wait_calls, webhook

    channel = {"name": "web", "oms": {"connector": "wms"},
               "invoice_timing": "on_shipment_created"}
    doc = fake_doc(tmp_path / "gateway.sqlite3", "wms", channels=[channel],
                   subscribers=[{"name": "erp", "url": receiver.url, "secret_env": "SUB_SECRET",
                                 "events": ["*"]}])
    doc["retry"] = {"attempts": 50, "schedule_seconds": [0.1, 0.2], "jitter": 0.1}
    gw = await start_fake(doc)
    await receiver.stop()  # the internal service is down: connection refused
    fo = await gw.create_fo([(SKU, 10)], channel="web", order_number="E1")
    await wait_calls(gw, "wms", "push_order", 1)
    first = {"id": "S1", "order_refs": [["fulfillment_order_id", fo["id"]]],
             "lines": [[SKU, 6]], "updated_at": "2026-12-01T11:00:00Z"}
    assert await webhook(gw, "wms", "shipment", first, "w1") == 200
    assert await webhook(gw, "wms", "shipment", first, "w1") == 200  # a repeat
    await gw.wait_status(fo["id"], "partially_fulfilled")
    second = {**first, "id": "S2", "lines": [[SKU, 4]], "updated_at": "2026-12-01T12:00:00Z"}
    partner("wms").add("shipments", "shipment", second)
    assert await webhook(gw, "wms", "shipment", second, "w2") == 200
    await gw.call("POST", "/api/v1/connectors/wms/poll?feed=shipments")  # seen again
    await gw.wait_status(fo["id"], "fulfilled")
    await gw.wait_idle()
    assert receiver.deliveries == []

    await receiver.start()  # back on the same port
    await wait_events(receiver, 8)
    await asyncio.sleep(0.5)  # and nothing more arrives
    events = receiver.events()
    # (order.pushed may come before or after the first shipment: the push's outcome and the
    # shipment are recorded independently; each FO's events still go out in recorded order)
    assert sorted(e["type"] for e in events) == sorted([
        "fulfillment_order.created", "order.pushed",
        "shipment.recorded", "invoice.requested", "fulfillment_order.status_changed",
        "shipment.recorded", "invoice.requested", "fulfillment_order.status_changed"])
    assert events[0]["type"] == "fulfillment_order.created"
    changes = [(e["data"]["old_status"], e["data"]["new_status"]) for e in events
               if e["type"] == "fulfillment_order.status_changed"]
    assert changes == [("unfulfilled", "partially_fulfilled"),
                       ("partially_fulfilled", "fulfilled")]  # in order, once each
    invoices = [e["data"]["lines"][0]["quantity"] for e in events
                if e["type"] == "invoice.requested"]
    assert invoices == [6, 4]  # once per shipment, not per delivery of it
    assert len({e["id"] for e in events}) == len(events)


async def test_two_secrets_during_a_rotation_sign_every_delivery_twice(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    """Standard Webhooks allows several signatures: with the old and the new secret in the
    variable, a subscriber verifying with either accepts each delivery (no downtime)."""
    new_secret = "whsec_" + base64.b64encode(b"the-replacement-secret-32-bytes!").decode()
    doc = fake_doc(tmp_path / "gateway.sqlite3")
    doc["subscribers"] = [{"name": "erp", "url": receiver.url, "secret_env": "ROTATING",
                           "events": ["fulfillment_order.created"]}]
    gw = await start_fake(doc, env={"ROTATING": f"{SUBSCRIBER_SECRET} {new_secret}"})
    fo = await gw.create_fo([(SKU, 1)])
    [event] = await wait_events(receiver, 1)
    headers, body, _ = receiver.deliveries[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SUBSCRIBER_SECRET, new_secret):
        verified = Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
        assert verified["data"]["fulfillment_order_id"] == fo["id"]
    with pytest.raises(WebhookVerificationError):
        other = "whsec_" + base64.b64encode(b"neither-the-old-nor-the-new-one!").decode()
        Webhook(other).verify(body, {k.lower(): v for k, v in headers.items()})
