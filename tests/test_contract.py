"""The connector contract through the real gateway, against the scripted fake connector type:
feeds with their own cursors and toggles, partner orders becoming FOs, partner records read and
written back, partner links, operations with retries and dead letters, 501 for what a connector
does not do. Over loopback HTTP and a real SQLite file; no real partner's package."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from gateway.domain.records import fo_id_for
from gateway.errors import PartnerRateLimited, PartnerRejected, PartnerUnavailable
from tests.conftest import FAKE_TOKEN, GatewayUnderTest, Receiver, fake_doc
from tests.fake_partner import partner

PORTAL_CHANNEL = {"name": "portal-orders", "internal": False, "source_connector": "portal",
                  "push_fulfillment_updates": True, "oms": {"connector": "wms"}}


def order(order_id: str, updated_at: str, lines: list[tuple[str, int]], **extra: Any) -> dict:
    return {"id": order_id, "updated_at": updated_at, "order_number": f"N-{order_id}",
            "lines": lines, "ship_to": {"name": "Shop", "city": "Leeds"}, **extra}


async def webhook(gw: GatewayUnderTest, connector: str, kind: str, record: dict,
                  delivery: str) -> int:
    async with gw.session.post(
            f"{gw.url}/webhooks/{connector}", data=orjson.dumps({"kind": kind, "record": record}),
            headers={"X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": delivery,
                     "Content-Type": "application/json"}) as resp:
        return resp.status


async def wait_calls(gw: GatewayUnderTest, connector: str, operation: str, count: int) -> list:
    async def enough() -> list | None:
        calls = partner(connector).called(operation)
        return calls if len(calls) >= count else None

    return await gw.wait_for(enough)


async def test_feeds_poll_with_their_own_cursors_and_toggles(start_fake, tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "portal", sync_records=False,
                                   orders_interval_minutes=5))
    portal = partner("portal")
    portal.add("orders", "partner_order", order("O-1", "2026-12-01T10:00:00Z", [("A", 1)]))
    portal.add("records", "partner_record", {"kind": "company", "id": "C1",
                                             "fields": {"name": "Acme"},
                                             "updated_at": "2026-12-01T10:00:00Z"})
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    feeds = {f["name"]: f for f in item["feeds"]}
    assert {n: (f["enabled"], f["interval_minutes"]) for n, f in feeds.items()} == {
        "orders": (True, 5), "records": (False, 1440), "shipments": (True, 15),
        "watched": (True, 15)}
    assert sorted(job.id for job in gw.gateway.scheduler.get_jobs()
                  if job.id.startswith("poll:")) == [
        "poll:portal:orders", "poll:portal:shipments", "poll:portal:watched"]

    result = await gw.call("POST", "/api/v1/connectors/portal/poll")
    assert set(result["feeds"]) == {"orders", "shipments", "watched"}
    assert result["new_events"] == 1
    assert [feed for feed, _ in portal.polls] == ["orders", "shipments", "watched"]  # no records
    portal.add("orders", "partner_order", order("O-2", "2026-12-01T10:05:00Z", [("A", 2)]))
    again = await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    assert again["feeds"]["orders"]["records"] == 1  # only what came after the cursor
    assert portal.polls[-1] == ("orders", "1")
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    cursors = {f["name"]: f["cursor"] for f in item["feeds"]}
    assert cursors == {"orders": "2", "records": None, "shipments": "0", "watched": ""}
    off = await gw.call("POST", "/api/v1/connectors/portal/poll?feed=records", expect=409)
    assert "sync_records" in off["error"]["message"]
    assert not any(feed == "records" for feed, _ in portal.polls)

    portal.poll_error = PartnerUnavailable("HTTP 503 from the portal")
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders", expect=502)
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    orders = next(f for f in item["feeds"] if f["name"] == "orders")
    assert orders["cursor"] == "2" and "unavailable: HTTP 503" in orders["last_error"]


async def test_a_partner_order_becomes_an_fo_that_is_pushed_linked_and_fulfilled_back(
        start_fake, tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "portal", "wms",
                                   channels=[PORTAL_CHANNEL]))
    portal, wms = partner("portal"), partner("wms")
    portal.add("orders", "partner_order",
               order("O-1", "2026-12-01T10:00:00Z", [("A", 3), ("B", 2)]))
    await gw.call("POST", "/api/v1/connectors/portal/poll")
    fo_id = fo_id_for("portal", "O-1")
    [push] = await wait_calls(gw, "wms", "push_order", 1)
    assert push.fo_id == fo_id and push.payload["order_number"] == "N-O-1"
    assert [(ln["sku"], ln["quantity"]) for ln in push.payload["lines"]] == [("A", 3), ("B", 2)]

    async def fulfiller_known() -> dict | None:
        fo = await gw.fo(fo_id)
        links = {link["role"]: link for link in fo["links"]}
        return fo if links.get("fulfiller", {}).get("partner_order_id") else None

    fo = await gw.wait_for(fulfiller_known)
    assert fo["channel"] == "portal-orders" and fo["flow"] == "partner"
    assert fo["ship_to"] == {"name": "Shop", "city": "Leeds"}
    links = {link["role"]: link for link in fo["links"]}
    assert (links["origin"]["connector"], links["origin"]["partner_order_id"]) == ("portal", "O-1")
    assert links["fulfiller"]["connector"] == "wms"
    assert links["fulfiller"]["partner_order_id"] == f"P-{fo_id}" and links["origin"]["state"] == "open"

    # The same order polled again (or a repeat of its version) makes no second FO.
    portal.add("orders", "partner_order",
               order("O-1", "2026-12-01T10:00:00Z", [("A", 3), ("B", 2)]))
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    await gw.wait_idle()
    assert len((await gw.call("GET", "/api/v1/fulfillment-orders"))["items"]) == 1
    assert len(wms.called("push_order")) == 1

    # The 3PL ships it all; the portal hears of the shipment and the status.
    shipped = {"id": "S1", "order_refs": [["fulfillment_order_id", fo_id]],
               "lines": [["A", 3], ["B", 2]], "updated_at": "2026-12-01T11:00:00Z",
               "tracking_numbers": ["1Z1"]}
    assert await webhook(gw, "wms", "shipment", shipped, "d1") == 200
    fo = await gw.wait_status(fo_id, "fulfilled")
    pushes = await wait_calls(gw, "portal", "push_fulfillment", 2)
    assert [p.payload["type"] for p in pushes] == ["shipment_allocated", "status_changed"]
    assert pushes[0].payload["partner_order_id"] == "O-1"
    shipment_id = pushes[0].payload["shipment_id"]

    async def watching() -> dict | None:
        fo = await gw.fo(fo_id)
        origin = next(link for link in fo["links"] if link["role"] == "origin")
        return origin if origin["state"] == "watching" and origin["pushed"] else None

    origin = await gw.wait_for(watching)
    assert origin["watch_until"] > fo["updated_at"]
    assert origin["pushed"][shipment_id]["partner_id"] == f"F-{shipment_id}"

    # The label is voided: the fulfilment pushed for it is cancelled at the origin, and the
    # relabel that follows is a new shipment and a new push.
    assert await webhook(gw, "wms", "shipment", {**shipped, "status": "voided",
                                                 "updated_at": "2026-12-01T12:00:00Z"},
                         "d2") == 200
    await gw.wait_status(fo_id, "unfulfilled")
    [cancel] = await wait_calls(gw, "portal", "cancel_fulfillment", 1)
    assert cancel.payload["partner_fulfillment_id"] == f"F-{shipment_id}"
    relabel = {**shipped, "id": "S2", "updated_at": "2026-12-01T12:30:00Z"}
    assert await webhook(gw, "wms", "shipment", relabel, "d3") == 200
    await gw.wait_status(fo_id, "fulfilled")
    pushes = await wait_calls(gw, "portal", "push_fulfillment", 5)
    assert [p.payload["type"] for p in pushes] == [
        "shipment_allocated", "status_changed", "status_changed", "shipment_allocated",
        "status_changed"]
    assert pushes[3].payload["shipment_id"] != shipment_id


async def test_a_later_version_cancels_the_fo_or_is_recorded_as_a_change(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    channel = {**PORTAL_CHANNEL, "oms": {"connector": "wms", "delay_minutes": 60}}
    gw = await start_fake(fake_doc(
        tmp_path / "g.sqlite3", "portal", "wms", channels=[channel],
        subscribers=[{"name": "erp", "url": receiver.url, "secret_env": "SUB_SECRET",
                      "events": ["*"]}]))
    portal = partner("portal")
    portal.add("orders", "partner_order", order("O-7", "2026-12-01T10:00:00Z", [("A", 2)]))
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    fo_id = fo_id_for("portal", "O-7")
    await gw.wait_idle()
    changed = order("O-7", "2026-12-01T10:30:00Z", [("A", 5)],
                    ship_to={"name": "Shop", "city": "York"})
    portal.add("orders", "partner_order", changed)
    older = order("O-7", "2026-12-01T09:00:00Z", [("A", 9)])  # stale: never over newer
    portal.add("orders", "partner_order", older)
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    await gw.wait_idle()
    fo = await gw.fo(fo_id)
    assert [(ln["sku"], ln["requested"]) for ln in fo["lines"]] == [("A", 2)]  # FO unchanged
    [entry] = [t for t in fo["timeline"] if t["kind"] == "source_changed"]
    assert entry["detail"]["changes"]["lines"]["after"][0]["quantity"] == 5
    assert entry["detail"]["changes"]["ship_to"]["after"]["city"] == "York"

    async def source_changed() -> list | None:
        return receiver.events("fulfillment_order.source_changed") or None

    [event] = await gw.wait_for(source_changed)
    assert event["data"]["fulfillment_order_id"] == fo_id
    assert set(event["data"]["changes"]) == {"lines", "ship_to"}

    portal.add("orders", "partner_order",
               {**changed, "status": "cancelled", "updated_at": "2026-12-01T11:00:00Z"})
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    fo = await gw.wait_status(fo_id, "cancelled")
    assert [o["status"] for o in fo["outbound"] if o["kind"] == "push_order"] == ["cancelled"]
    assert "source_cancelled" in [t["kind"] for t in fo["timeline"]]
    assert partner("wms").called("push_order") == []  # the delayed push never went out


async def test_an_order_no_channel_takes_is_kept_listed_and_reported(
        start_fake, tmp_path: Path, receiver: Receiver) -> None:
    gw = await start_fake(fake_doc(
        tmp_path / "g.sqlite3", "portal",
        subscribers=[{"name": "erp", "url": receiver.url, "secret_env": "SUB_SECRET",
                      "events": ["partner_order.unclaimed"]}]))
    portal = partner("portal")
    portal.add("orders", "partner_order", order("O-9", "2026-12-01T10:00:00Z", [("A", 1)]))
    portal.add("orders", "partner_order", order("O-9", "2026-12-01T10:00:00Z", [("A", 1)]))
    await gw.call("POST", "/api/v1/connectors/portal/poll")
    await gw.wait_idle()
    listed = await gw.call("GET", "/api/v1/partner-orders?unclaimed=true")
    [kept] = listed["items"]
    assert (kept["connector"], kept["id"], kept["fulfillment_order_id"]) == ("portal", "O-9", None)
    assert (await gw.call("GET", "/api/v1/fulfillment-orders"))["items"] == []

    async def reported() -> list | None:
        return receiver.events("partner_order.unclaimed") or None

    [event] = await gw.wait_for(reported)  # once, not once per version seen
    assert event["data"] == {"connector": "portal", "partner_order_id": "O-9",
                             "order_number": "N-O-9"}
    await gw.call("GET", "/api/v1/partner-orders?unclaimed=maybe", expect=400)
    portal.add("orders", "partner_order", order("O-9", "2026-12-01T11:00:00Z", [("A", 3)]))
    portal.add("orders", "partner_order", order("O-9", "2026-12-01T09:00:00Z", [("A", 7)]))
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    await gw.wait_idle()
    [kept] = (await gw.call("GET", "/api/v1/partner-orders?connector=portal"))["items"]
    assert kept["lines"][0]["quantity"] == 3  # the newest version; an older never over it


async def test_partner_records_are_kept_shown_and_written_back(start_fake,
                                                               tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "portal"))
    portal = partner("portal")
    for i, name in enumerate(["Acme", "Birch", "Cole"]):
        portal.add("records", "partner_record", {
            "kind": "company", "id": f"C{i}", "fields": {"name": name},
            "updated_at": f"2026-12-01T10:0{i}:00Z"})
    portal.add("records", "partner_record", {"kind": "location", "id": "L1",
                                             "fields": {"name": "Leeds DC"},
                                             "updated_at": "2026-12-01T10:00:00Z"})
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=records")
    await gw.wait_idle()
    base = "/api/v1/connectors/portal/records"
    first = await gw.call("GET", f"{base}/company?limit=2")
    second = await gw.call("GET", f"{base}/company?limit=2&cursor={first['next_cursor']}")
    names = [r["fields"]["name"] for r in first["items"] + second["items"]]
    assert sorted(names) == ["Acme", "Birch", "Cole"] and second["next_cursor"] is None
    assert (await gw.call("GET", f"{base}/location/L1"))["fields"] == {"name": "Leeds DC"}
    future = (await gw.call("GET", f"{base}/company?updated_since=2099-01-01T00:00:00Z"))
    assert future["items"] == []

    queued = await gw.call("PATCH", f"{base}/company/C0", {"fields": {"name": "Acme Ltd"}},
                           expect=202)
    assert queued["id"].startswith("outbox-") and queued["operation"] == "update:company"

    async def renamed() -> dict | None:
        record = await gw.call("GET", f"{base}/company/C0")
        return record if record["fields"]["name"] == "Acme Ltd" else None

    await gw.wait_for(renamed)  # the stored record changed once the partner confirmed
    await gw.call("POST", f"{base}/company", {"fields": {"name": "Dale"}}, expect=202)
    await gw.call("POST", f"{base}/company/C1/archive", expect=202)

    async def created_and_archived() -> bool:
        listed = (await gw.call("GET", f"{base}/company"))["items"]
        by_name = {r["fields"]["name"]: r for r in listed}
        return "Dale" in by_name and by_name["Birch"]["archived"]

    await gw.wait_for(created_and_archived)

    # Refused by the partner: a dead letter, and the stored record stays as it was.
    portal.answer("update:company", PartnerRejected("name already taken", 422))
    await gw.call("PATCH", f"{base}/company/C2", {"fields": {"name": "Acme Ltd"}}, expect=202)

    async def dead() -> list | None:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"] or None

    [letter] = await gw.wait_for(dead)
    assert letter["kind"] == "update:company" and letter["error"] == "rejected: name already taken"
    assert (await gw.call("GET", f"{base}/company/C2"))["fields"] == {"name": "Cole"}

    # What the connector does not declare: 501 naming the operation, 404 naming what exists.
    refused = await gw.call("PATCH", f"{base}/location/L1", {"fields": {"name": "x"}},
                            expect=501)
    assert refused["error"]["code"] == "not_supported"
    assert "update:location" in refused["error"]["message"]
    missing_kind = await gw.call("GET", f"{base}/product", expect=404)
    assert "company, location" in missing_kind["error"]["message"]
    await gw.call("PATCH", f"{base}/company/C404", {"fields": {"name": "x"}}, expect=404)
    await gw.call("PATCH", f"{base}/company/C0", {"name": "x"}, expect=400)


async def test_record_writes_turned_off_are_answered_501(start_fake, tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "portal", write_records=False))
    answer = await gw.call("POST", "/api/v1/connectors/portal/records/company",
                           {"fields": {"name": "x"}}, expect=501)
    assert "write_records = false" in answer["error"]["message"]
    assert partner("portal").calls == []


async def test_operations_retry_wait_out_rate_limits_and_dead_letter(
        start_fake, tmp_path: Path) -> None:
    channel = {"name": "web", "oms": {"connector": "wms"}}
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms", channels=[channel]))
    wms = partner("wms")
    wms.answer("push_order", PartnerUnavailable("HTTP 502"),
               PartnerRateLimited("HTTP 429", retry_after=0.3))
    fo = await gw.create_fo([("A", 1)], channel="web", order_number="W1")
    calls = await wait_calls(gw, "wms", "push_order", 3)
    assert calls[2].key == calls[0].key  # the same message, the partner's idempotency key

    async def sent() -> dict | None:
        view = await gw.fo(fo["id"])
        [push] = view["outbound"]
        return push if push["status"] == "sent" else None

    push = await gw.wait_for(sent)
    assert push["attempts"] == 3

    wms.answer("push_order", PartnerRejected("unknown SKU A", 422))
    other = await gw.create_fo([("A", 1)], channel="web", order_number="W2")

    async def failed() -> dict | None:
        view = await gw.fo(other["id"])
        return view if view["outbound"][0]["status"] == "dead" else None

    view = await gw.wait_for(failed)
    assert view["outbound"][0]["attempts"] == 1  # rejected: not retried
    fulfiller = next(link for link in view["links"] if link["role"] == "fulfiller")
    assert fulfiller["last_result"] == {"error": "rejected: unknown SKU A"}
    [letter] = (await gw.call("GET", "/api/v1/dead-letters"))["items"]
    await gw.call("POST", f"/api/v1/dead-letters/{letter['id']}/discard")
    assert (await gw.call("GET", "/api/v1/dead-letters"))["items"] == []
    await gw.call("POST", f"/api/v1/dead-letters/{letter['id']}/replay", expect=404)


async def test_an_operation_the_connector_does_not_support_is_declared_and_refused(
        start_fake, tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms"))
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    assert item["unsupported"] == {"push_inventory": "the fake partner keeps no stock levels"}
    assert "push_inventory" not in item["operations"]
    assert {"push_order", "cancel_fulfillment", "update:company"} <= set(item["operations"])
    assert [k["name"] for k in item["record_kinds"]] == ["company", "location"]


async def test_a_manual_match_can_be_undone(start_fake, tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms"))
    fo = await gw.create_fo([("A", 2)], order_number="M1")
    lost = {"id": "S9", "order_refs": [["order_number", "nobody"]], "lines": [["A", 2]],
            "updated_at": "2026-12-01T11:00:00Z"}
    assert await webhook(gw, "wms", "shipment", lost, "m1") == 200
    await gw.wait_idle()
    [shipment] = (await gw.call("GET", "/api/v1/unmatched-shipments"))["items"]
    await gw.call("POST", f"/api/v1/shipments/{shipment['id']}/unmatch", expect=409)
    await gw.call("POST", f"/api/v1/unmatched-shipments/{shipment['id']}/match",
                  {"fulfillment_order_ids": [fo["id"]]})
    await gw.wait_status(fo["id"], "fulfilled")
    undone = await gw.call("POST", f"/api/v1/shipments/{shipment['id']}/unmatch")
    assert undone["match_state"] == "unmatched" and undone["fulfillment_order_ids"] == []
    after = await gw.wait_status(fo["id"], "unfulfilled")
    kinds = [t["kind"] for t in after["timeline"]]
    assert "shipment_matched_manually" in kinds and "shipment_unmatched_manually" in kinds
    assert [s["id"] for s in (await gw.call("GET", "/api/v1/unmatched-shipments"))["items"]] \
        == [shipment["id"]]


async def test_a_feed_without_a_changed_since_filter_asks_only_about_watched_orders(
        start_fake, tmp_path: Path) -> None:
    """Links a feed still has to watch: open FOs, and completed ones during their watch time;
    after it (the hourly job), they are complete and no longer asked about."""
    from gateway.scheduler import finish_watching

    channel = {"name": "web", "oms": {"connector": "wms"}}
    doc = fake_doc(tmp_path / "g.sqlite3", "wms", channels=[channel])
    doc["links"] = {"watch_days": 0.00001}  # under a second
    gw = await start_fake(doc)
    wms = partner("wms")
    first = await gw.create_fo([("A", 1)], channel="web", order_number="W1")
    second = await gw.create_fo([("A", 1)], channel="web", order_number="W2")
    await wait_calls(gw, "wms", "push_order", 2)
    await gw.wait_idle()

    async def pushed() -> bool:
        fos = [await gw.fo(f["id"]) for f in (first, second)]
        return all(link["partner_order_id"] for fo in fos for link in fo["links"])

    await gw.wait_for(pushed)
    wms.by_order[f"P-{first['id']}"] = [{
        "id": "S1", "order_refs": [["fulfillment_order_id", first["id"]]], "lines": [["A", 1]],
        "updated_at": "2026-12-01T11:00:00Z"}]
    await gw.call("POST", "/api/v1/connectors/wms/poll?feed=watched")
    assert sorted(wms.asked_about[-1]) == sorted([f"P-{first['id']}", f"P-{second['id']}"])
    fo = await gw.wait_status(first["id"], "fulfilled")
    [link] = fo["links"]
    assert link["state"] == "watching" and link["watch_until"]
    await asyncio.sleep(1.0)  # its watch time is over
    assert await finish_watching(gw.gateway.storage) == 1
    [link] = (await gw.fo(first["id"]))["links"]
    assert link["state"] == "complete"
    await gw.call("POST", "/api/v1/connectors/wms/poll?feed=watched")
    assert wms.asked_about[-1] == [f"P-{second['id']}"]  # only the FO still open


async def test_a_message_for_an_operation_the_connector_does_not_do_is_a_dead_letter_at_once(
        start_fake, tmp_path: Path) -> None:
    """Written before the connector's type said it does not do this (or for a type that never
    did): not retried, and the dead letter names the operation and why."""
    from storage import NewOutboxMessage

    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms"))
    async with gw.gateway.storage.transaction() as tx:
        await tx.enqueue_outbox([NewOutboxMessage(
            key="inv-1", destination="connector:wms", kind="push_inventory",
            payload={"sku": "A", "available": 3}, not_before="2000-01-01T00:00:00.000000Z")],
            "2000-01-01T00:00:00.000000Z")
    gw.gateway.dispatcher.wake()

    async def dead() -> list | None:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"] or None

    [letter] = await gw.wait_for(dead)
    assert letter["kind"] == "push_inventory" and letter["attempts"] == 1
    assert letter["error"] == ("undeliverable: connector 'wms' does not support push_inventory:"
                               " the fake partner keeps no stock levels")
    assert partner("wms").calls == []


async def test_a_poll_asked_for_while_another_process_runs_the_feed_waits_then_says_so(
        start_fake, tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "portal"))
    gw.gateway.poller.manual_wait_seconds = 0.5
    storage = gw.gateway.storage
    held = await storage.claim_feed_run("portal", "orders", "another-process",
                                        "2026-12-01T10:00:00.000000Z", "2999-01-01T00:00:00Z")
    assert held is not None
    busy = await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders", expect=409)
    assert "being polled by another process" in busy["error"]["message"]
    assert not any(feed == "orders" for feed, _ in partner("portal").polls)  # not doubled
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    orders = next(f for f in item["feeds"] if f["name"] == "orders")
    assert orders["running"] and orders["lease_owner"] == "another-process"  # which replica
    metrics = await (await gw.session.get(f"{gw.url}/metrics")).text()
    assert f'gateway_replica{{owner="{gw.gateway.owner}"}} 1.0' in metrics
    assert "gateway_feed_leases_held 0.0" in metrics  # not this process's
    assert 'gateway_claims_held{queue="inbox"} 0.0' in metrics
    await storage.commit_poll("portal", "orders", "another-process", [], "7", {}, "t")
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    assert partner("portal").polls[-1] == ("orders", "7")  # from where the other left it


async def test_cancelling_before_the_push_sends_nothing_and_after_it_the_partners_cancel(
        start_fake, tmp_path: Path) -> None:
    delayed = {"name": "later", "oms": {"connector": "wms", "delay_minutes": 60}}
    at_once = {"name": "now", "oms": {"connector": "wms"}}
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms", channels=[delayed, at_once]))
    wms = partner("wms")
    waiting = await gw.create_fo([("A", 1)], channel="later", order_number="C1")
    cancelled = await gw.call("POST", f"/api/v1/fulfillment-orders/{waiting['id']}/cancel")
    assert [o["status"] for o in cancelled["outbound"]] == ["cancelled"]
    assert "push_cancelled" in [t["kind"] for t in cancelled["timeline"]]

    placed = await gw.create_fo([("A", 1)], channel="now", order_number="C2")
    [push] = await wait_calls(gw, "wms", "push_order", 1)

    async def pushed() -> bool:
        return any(o["status"] == "sent" for o in (await gw.fo(placed["id"]))["outbound"])

    await gw.wait_for(pushed)
    await gw.call("POST", f"/api/v1/fulfillment-orders/{placed['id']}/cancel")
    [cancel] = await wait_calls(gw, "wms", "cancel_order", 1)
    assert cancel.fo_id == placed["id"] and cancel.payload == push.payload
    await gw.call("POST", f"/api/v1/fulfillment-orders/{placed['id']}/cancel")  # again: no-op
    await asyncio.sleep(0.3)
    assert len(wms.called("cancel_order")) == 1
    assert [m.fo_id for m in wms.called("push_order")] == [placed["id"]]  # never the first


async def test_a_delayed_push_survives_a_restart(start_fake, tmp_path: Path) -> None:
    channel = {"name": "later", "oms": {"connector": "wms", "delay_minutes": 0.02}}  # 1.2 s
    doc = fake_doc(tmp_path / "g.sqlite3", "wms", channels=[channel])
    first = await start_fake(doc)
    fo = await first.create_fo([("A", 1)], channel="later", order_number="R1")
    await first.server.close()  # stopped before the push was due
    assert partner("wms").called("push_order") == []
    second = await start_fake(doc)
    [push] = await wait_calls(second, "wms", "push_order", 1)
    assert push.fo_id == fo["id"]


async def test_a_refused_push_is_replayed_from_its_dead_letter(start_fake, tmp_path: Path
                                                              ) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms", channels=[
        {"name": "now", "oms": {"connector": "wms"}}]))
    partner("wms").answer("push_order", PartnerRejected("store 9 unknown", 400))
    fo = await gw.create_fo([("A", 1)], channel="now", order_number="D1")

    async def dead() -> list | None:
        return (await gw.call("GET", "/api/v1/dead-letters"))["items"] or None

    [letter] = await gw.wait_for(dead)
    assert letter["fulfillment_order_id"] == fo["id"] and letter["attempts"] == 1
    view = await gw.fo(fo["id"])
    assert "push_failed" in [t["kind"] for t in view["timeline"]]
    await gw.call("POST", f"/api/v1/dead-letters/{letter['id']}/replay", expect=202)

    async def sent() -> bool:
        return [o["status"] for o in (await gw.fo(fo["id"]))["outbound"]] == ["sent"]

    await gw.wait_for(sent)
    assert len(partner("wms").called("push_order")) == 2
    assert await gw.call("GET", "/api/v1/dead-letters") == {"items": [], "next_cursor": None}
