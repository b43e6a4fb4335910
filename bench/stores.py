"""Polling the seller's store: requests per cycle against the minimum, for each store platform.

    python3 dev.py bench stores [--orders 200] [--cycles 4] [--shipped 20] [--unrelated 30]

For each platform, against its sandbox over loopback HTTP with a gateway in this process:
`--orders` FOs are placed in the seller's store (a channel whose OMS is it), then each cycle
ships `--shipped` of them there (different ones each cycle), has `--unrelated` orders of the
store's own updated (orders the gateway never placed), and polls the `fulfillments` feed once.
Requests are counted at the sandbox; the minimum is what the platform's API needs at least
for what changed:

- one page of the "updated since" listing per page of orders it returns (the poll's
  `updated`: every order the store changed in the feed's window, the gateway's or not);
- per watched order that changed since it was last read, what its listing does not carry:
  Shopify and WooCommerce nothing (the fulfilments come in the order); BigCommerce its
  shipments, and its products the first time; Magento 2 its shipments.

Also printed: what reading every watched order each cycle would cost (the naive poll: one
read per order, or what the platform needs per order, whichever is more).
Target: requests / minimum = 1.00 in every cycle. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import config as config_mod  # noqa: E402
from gateway import logs  # noqa: E402
from gateway.app import Gateway  # noqa: E402
from gateway.domain.records import now_iso  # noqa: E402

TOKEN = "bench-token"
ENV = {"GATEWAY_API_TOKENS": TOKEN, "T": "bench-store-token", "S": "bench-store-secret",
       "K": "ck_bench", "C": "cs_bench", "W": "bench-webhook-secret"}


@dataclass
class Platform:
    name: str
    page: int
    per_changed: Callable[[bool], int]  # (never read before) -> reads beyond the listing
    connector: dict[str, Any]
    app: Callable[[], web.Application]
    ship: Callable[[Any, aiohttp.ClientSession, str, str], Awaitable[None]]
    unrelated: Callable[[Any, aiohttp.ClientSession, str, int], Awaitable[None]]


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with session.post(url, json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


def _platforms() -> list[Platform]:
    from connectors.bigcommerce.sandbox import create_app as bigcommerce
    from connectors.magento2.sandbox import create_app as magento
    from connectors.shopify.sandbox import Bucket
    from connectors.shopify.sandbox import create_app as shopify
    from connectors.woocommerce.sandbox import create_app as woocommerce

    async def ship_shopify(state: Any, session: aiohttp.ClientSession, url: str,
                           order_id: str) -> None:
        await _post(session, f"{url}/_sandbox/orders/{order_id.rsplit('/', 1)[1]}/fulfill",
                    {"items": [{"sku": "MUG", "quantity": 1}], "numbers": [f"1Z{order_id[-6:]}"]})

    async def ship_bigcommerce(state: Any, session: aiohttp.ClientSession, url: str,
                               order_id: str) -> None:
        await _post(session, f"{url}/_sandbox/orders/{order_id}/ship",
                    {"items": [{"sku": "MUG", "quantity": 1}], "tracking_number": f"1Z{order_id}"})

    async def ship_woo(state: Any, session: aiohttp.ClientSession, url: str,
                       order_id: str) -> None:
        order = state.orders[int(order_id)]
        await _post(session, f"{url}/_sandbox/orders/{order_id}/track", {
            "tracking_number": f"1Z{order_id}", "tracking_provider": "UPS",
            "products_list": [{"item_id": order["line_items"][0]["id"], "qty": 1}]})

    async def ship_magento(state: Any, session: aiohttp.ClientSession, url: str,
                           order_id: str) -> None:
        await _post(session, f"{url}/_sandbox/orders/{order_id}/ship", {
            "items": [{"sku": "MUG", "qty": 1}],
            "tracks": [{"track_number": f"1Z{order_id}", "title": "UPS", "carrier_code": "ups"}]})

    def unrelated(path: str, body: Callable[[int], Any]) -> Callable[..., Awaitable[None]]:
        async def make(state: Any, session: aiohttp.ClientSession, url: str, n: int) -> None:
            await _post(session, f"{url}/_sandbox{path}", body(n))
        return make

    lines = [{"sku": "MUG", "quantity": 2}]
    return [
        Platform("shopify", 100, lambda first: 0,
                 {"type": "shopify", "access_token_env": "T", "client_secret_env": "S",
                  "requests_per_second": 1000, "low_water_points": 0},
                 lambda: shopify(ENV["T"], ENV["S"], bucket=Bucket(1e9, 1e9, 1e9)),
                 ship_shopify, unrelated("/orders", lambda n: {"lines": lines})),
        Platform("bigcommerce", 250, lambda first: 2 if first else 1,
                 {"type": "bigcommerce", "access_token_env": "T", "client_secret_env": "S",
                  "rate_limit_per_window": 100_000},
                 lambda: bigcommerce(ENV["T"], ENV["S"], quota=100_000),
                 ship_bigcommerce, unrelated("/orders", lambda n: {"products": lines})),
        Platform("woocommerce", 100, lambda first: 0,
                 {"type": "woocommerce", "consumer_key_env": "K", "consumer_secret_env": "C",
                  "webhook_secret_env": "W", "requests_per_second": 1000},
                 lambda: woocommerce(ENV["K"], ENV["C"], ENV["W"]),
                 ship_woo, unrelated("/orders", lambda n: {"lines": lines})),
        Platform("magento2", 100, lambda first: 1,
                 {"type": "magento2", "access_token_env": "T", "requests_per_second": 1000},
                 lambda: magento(ENV["T"]),
                 ship_magento, unrelated("/orders", lambda n: {"lines": lines})),
    ]


async def _serve(app: web.Application, runners: list[web.AppRunner]) -> str:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    runners.append(runner)
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}"


async def one_platform(platform: Platform, orders: int, cycles: int, shipped: int,
                       unrelated: int, work: Path) -> list[tuple[int, int, int, int]]:
    runners: list[web.AppRunner] = []
    try:
        app = platform.app()
        url = await _serve(app, runners)
        state = next(v for v in app.values() if hasattr(v, "requests"))
        if platform.name == "woocommerce":
            state.product("MUG")
        cfg = config_mod.parse({
            "server": {"host": "127.0.0.1", "port": 0},
            "storage": {"path": str(work / f"{platform.name}.sqlite3")},
            "worker": {"concurrency": 8, "batch_size": 64},
            "connectors": [{"name": "seller", "base_url": url, **platform.connector}],
            "channels": [{"name": "wholesale", "oms": {"connector": "seller"}}]}, ENV)
        gateway = Gateway(cfg, first_poll_delay_seconds=3600)
        api = await _serve(gateway.web_app(), runners)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for n in range(orders):
                async with session.post(f"{api}/api/v1/fulfillment-orders", json={
                        "id": f"fo_bench_{n}", "channel": "wholesale",
                        "lines": [{"sku": "MUG", "quantity": 2}]}) as r:
                    assert r.status == 201, await r.text()
            placed: list[str] = []
            for _ in range(600):  # bounded: until every FO is in the seller's store
                page = await gateway.storage.links_to_watch("seller", "fulfiller", now_iso(),
                                                            None, orders + 1)
                placed = [link.partner_order_id for link in page if link.partner_order_id]
                if len(placed) == orders:
                    break
                await asyncio.sleep(0.1)
            if len(placed) < orders:
                async with session.get(f"{api}/api/v1/fulfillment-orders/fo_bench_0") as resp:
                    raise AssertionError(f"{platform.name}: {len(placed)} of {orders} placed;"
                                         f" {await resp.text()}")
            results = []
            poll = f"{api}/api/v1/connectors/seller/poll?feed=fulfillments"
            await asyncio.sleep(1.1)  # stamps are to the second on three platforms
            async with session.post(poll) as resp:  # the first poll reads every order placed
                assert resp.status == 200, await resp.text()
            await _idle(gateway)
            read_before = set(placed)
            for cycle in range(cycles):
                batch = placed[cycle * shipped:(cycle + 1) * shipped]
                for order_id in batch:
                    await platform.ship(state, session, url, order_id)
                for n in range(unrelated):
                    await platform.unrelated(state, session, url, n)
                await asyncio.sleep(1.1)  # stamps are to the second on three platforms
                mark = len(state.requests)
                async with session.post(poll) as resp:
                    stats = (await resp.json())["feeds"]["fulfillments"]
                    assert resp.status == 200, stats
                made = len(state.requests) - mark
                await _idle(gateway)
                minimum = math.ceil(max(stats["updated"], 1) / platform.page) + sum(
                    platform.per_changed(o not in read_before) for o in batch)
                read_before |= set(batch)
                naive = orders * max(1, platform.per_changed(False))  # each watched order
                results.append((made, minimum, naive, stats["updated"]))
            return results
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _idle(gateway: Gateway) -> None:
    for _ in range(600):
        if (await gateway.storage.inbox_stats())["depth"] == 0:
            return
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    logs.configure("ERROR")
    work = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    print(f"Seller-side polling, {args.orders} orders placed, {args.cycles} cycles of"
          f" {args.shipped} shipped + {args.unrelated} of the store's own updated"
          " (requests counted at each sandbox)")
    print(f"  {'platform':12} {'cycle':>5} {'listed':>7} {'requests':>9} {'minimum':>8}"
          f" {'ratio':>6} {'naive':>6}")
    worst = 0.0
    for platform in _platforms():
        results = await one_platform(platform, args.orders, args.cycles, args.shipped,
                                     args.unrelated, work)
        for cycle, (made, minimum, naive, listed) in enumerate(results, 1):
            worst = max(worst, made / minimum)
            print(f"  {platform.name:12} {cycle:5d} {listed:7d} {made:9d} {minimum:8d}"
                  f" {made / minimum:6.2f} {naive:6d}")
    print(f"  worst requests / minimum: {worst:.2f}   (goal 1.00; naive: every watched order"
          " read each cycle)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--shipped", type=int, default=20)
    parser.add_argument("--unrelated", type=int, default=30)
    args = parser.parse_args()
    if args.shipped * args.cycles > args.orders or min(vars(args).values()) < 1:
        parser.error("--shipped x --cycles must be at most --orders, all at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
