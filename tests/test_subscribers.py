"""Signed events to internal services: retries as a subscriber's answers say, connections
that close or break, a subscriber that is back, one failing message among good ones. On the
scripted fake connector type: events come from FOs created through the API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.conftest import GatewayUnderTest, Receiver, fake_doc
from tests.test_outbox import SKU, wait_events


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
    await gw.create_fo([(SKU, 2)])

    async def dead() -> list[dict[str, Any]]:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"]

    [letter] = await gw.wait_for(dead)
    assert letter["destination"] == "subscriber:erp" and letter["attempts"] == 1
    assert "HTTP 422 refused with 422" in letter["error"]
    assert "s3cr3t" not in letter["error"]  # a URL's query may hold a secret: never shown
    assert len(receiver.deliveries) == tries + 1


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
        [row] = gw.sql("SELECT attempts FROM outbox_messages")
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
        return gw.sql("SELECT MAX(attempts) FROM outbox_messages")[0][0] == 2

    await gw.wait_for(two_attempts)
    for i in range(5):
        await gw.create_fo([(SKU, 1)], order_number=f"OK{i}")
    await wait_events(receiver, 5)
    await asyncio.sleep(0.5)
    assert gw.sql("SELECT MAX(attempts) FROM outbox_messages WHERE status = 'pending'"
                  ) == [(2,)]
