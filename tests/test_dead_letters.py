"""Dead letters through the API: filtered by name, kind, error text, date and source;
everything a filter matches replayed in the background with a report; a discard keeps its
reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.errors import PartnerRejected
from tests.conftest import FAKE_TOKEN, GatewayUnderTest, fake_doc
from tests.fake_partner import partner


async def _dead_inbox(gw: GatewayUnderTest, connector: str, n: int) -> None:
    async with gw.session.post(f"{gw.url}/webhooks/{connector}", json={
            "kind": "no-such-kind", "record": {"id": n}}, headers={
            "X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": f"bad-{connector}-{n}"}) as resp:
        assert resp.status == 200


async def _letters(gw: GatewayUnderTest, query: str = "") -> list[dict[str, Any]]:
    return (await gw.call("GET", f"/api/v1/dead-letters{query}"))["items"]


async def _setup(start_fake: Any, tmp_path: Path) -> GatewayUnderTest:
    """Two inbox dead letters from `a`, one from `b`, and one outbox push to `wms` refused."""
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "a", "b", "wms", channels=[
        {"name": "web", "internal": True, "oms": {"connector": "wms"}}]))
    partner("wms").answer("push_order", PartnerRejected("SKU unknown at the 3PL", 422))
    for connector, n in (("a", 1), ("a", 2), ("b", 3)):
        await _dead_inbox(gw, connector, n)
    await gw.create_fo([("SKU-1", 1)], channel="web")

    async def four() -> Any:
        items = await _letters(gw)
        return items if len(items) == 4 else None

    await gw.wait_for(four)
    return gw


async def test_dead_letters_filtered_by_each_field(start_fake: Any, tmp_path: Path) -> None:
    gw = await _setup(start_fake, tmp_path)
    assert [d["connector"] for d in await _letters(gw, "?name=a")] == ["a", "a"]
    [push] = await _letters(gw, "?name=wms")
    assert push["kind"] == "push_order" and push["source"] == "outbox"
    assert [d["kind"] for d in await _letters(gw, "?kind=push_order")] == ["push_order"]
    assert len(await _letters(gw, "?error=SKU%20UNKNOWN")) == 1  # any case
    assert len(await _letters(gw, "?error=unknown%20fake%20record")) == 3
    assert len(await _letters(gw, "?source=inbox")) == 3
    assert await _letters(gw, "?since=2999-01-01T00:00:00Z") == []
    assert len(await _letters(gw, "?since=2000-01-01T00:00:00Z&name=b")) == 1
    assert await _letters(gw, "?error=100%25") == []  # a % is text, not a wildcard
    bad = await gw.call("GET", "/api/v1/dead-letters?source=elsewhere", expect=400)
    assert bad["error"]["problems"][0]["field"] == "source"


async def test_everything_a_filter_matches_is_replayed_with_a_report(
        start_fake: Any, tmp_path: Path) -> None:
    gw = await _setup(start_fake, tmp_path)
    job = await gw.call("POST", "/api/v1/dead-letters/replay", {"name": "a"}, expect=202)
    assert job["filter"] == {"name": "a"} and job["by"] == "api"

    async def finished() -> Any:
        view = await gw.call("GET", f"/api/v1/dead-letters/replays/{job['id']}")
        return view if view["state"] == "finished" else None

    report = await gw.wait_for(finished)
    assert report["matched"] == 2 and report["replayed"] == 2 and report["gone"] == []
    assert report["error"] is None and report["finished_at"]
    # They were processed again (and failed again, being what they are): still only `a`'s.
    remaining = {d["connector"] for d in await _letters(gw)}
    assert "b" in remaining and "wms" in {d["connector"] for d in await _letters(gw)}
    await gw.call("GET", "/api/v1/dead-letters/replays/replay_nope", expect=404)


async def test_a_discard_keeps_its_reason(start_fake: Any, tmp_path: Path) -> None:
    gw = await _setup(start_fake, tmp_path)
    [push] = await _letters(gw, "?kind=push_order")
    await gw.call("POST", f"/api/v1/dead-letters/{push['id']}/discard",
                  {"reason": "order placed by phone"})
    rows = await gw.sql("SELECT discard_reason FROM outbox_messages WHERE id = ?",
                        (int(push["id"].removeprefix("outbox-")),))
    assert rows == [("order placed by phone",)]
    [inbox] = (await _letters(gw, "?name=b"))
    await gw.call("POST", f"/api/v1/dead-letters/{inbox['id']}/discard")  # no reason: fine
    assert len(await _letters(gw)) == 2
