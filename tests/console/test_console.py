"""The console's routes, server side, through HTTP as a browser calls them: access (no page
without a session, a wrong token, CSRF, idle expiry), the overview, search by any id, the
unmatched queue (match and undo, on the FO's timeline with who did it), dead letters (one's
payload and error, replay, discard with a reason), cancelling an FO."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import aiohttp

from gateway import logs
from gateway.errors import PartnerUnavailable
from tests.conftest import FAKE_TOKEN, fake_doc
from tests.console.conftest import ALICE, CONSOLE_ENV, Operator
from tests.fake_partner import partner


async def test_nothing_of_the_console_without_a_session(console: Any) -> None:
    op: Operator = await console()
    for path in ("/console/", "/console/unmatched", "/console/dead-letters",
                 "/console/fo/fo-1", "/console/search?q=x", "/console/dead-letters/inbox-1"):
        async with op.session.get(op.gw.url + path, allow_redirects=False) as resp:
            assert resp.status == 303, path
            assert resp.headers["Location"].startswith("/console/login?next=")
    for path in ("/console/fo/fo-1/cancel", "/console/shipments/s/match",
                 "/console/dead-letters/inbox-1/replay", "/console/logout"):
        await op.post(path, {"confirm": "yes"}, expect=401, csrf=False)
    assert "Operator log in" in await op.get("/console/login")


async def test_a_wrong_token_is_refused_and_never_logged(console: Any) -> None:
    op: Operator = await console()
    said = io.StringIO()
    logs.configure("INFO", stream=said)
    try:
        text = await op.login("not-a-token-at-all-000", expect=401)
        assert "not an operator token" in text
        api_token = op.gw.headers["Authorization"].removeprefix("Bearer ")
        await op.login(api_token, expect=401)  # an API token is not an operator token
        await op.login(ALICE)
    finally:
        logs.configure("WARNING")
    assert '"event":"console.login_failed"' in said.getvalue()
    assert '"operator":"alice"' in said.getvalue()
    for secret in ("not-a-token-at-all-000", ALICE, api_token):
        assert secret not in said.getvalue()
    cookie = next(c for c in op.session.cookie_jar if c.key == "gw_console")
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console/"
    assert ALICE not in cookie.value


async def test_a_post_without_the_csrf_token_is_refused(console: Any) -> None:
    op: Operator = await console()
    fo = await op.gw.create_fo([("SKU-1", 1)], channel="web")
    await op.login()
    await op.post(f"/console/fo/{fo['id']}/cancel", {"confirm": "yes"}, expect=403,
                  csrf=False)
    await op.post(f"/console/fo/{fo['id']}/cancel", {"confirm": "yes", "csrf": "forged"},
                  expect=403, csrf=False)
    assert (await op.gw.fo(fo["id"]))["status"] == "unfulfilled"
    # Logging in again starts another session: the old page's token no longer works.
    old = op.csrf
    await op.post("/console/logout")
    await op.login()
    assert op.csrf != old


async def test_an_idle_session_must_log_in_again(console: Any) -> None:
    op: Operator = await console(session_idle_minutes=1 / 60)  # a second
    await op.login()
    await op.get("/console/")
    await asyncio.sleep(2.1)
    async with op.session.get(op.gw.url + "/console/", allow_redirects=False) as resp:
        assert resp.status == 303 and "/console/login" in resp.headers["Location"]


async def test_the_overview_marks_a_failing_feed_and_counts_what_waits(console: Any) -> None:
    op: Operator = await console()
    await op.shipment("S-LOST", [["order_number", "NOPE-1"]], [("SKU-1", 1)])
    partner("wms").poll_error = PartnerUnavailable("wms: HTTP 503: down for maintenance")
    await op.gw.call("POST", "/api/v1/connectors/wms/poll?feed=orders", expect=None)
    fo = await op.gw.create_fo([("SKU-2", 1)], channel="web", order_number="SEEN-1")
    await op.shipment("S-SEEN", [["order_number", "SEEN-1"]], [("SKU-2", 1)])
    await op.login()
    page = await op.get("/console/")
    changes = page[page.index('id="changes"'):]
    assert fo["id"] in changes and "unfulfilled → fulfilled" in changes
    assert 'id="unmatched-count">1<' in page
    assert "failing" in page and "HTTP 503: down for maintenance" in page
    assert "wms" in page and "records" in page  # every feed listed


async def test_search_finds_an_fo_by_any_of_its_ids(console: Any) -> None:
    op: Operator = await console()
    fo = await op.gw.create_fo([("SKU-1", 2)], channel="web", order_number="ORD-77")
    await op.shipment("S-9", [["fulfillment_order_id", fo["id"]]], [("SKU-1", 2)],
                      tracking="1ZTRACK42")
    await op.login()
    for query in (fo["id"], "ORD-77", "1ZTRACK42", "S-9"):
        page = await op.get(f"/console/search?q={query}")
        assert f"FO {fo['id']}" in page, query
    partner("wms").add("orders", "noise", {"id": "N1"})  # a polled record: its delivery key
    await op.gw.call("POST", "/api/v1/connectors/wms/poll?feed=orders")
    found = await op.get("/console/search?q=orders:0")
    assert "delivery orders:0 (inbox-" in found
    # A webhook's delivery key too.
    async with op.session.post(f"{op.gw.url}/webhooks/wms", json={
            "kind": "no-such-kind", "record": {"id": 1}}, headers={
            "X-Fake-Token": "fake-hook-token", "X-Fake-Delivery": "hook-77"}) as resp:
        assert resp.status == 200
    await op.gw.wait_idle()
    assert "delivery hook-77 (inbox-" in await op.get("/console/search?q=hook-77")
    [shipment] = (await op.gw.call("GET", f"/api/v1/shipments?fulfillment_order_id={fo['id']}")
                  )["items"]
    assert f"FO {fo['id']}" in await op.get(f"/console/search?q={shipment['id']}")
    assert "Nothing has the id" in await op.get("/console/search?q=no-such-thing")


async def test_match_and_undo_from_the_unmatched_queue(console: Any) -> None:
    op: Operator = await console()
    fo = await op.gw.create_fo([("SKU-1", 3)], channel="web", order_number="A-1")
    await op.shipment("S-ODD", [["order_number", "a1-typo"]], [("SKU-1", 3)])
    await op.login()
    queue = await op.get("/console/unmatched")
    [shipment] = (await op.gw.call("GET", "/api/v1/unmatched-shipments"))["items"]
    assert shipment["id"] in queue and "a1-typo" in queue

    _, url, page = await op.post(f"/console/shipments/{shipment['id']}/match",
                                 {"fo_id": fo["id"]})
    assert url.endswith(f"/console/fo/{fo['id']}?msg=Shipment+{shipment['id']}+matched+by+hand.")
    assert 'id="fo-status">fulfilled<' in page
    [entry] = [t for t in (await op.gw.fo(fo["id"]))["timeline"]
               if t["kind"] == "shipment_matched_manually"]
    assert entry["detail"]["by"] == "console:alice"
    # A second match of a matched shipment is refused, shown on the page.
    _, _, again = await op.post(f"/console/shipments/{shipment['id']}/match",
                                {"fo_id": fo["id"]})
    assert "already matched" in again

    await op.post(f"/console/shipments/{shipment['id']}/unmatch",
                  {"back": f"/console/fo/{fo['id']}"})
    after = await op.gw.fo(fo["id"])
    assert after["status"] == "unfulfilled"
    [undone] = [t for t in after["timeline"] if t["kind"] == "shipment_unmatched_manually"]
    assert undone["detail"]["by"] == "console:alice"
    assert shipment["id"] in await op.get("/console/unmatched")


async def test_dead_letters_are_read_replayed_and_discarded(console: Any) -> None:
    op: Operator = await console()
    bad = {"kind": "no-such-kind", "record": {"id": "x"}}
    for n in (1, 2):
        async with op.session.post(f"{op.gw.url}/webhooks/wms", json=bad, headers={
                "X-Fake-Token": "fake-hook-token", "X-Fake-Delivery": f"bad-{n}"}) as resp:
            assert resp.status == 200

    async def two_dead() -> Any:
        items = (await op.gw.call("GET", "/api/v1/dead-letters"))["items"]
        return items if len(items) == 2 else None

    first, second = await op.gw.wait_for(two_dead)
    await op.login()
    listing = await op.get("/console/dead-letters")
    assert first["id"] in listing and second["id"] in listing
    one = await op.get(f"/console/dead-letters/{first['id']}")
    assert "unknown fake record kind" in one and "no-such-kind" in one  # error and payload

    await op.post(f"/console/dead-letters/{first['id']}/replay")
    _, _, page = await op.post(f"/console/dead-letters/{second['id']}/discard", {"reason": ""})
    assert "Say why" in page
    said = io.StringIO()
    logs.configure("INFO", stream=said)
    try:
        await op.post(f"/console/dead-letters/{second['id']}/discard",
                      {"reason": "a test event, never real"})
    finally:
        logs.configure("WARNING")
    assert '"reason":"a test event, never real"' in said.getvalue()
    remaining = [d["id"] for d in (await op.gw.call("GET", "/api/v1/dead-letters"))["items"]]
    assert second["id"] not in remaining


async def test_cancel_needs_its_confirmation(console: Any) -> None:
    op: Operator = await console()
    fo = await op.gw.create_fo([("SKU-1", 1)], channel="web")
    await op.login()
    _, _, page = await op.post(f"/console/fo/{fo['id']}/cancel", {})
    assert "Tick the box" in page
    _, _, page = await op.post(f"/console/fo/{fo['id']}/cancel", {"confirm": "yes"})
    assert 'id="fo-status">cancelled<' in page
    [entry] = [t for t in (await op.gw.fo(fo["id"]))["timeline"]
               if t["kind"] == "cancel_requested"]
    assert entry["detail"]["by"] == "console:alice"


async def test_no_console_unless_configured(start_fake: Any, tmp_path: Any) -> None:
    from tests.conftest import fake_doc

    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3"), env=CONSOLE_ENV)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gw.url}/console/login") as resp:
            assert resp.status == 404


async def test_dead_letters_filtered_and_replayed_from_the_console(console: Any) -> None:
    op: Operator = await console()
    for n in (1, 2):
        async with op.session.post(f"{op.gw.url}/webhooks/wms", json={
                "kind": "no-such-kind", "record": {"id": n}}, headers={
                "X-Fake-Token": "fake-hook-token", "X-Fake-Delivery": f"f-{n}"}) as resp:
            assert resp.status == 200

    async def two() -> Any:
        items = (await op.gw.call("GET", "/api/v1/dead-letters"))["items"]
        return items if len(items) == 2 else None

    await op.gw.wait_for(two)
    await op.login()
    assert "No dead letters." in await op.get("/console/dead-letters?kind=push_order")
    page = await op.get("/console/dead-letters?name=wms&error=UNKNOWN&since=2000-01-01")
    assert page.count('<tr id="inbox-') == 2
    _, _, wrong = await op.post("/console/dead-letters/replay", {"source": "elsewhere"})
    assert "source" in wrong and "Dead letters" in wrong  # refused, shown, nothing started
    _, url, progress = await op.post("/console/dead-letters/replay", {"name": "wms"})
    assert "/console/dead-letters/replays/replay_" in url
    job_id = url.rsplit("/", 1)[1]

    async def finished() -> Any:
        text = await op.get(f"/console/dead-letters/replays/{job_id}")
        return text if 'id="replay-state">finished' in text else None

    report = await op.gw.wait_for(finished)
    assert "2 matched, 2 queued again" in report and "by console:alice" in report


async def test_the_connector_page_polls_pauses_and_resumes(console: Any) -> None:
    op: Operator = await console()
    await op.login()
    page = await op.get("/console/connectors/wms")
    assert 'id="feed-orders"' in page and "Poll orders now" in page
    _, _, after = await op.post("/console/connectors/wms/poll", {"feed": "orders"})
    assert "Polled: 0 record(s)" in after
    assert [feed for feed, _ in partner("wms").polls] == ["orders"]

    _, _, after = await op.post("/console/connectors/wms/feeds/orders/pause")
    assert "Feed orders paused." in after and "by console:alice" in after
    _, _, refused = await op.post("/console/connectors/wms/poll", {"feed": "orders"})
    assert "is paused (by console:alice" in refused
    assert "paused" in await op.get("/console/")
    await op.post("/console/connectors/wms/feeds/orders/resume")
    assert "by console:alice" not in await op.get("/console/connectors/wms")

    _, _, after = await op.post("/console/destinations/connector:wms/pause",
                                {"back": "/console/connectors/wms"})
    assert "Paused</span> by console:alice" in after
    [destination] = [d for d in (await op.gw.call("GET", "/api/v1/destinations"))["items"]
                     if d["destination"] == "connector:wms"]
    assert destination["paused_by"] == "console:alice"
    await op.post("/console/destinations/connector:wms/resume", {"back": "https://evil.example/"})
    [destination] = [d for d in (await op.gw.call("GET", "/api/v1/destinations"))["items"]
                     if d["destination"] == "connector:wms"]
    assert destination["paused_by"] is None


async def test_the_fo_page_flags_a_fulfilment_not_pushed(start_fake: Any, tmp_path: Any,
                                                         operator_client: Any) -> None:
    doc = fake_doc(tmp_path / "g.sqlite3", "wms", "market", channels=[{
        "name": "mk", "source_connector": "market", "push_fulfillment_updates": True,
        "oms": {"connector": "wms"}}])
    doc["console"] = {"tokens_env": "CONSOLE_TOKENS"}
    op = Operator(await start_fake(doc, env=CONSOLE_ENV), operator_client)
    async with op.session.post(f"{op.gw.url}/webhooks/market", json={
            "kind": "partner_order", "record": {"id": "B1", "lines": [["MUG", 1], ["TEE", 1]],
                                                "updated_at": "2026-12-01T10:00:00Z"}},
            headers={"X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": "B1"}) as resp:
        assert resp.status == 200
    await op.gw.wait_idle()
    [fo] = (await op.gw.call("GET", "/api/v1/fulfillment-orders"))["items"]
    record = {"id": "S1", "order_refs": [["fulfillment_order_id", fo["id"]]],
              "lines": [["MUG", 1]], "tracking_numbers": ["1Z-A", "1Z-B"],
              "updated_at": "2026-12-01T10:00:00Z"}
    async with op.session.post(f"{op.gw.url}/webhooks/wms", json={
            "kind": "shipment", "record": record},
            headers={"X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": "S1"}) as resp:
        assert resp.status == 200
    await op.gw.wait_idle()
    await op.login()
    page = await op.get(f"/console/fo/{fo['id']}")
    flagged = re.search(r'<span class="bad" data-shipment="[^"]+">([^<]+)</span>', page)
    assert flagged, page
    assert "rejected: one item with 2 tracking numbers (1Z-A, 1Z-B)" in flagged.group(1)
