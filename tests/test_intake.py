"""Webhook intake over loopback: the order of checks, nothing stored on a rejection.

On the scripted fake connector type: its webhooks carry a token header and a delivery id.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tests.conftest import FAKE_TOKEN, GatewayUnderTest, fake_doc

HOOK = "/webhooks/fake"


@pytest.fixture
def start(start_fake, tmp_path: Path):
    async def started(**connector: Any) -> GatewayUnderTest:
        return await start_fake(fake_doc(tmp_path / "gateway.sqlite3", **connector))

    return started


@pytest.fixture
async def gw(start) -> GatewayUnderTest:
    return await start()


async def inbox_rows(gw: GatewayUnderTest) -> int:
    return (await gw.sql("SELECT COUNT(*) FROM inbox_events"))[0][0]


async def post(gw: GatewayUnderTest, path: str, data: bytes, token: str | None = FAKE_TOKEN
               ) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Fake-Token"] = token
    async with gw.session.post(f"{gw.url}{path}", data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def shipment(batch: int) -> bytes:
    """A webhook body: a shipment for nobody (it waits unmatched); the body is its key."""
    return orjson.dumps({"kind": "shipment", "record": {
        "id": f"S{batch}", "order_refs": [["order_number", f"N{batch}"]],
        "lines": [["A", 1]], "updated_at": "2026-12-01T10:00:00Z"}})


GOOD = shipment(1)



async def test_unknown_connector_is_404(gw: GatewayUnderTest) -> None:
    status, body = await post(gw, "/webhooks/nope", GOOD)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert await inbox_rows(gw) == 0


async def test_disabled_connector_is_404(start) -> None:
    gw = await start(enabled=False)
    status, body = await post(gw, HOOK, GOOD)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert await inbox_rows(gw) == 0


async def test_oversized_body_is_413_before_verification(gw: GatewayUnderTest) -> None:
    big = b'{"x": "' + b"a" * (70 * 1024) + b'"}'
    status, body = await post(gw, HOOK, big, token="wrong")
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert await inbox_rows(gw) == 0


async def test_oversized_chunked_body_is_413(gw: GatewayUnderTest) -> None:
    async def chunks():
        for _ in range(100):
            yield b"a" * 1024

    async with gw.session.post(f"{gw.url}{HOOK}", data=chunks(),
                               headers={"X-Fake-Token": FAKE_TOKEN}) as resp:
        assert resp.status == 413
    assert await inbox_rows(gw) == 0


async def test_bad_token_is_401(gw: GatewayUnderTest) -> None:
    for token in (None, "wrong", FAKE_TOKEN + "x", ""):
        status, body = await post(gw, HOOK, GOOD, token=token)
        assert status == 401 and body["error"]["code"] == "webhook_unverified"
    assert await inbox_rows(gw) == 0


async def test_malformed_json_is_400(gw: GatewayUnderTest) -> None:
    for data in (b"{not json", b"", b"\xff\xfe"):
        status, body = await post(gw, HOOK, data)
        assert status == 400 and body["error"]["code"] == "bad_request"
    assert await inbox_rows(gw) == 0
    assert (await gw.call("GET", "/healthz"))["status"] == "ok"


async def test_a_body_the_connector_cannot_act_on_is_400_and_stored_nowhere(
        gw: GatewayUnderTest) -> None:
    """The connector's verification looks at the body too: valid JSON of the wrong shape is
    refused at intake (not stored, then retried for a day and dead-lettered)."""
    for value in ([], "text", 3, None, {"kind": "shipment"}, [{"record": {}}],
                  {"kind": 1, "record": {}}):
        status, body = await post(gw, HOOK, orjson.dumps(value))
        assert status == 400, value
        assert body["error"]["message"] == "expected {kind, record} or a list of them"
    status, _ = await post(gw, HOOK, orjson.dumps({"kind": "noise", "record": {}}))
    assert status == 200  # the partner's, nothing to do: acknowledged, not stored
    assert await inbox_rows(gw) == 0
    async with gw.session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert 'gateway_webhooks_received_total{connector="fake",result="malformed"} 7.0' in text
    assert 'gateway_webhooks_received_total{connector="fake",result="ignored"} 1.0' in text


async def test_accepted_webhook_is_committed_before_the_2xx(gw: GatewayUnderTest) -> None:
    status, body = await post(gw, HOOK, GOOD)
    assert status == 200 and body == {"status": "accepted"}
    # Read from the file by another connection: the row is already durable.
    assert await inbox_rows(gw) == 1
    status, _ = await post(gw, HOOK, GOOD)
    assert status == 200 and await inbox_rows(gw) == 1


async def test_concurrent_repeats_store_one_event(gw: GatewayUnderTest) -> None:
    async def deliver() -> int:
        status, _ = await post(gw, HOOK, GOOD)
        return status

    assert await asyncio.gather(*(deliver() for _ in range(20))) == [200] * 20
    assert await inbox_rows(gw) == 1
    async with gw.session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert 'gateway_webhooks_received_total{connector="fake",result="duplicate"} 19.0' in text


async def test_concurrent_webhooks_share_commits_and_a_lone_one_is_not_held(
        gw: GatewayUnderTest) -> None:
    def body(i: int) -> bytes:
        return shipment(100 + i)

    async def batches() -> tuple[float, float]:
        async with gw.session.get(f"{gw.url}/metrics") as resp:
            text = await resp.text()
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                  if line.startswith("gateway_intake_commit_batch_size_")}
        return (values["gateway_intake_commit_batch_size_count"],
                values["gateway_intake_commit_batch_size_sum"])

    url = HOOK
    statuses = await asyncio.gather(*(post(gw, url, body(i)) for i in range(40)))
    assert [status for status, _ in statuses] == [200] * 40
    assert await inbox_rows(gw) == 40
    commits, stored = await batches()
    assert stored == 40 and commits < 40  # group commit: fewer commits than webhooks
    started = time.perf_counter()
    status, _ = await post(gw, url, body(99))
    assert status == 200 and await inbox_rows(gw) == 41
    assert time.perf_counter() - started < 1.0  # alone: committed without waiting for company
    assert await batches() == (commits + 1, 41)


async def test_repeat_after_a_restart_stores_nothing(start) -> None:
    first = await start()
    status, _ = await post(first, HOOK, GOOD)
    assert status == 200 and await inbox_rows(first) == 1
    await first.server.close()  # stops the gateway: storage closed, keys forgotten in memory
    second = await start()
    status, _ = await post(second, HOOK, GOOD)
    assert status == 200 and await inbox_rows(second) == 1
    other = shipment(2)
    status, _ = await post(second, HOOK, other)
    assert status == 200 and await inbox_rows(second) == 2


async def test_repeat_after_its_event_was_purged_is_stored_again(gw: GatewayUnderTest) -> None:
    from gateway.scheduler import purge_inbox

    ignored = GOOD
    status, _ = await post(gw, HOOK, ignored)
    await gw.wait_idle()
    await gw.sql("UPDATE inbox_events SET received_at = '2000-01-01T00:00:00.000000Z'")
    assert await purge_inbox(gw.gateway.storage, 30) == 1
    assert await inbox_rows(gw) == 0
    status, _ = await post(gw, HOOK, ignored)
    assert status == 200 and await inbox_rows(gw) == 1


def test_load_that_lasts_is_one_burst_even_when_it_hovers_at_the_threshold(monkeypatch) -> None:
    """The worker yields to intake during a burst, at most BURST_MAX_SECONDS. Load right at
    the threshold: windows that fall just short used to start a new burst each time, and the
    worker kept pausing for as long as the load lasted."""
    from gateway import intake

    clock = [1000.0]
    monkeypatch.setattr(intake.time, "monotonic", lambda: clock[0])
    committer = intake.GroupCommitter(storage=None)  # type: ignore[arg-type]
    seen = []
    for tick in range(50):  # 5 s of windows, every third one a little short
        committer._count(intake.BURST_EVENTS - (1 if tick % 3 == 2 else 0))
        seen.append(committer.busy())
        clock[0] += intake.BURST_WINDOW_SECONDS * 1.01
    assert seen[0] and not any(seen[int(intake.BURST_MAX_SECONDS * 10) + 1:])
    clock[0] += intake.BURST_QUIET_SECONDS * 2  # a quiet spell; then a new burst is one
    committer._count(intake.BURST_EVENTS)
    assert committer.busy()


def test_a_steady_thousand_a_second_is_no_burst(monkeypatch) -> None:
    """1,000 webhooks/s is what the whole pipeline is meant to keep up with: the worker must
    not stop processing for it (it used to, for the first 3 s: 3,000 events behind)."""
    from gateway import intake

    clock = [1000.0]
    monkeypatch.setattr(intake.time, "monotonic", lambda: clock[0])
    committer = intake.GroupCommitter(storage=None)  # type: ignore[arg-type]
    seen = []
    for _ in range(500):  # 5 s, ten webhooks every 10 ms
        committer._count(10)
        seen.append(committer.busy())
        clock[0] += 0.01
    assert not any(seen)
    for _ in range(10):  # then 5,000/s
        committer._count(50)
        clock[0] += 0.01
    assert committer.busy()


async def test_the_worker_claims_nothing_until_a_burst_ends_and_never_longer_than_one(
        monkeypatch) -> None:
    """While intake is busy the worker's claim loop waits (a batch claimed every pause cost
    a fifth of a burst's CPU), and gives up waiting after BURST_MAX_SECONDS' worth of pauses
    even if it is told the burst goes on."""
    from gateway import worker
    from gateway.backoff import RetryPolicy
    from gateway.metrics import Metrics

    monkeypatch.setattr(worker, "BURST_PAUSE_SECONDS", 0.001)
    answers = [True, True, True, False]
    asked = []

    def busy() -> bool:
        asked.append(1)
        return answers[len(asked) - 1] if len(asked) <= len(answers) else True

    no_storage = SimpleNamespace(next_inbox_due=None)  # the pause reads none of it
    inbox = worker.InboxWorker(no_storage, {}, RetryPolicy(1, (1.0,), 0.0),  # type: ignore[arg-type]
                               Metrics(), intake_busy=busy)
    await inbox._yield_to_intake()
    assert len(asked) == 4  # paused through the three busy answers, went on at the fourth
    asked.clear()
    answers = []
    await asyncio.wait_for(inbox._yield_to_intake(), 5)
    assert len(asked) == worker.BURST_PAUSES  # bounded: a burst never holds it for good
