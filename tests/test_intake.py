"""Webhook intake over loopback: the order of checks, nothing stored on a rejection."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from tests.conftest import SS_HOOK_TOKEN, GatewayUnderTest, Sandbox


def inbox_rows(gw: GatewayUnderTest) -> int:
    return gw.sql("SELECT COUNT(*) FROM inbox_events")[0][0]


async def post(gw: GatewayUnderTest, path: str, data: bytes,
               headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with gw.session.post(f"{gw.url}{path}", data=data,
                               headers={"Content-Type": "application/json", **(headers or {})}
                               ) as resp:
        return resp.status, await resp.json(content_type=None)


GOOD = b'{"resource_url": "http://127.0.0.1:1/shipments?batchId=1", "resource_type": "SHIP_NOTIFY"}'


async def test_unknown_connector_is_404(gw: GatewayUnderTest) -> None:
    status, body = await post(gw, f"/webhooks/nope?token={SS_HOOK_TOKEN}", GOOD)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert inbox_rows(gw) == 0


async def test_disabled_connector_is_404(start_gateway, sandbox: Sandbox) -> None:
    gw = await start_gateway(enabled=False)
    status, body = await post(gw, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", GOOD)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert inbox_rows(gw) == 0


async def test_oversized_body_is_413_before_verification(gw: GatewayUnderTest) -> None:
    big = b'{"x": "' + b"a" * (70 * 1024) + b'"}'
    status, body = await post(gw, "/webhooks/shipstation?token=wrong", big)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert inbox_rows(gw) == 0


async def test_oversized_chunked_body_is_413(gw: GatewayUnderTest) -> None:
    async def chunks():
        for _ in range(100):
            yield b"a" * 1024

    async with gw.session.post(f"{gw.url}/webhooks/shipstation?token={SS_HOOK_TOKEN}",
                               data=chunks()) as resp:
        assert resp.status == 413
    assert inbox_rows(gw) == 0


async def test_bad_token_is_401(gw: GatewayUnderTest) -> None:
    for path in ("/webhooks/shipstation", "/webhooks/shipstation?token=wrong",
                 f"/webhooks/shipstation?token={SS_HOOK_TOKEN}x"):
        status, body = await post(gw, path, GOOD)
        assert status == 401 and body["error"]["code"] == "webhook_unverified"
    assert inbox_rows(gw) == 0


async def test_malformed_json_is_400(gw: GatewayUnderTest) -> None:
    for data in (b"{not json", b"", b"\xff\xfe"):
        status, body = await post(gw, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", data)
        assert status == 400 and body["error"]["code"] == "bad_request"
    assert inbox_rows(gw) == 0
    assert (await gw.call("GET", "/healthz"))["status"] == "ok"


async def test_accepted_webhook_is_committed_before_the_2xx(gw: GatewayUnderTest) -> None:
    status, body = await post(gw, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", GOOD)
    assert status == 200 and body == {"status": "accepted"}
    # Read from the file by another connection: the row is already durable.
    assert inbox_rows(gw) == 1
    status, _ = await post(gw, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", GOOD)
    assert status == 200 and inbox_rows(gw) == 1


async def test_resource_url_elsewhere_is_refused(gw: GatewayUnderTest, aiohttp_server) -> None:
    """The body names another server: it is never fetched, no credentials leave, dead letter."""
    seen: list[str] = []

    async def trap(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"shipments": [], "page": 1, "pages": 1})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", trap)
    other = await aiohttp_server(app)
    hostile = [
        "https://evil.example.com/shipments?batchId=1",
        f"http://127.0.0.1:{other.port}/shipments?batchId=1".replace("127.0.0.1", "localhost"),
        f"http://user:pw@127.0.0.1:{other.port}/shipments",
        f"http://127.0.0.1:{other.port}/admin/export",
        "file:///etc/passwd",
    ]
    for url in hostile:
        body = aiohttp.JsonPayload({"resource_url": url, "resource_type": "SHIP_NOTIFY"})
        async with gw.session.post(gw.webhook_url, data=body) as resp:
            assert resp.status == 200
    await gw.wait_idle()
    dead = (await gw.call("GET", "/api/v1/dead-letters"))["items"]
    assert len(dead) == len(hostile)
    assert all("resource_url refused" in d["error"] for d in dead)
    assert all(d["attempts"] == 1 for d in dead)  # refused at once, not retried
    assert seen == []


async def test_concurrent_repeats_store_one_event(gw: GatewayUnderTest) -> None:
    async def deliver() -> int:
        status, _ = await post(gw, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", GOOD)
        return status

    assert await asyncio.gather(*(deliver() for _ in range(20))) == [200] * 20
    assert inbox_rows(gw) == 1
    async with gw.session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert 'gateway_webhooks_received_total{connector="shipstation",result="duplicate"} 19.0' \
        in text


async def test_concurrent_webhooks_share_commits_and_a_lone_one_is_not_held(
        gw: GatewayUnderTest) -> None:
    def body(i: int) -> bytes:
        return GOOD.replace(b"batchId=1", b"batchId=" + str(100 + i).encode())

    async def batches() -> tuple[float, float]:
        async with gw.session.get(f"{gw.url}/metrics") as resp:
            text = await resp.text()
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                  if line.startswith("gateway_intake_commit_batch_size_")}
        return (values["gateway_intake_commit_batch_size_count"],
                values["gateway_intake_commit_batch_size_sum"])

    url = f"/webhooks/shipstation?token={SS_HOOK_TOKEN}"
    statuses = await asyncio.gather(*(post(gw, url, body(i)) for i in range(40)))
    assert [status for status, _ in statuses] == [200] * 40
    assert inbox_rows(gw) == 40
    commits, stored = await batches()
    assert stored == 40 and commits < 40  # group commit: fewer commits than webhooks
    started = time.perf_counter()
    status, _ = await post(gw, url, body(99))
    assert status == 200 and inbox_rows(gw) == 41
    assert time.perf_counter() - started < 1.0  # alone: committed without waiting for company
    assert await batches() == (commits + 1, 41)


async def test_repeat_after_a_restart_stores_nothing(start_gateway, sandbox: Sandbox) -> None:
    first = await start_gateway()
    status, _ = await post(first, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", GOOD)
    assert status == 200 and inbox_rows(first) == 1
    await first.server.close()  # stops the gateway: storage closed, keys forgotten in memory
    second = await start_gateway()
    status, _ = await post(second, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", GOOD)
    assert status == 200 and inbox_rows(second) == 1
    other = GOOD.replace(b"batchId=1", b"batchId=2")
    status, _ = await post(second, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", other)
    assert status == 200 and inbox_rows(second) == 2


async def test_repeat_after_its_event_was_purged_is_stored_again(gw: GatewayUnderTest) -> None:
    from gateway.scheduler import purge_inbox

    ignored = GOOD.replace(b"SHIP_NOTIFY", b"ORDER_NOTIFY")  # processed without a fetch
    status, _ = await post(gw, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", ignored)
    await gw.wait_idle()
    gw.sql("UPDATE inbox_events SET received_at = '2000-01-01T00:00:00.000000Z'")
    assert await purge_inbox(gw.gateway.storage, 30) == 1
    assert inbox_rows(gw) == 0
    status, _ = await post(gw, f"/webhooks/shipstation?token={SS_HOOK_TOKEN}", ignored)
    assert status == 200 and inbox_rows(gw) == 1
