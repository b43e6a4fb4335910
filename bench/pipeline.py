"""The whole pipeline under sustained load: webhook -> intake -> resource fetch from the
ShipStation sandbox -> reconcile -> status visible in the API -> a signed status_changed event
delivered to a subscriber.

Loopback only, bounded in count and time. The gateway runs as `serve` on core 0; this process
(the load, the sandbox it fetches from, the subscriber and the status sampler) on core 1.
Before each run, FOs (one unit each) are written through the storage interface and each gets a
shipped label in the sandbox; then webhooks go out at a fixed rate, one per FO.

Prints, per rate: p50/p99 of webhook -> status visible (one FO in `--sample-every` polled
through the API every few ms) and of webhook -> event received (every FO), the backlog (inbox
depth and pending outbox) at the end of the sending and its growth over the run, and each
run's ratio against the offered rate. Then it raises the rate in short steps to find the
ceiling: the highest rate at which the backlog does not grow and events keep up.

    python3 dev.py bench pipeline [--rate 1000] [--seconds 30] [--ceiling 500,750,1000,1500,2000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake import ENV, HOOK, LOAD_CORE, SERVER_CORE, TOKEN, free_port, pin, spawn, wait_listening  # noqa: E402, I001

from connectors.shipstation.sandbox import create_app, sandbox_state  # noqa: E402
from gateway.domain.records import FulfillmentOrder, FulfillmentOrderLine, now_iso  # noqa: E402
from storage import NewFulfillmentOrder  # noqa: E402
from storage.sqlite import SqliteStorage  # noqa: E402

SECRET = "whsec_c2VjcmV0LWZvci10aGUtcGlwZWxpbmUtYmVuY2htYXJrIQ=="
TARGETS = {"status_p99": 0.050, "event_p99": 0.100}
MAX_SAMPLERS = 4


@dataclass
class Measured:
    rate: float
    seconds: float
    sent: int = 0
    failed: int = 0
    send_started: dict[str, float] = field(default_factory=dict)
    event_at: dict[str, float] = field(default_factory=dict)
    status_latency: list[float] = field(default_factory=list)
    depth: list[tuple[float, float, float]] = field(default_factory=list)  # (t, inbox, outbox)
    end_backlog: tuple[float, float] = (0.0, 0.0)
    elapsed: float = 0.0

    def event_latency(self) -> list[float]:
        return sorted(self.event_at[k] - self.send_started[k]
                      for k in self.event_at if k in self.send_started)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def write_config(path: Path, db: Path, port: int, sandbox_port: int, receiver_port: int,
                 concurrency: int) -> None:
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
[storage]
path = "{db}"
[retry]
attempts = 3
schedule_seconds = [0.5]
[worker]
concurrency = {concurrency}
[[connectors]]
name = "shipstation"
type = "shipstation"
base_url = "http://127.0.0.1:{sandbox_port}"
allowed_resource_origin = "http://127\\\\.0\\\\.0\\\\.1:{sandbox_port}"
api_key_env = "SS_KEY"
api_secret_env = "SS_SECRET"
webhook_token_env = "SS_HOOK"
rate_limit_per_minute = 100000000
shipments_interval_minutes = 1440
# the webhooks are what is measured: the feed's first run looks at nothing seeded before
initial_lookback_hours = 0
poll_overlap_minutes = 0
[[subscribers]]
name = "bench"
url = "http://127.0.0.1:{receiver_port}/events"
secret_env = "BENCH_EVENTS_SECRET"
events = ["fulfillment_order.status_changed"]
""")


async def seed(db: Path, state, prefix: str, count: int) -> list[tuple[str, str]]:
    """FOs through the storage interface, and a shipped label for each in the sandbox.
    Returns (FO id, the webhook's resource_url path) per FO."""
    storage = SqliteStorage(db)
    await storage.open()
    await storage.migrate()
    made = []
    try:
        for start in range(0, count, 1000):
            at = now_iso()
            async with storage.transaction() as tx:
                for i in range(start, min(start + 1000, count)):
                    fo_id = f"{prefix}-{i}"
                    await tx.create_fulfillment_order(NewFulfillmentOrder(
                        fo=FulfillmentOrder(fo_id, 0, (FulfillmentOrderLine("1", "SKU-1", 1),)),
                        request_hash=fo_id, ship_to={}, custom_fields={}, created_at=at))
                    order = state.upsert_order({
                        "orderNumber": f"{prefix}{i}", "orderKey": fo_id,
                        "orderStatus": "awaiting_shipment",
                        "items": [{"lineItemKey": "1", "sku": "SKU-1", "quantity": 1}]})
                    shipment = state.ship(order["orderId"])
                    made.append((fo_id, f"/shipments?batchId={shipment['batchNumber']}"
                                        "&includeShipmentItems=False"))
    finally:
        await storage.close()
    return made


async def backlog(session: aiohttp.ClientSession, api: str) -> tuple[float, float]:
    async with session.get(f"{api}/metrics") as resp:
        text = await resp.text()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("gateway_inbox_depth", "gateway_outbox_pending"):
            values[name] = float(value)
    return values.get("gateway_inbox_depth", 0.0), values.get("gateway_outbox_pending", 0.0)


async def drive(api: str, sandbox_url: str, work: list[tuple[str, str]], measured: Measured,
                sample_every: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks: set[asyncio.Task[None]] = set()

        async def send(i: int, fo_id: str, path: str) -> None:
            body = {"resource_url": sandbox_url + path, "resource_type": "SHIP_NOTIFY"}
            measured.send_started[fo_id] = time.perf_counter()
            try:
                async with session.post(f"{api}/webhooks/shipstation?token={HOOK}",
                                        json=body) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok = False
            measured.sent += ok
            measured.failed += not ok
            if ok and i % sample_every == 0 and sampling[0] < MAX_SAMPLERS:
                sampling[0] += 1
                try:
                    await sample(fo_id)
                finally:
                    sampling[0] -= 1

        # A few FOs at a time are watched through the API, so that reading does not become
        # the load (a gateway falling behind would otherwise be polled ever harder).
        sampling = [0]

        async def sample(fo_id: str) -> None:
            started = measured.send_started[fo_id]
            deadline = started + 10
            while time.perf_counter() < deadline:
                async with session.get(f"{api}/api/v1/fulfillment-orders/{fo_id}",
                                       headers=headers) as resp:
                    if (await resp.json())["status"] == "fulfilled":
                        measured.status_latency.append(time.perf_counter() - started)
                        return
                # Fine-grained where the target is (tens of ms), coarse once far past it, so
                # that a gateway falling behind is not read ever harder.
                await asyncio.sleep(0.005 if time.perf_counter() - started < 0.2 else 0.1)

        async def watch() -> None:
            while True:
                inbox, outbox = await backlog(session, api)
                measured.depth.append((time.perf_counter(), inbox, outbox))
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        for i, (fo_id, path) in enumerate(work):
            due = started + i / measured.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(i, fo_id, path))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        measured.elapsed = time.perf_counter() - started
        measured.end_backlog = await backlog(session, api)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        deadline = time.perf_counter() + 30
        # events arrive at the receiver of this process; polled, the wait stays bounded
        while len(measured.event_at) < measured.sent and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        watcher.cancel()


def growth(measured: Measured) -> float:
    """Backlog (inbox + outbox) in the last third of the run minus the first third's."""
    points = [(t, i + o) for t, i, o in measured.depth]
    if len(points) < 3:
        return 0.0
    third = len(points) // 3
    return statistics.mean(b for _, b in points[-third:]) - statistics.mean(
        b for _, b in points[:third])


def report(measured: Measured, targets: bool) -> None:
    events = measured.event_latency()
    status = measured.status_latency
    inbox, outbox = measured.end_backlog
    achieved = measured.sent / measured.elapsed if measured.elapsed else 0.0
    print(f"  offered {measured.rate:,.0f}/s for {measured.seconds:.0f} s: {measured.sent:,} "
          f"webhooks acknowledged ({measured.failed} failed), sent at {achieved:,.0f}/s "
          f"({achieved / measured.rate:.0%} of the offered rate)")
    print(f"  webhook -> status visible ({len(status)} sampled): p50 {pct(status, 50) * 1000:.1f} ms"
          f"   p99 {pct(status, 99) * 1000:.1f} ms"
          + (f"   (target p99 < {TARGETS['status_p99'] * 1000:.0f} ms)" if targets else ""))
    print(f"  webhook -> event received ({len(events):,} of {measured.sent:,}): "
          f"p50 {pct(events, 50) * 1000:.1f} ms   p99 {pct(events, 99) * 1000:.1f} ms"
          + (f"   (target p99 < {TARGETS['event_p99'] * 1000:.0f} ms)" if targets else ""))
    print(f"  backlog when sending ended: {inbox:.0f} inbox, {outbox:.0f} outbox; "
          f"growth over the run {growth(measured):+.0f}"
          + ("   (target: no growth)" if targets else ""))


def keeps_up(measured: Measured) -> bool:
    events = measured.event_latency()
    return (measured.failed == 0 and len(events) >= measured.sent * 0.999
            and growth(measured) < measured.rate * 0.25 and pct(events, 99) < 1.0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ceiling", default="500,750,1000,1500,2000",
                        help="rates to try after the main run, rising, comma-separated ('' for"
                             " none); from below the main rate, so a gateway that misses it still"
                             " shows the rate it does keep up with")
    parser.add_argument("--ceiling-seconds", type=float, default=6.0)
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument("--worker-concurrency", type=int, default=16,
                        help="[worker] concurrency of the gateway (its default: 16)")
    args = parser.parse_args()
    pin(LOAD_CORE)
    work = Path(tempfile.mkdtemp(prefix="gateway-pipeline-"))
    runners: list[web.AppRunner] = []
    gateway: subprocess.Popen | None = None
    try:
        sandbox_app = create_app(ENV["SS_KEY"], ENV["SS_SECRET"], rate_limit=100_000_000)
        state = sandbox_state(sandbox_app)
        measured_runs: list[Measured] = []

        async def receive(request: web.Request) -> web.Response:
            body = await request.json()
            fo_id = body["data"]["fulfillment_order_id"]
            current = measured_runs[-1] if measured_runs else None
            if current is not None and fo_id not in current.event_at:
                current.event_at[fo_id] = time.perf_counter()
            return web.Response(status=204)

        receiver_app = web.Application()
        receiver_app.router.add_post("/events", receive)
        ports = {}
        for name, app in (("sandbox", sandbox_app), ("receiver", receiver_app)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            ports[name] = free_port()
            await web.TCPSite(runner, "127.0.0.1", ports[name]).start()
        sandbox_url = f"http://127.0.0.1:{ports['sandbox']}"
        db, config, gw_port = work / "gateway.sqlite3", work / "gateway.toml", free_port()
        write_config(config, db, gw_port, ports["sandbox"], ports["receiver"],
                     args.worker_concurrency)
        api = f"http://127.0.0.1:{gw_port}"
        plan = [(args.rate, args.seconds)] + [
            (float(r), args.ceiling_seconds) for r in args.ceiling.split(",") if r.strip()]
        # Everything is seeded before the gateway starts, so seeding takes no CPU from a run.
        seeded = []
        for n, (rate, seconds) in enumerate(plan):
            seeded.append(await seed(db, state, f"run{n}", int(rate * seconds)))
        print(f"{sum(len(s) for s in seeded):,} FOs and labels seeded; gateway on core"
              f" {SERVER_CORE}, load, sandbox and subscriber on core {LOAD_CORE}")
        gateway = spawn([sys.executable, "-m", "gateway.cli", "--config", str(config),
                         "--log-level", "WARNING", "serve"], SERVER_CORE, work / "gateway.log")
        await wait_listening(gw_port)
        ceiling = None
        for n, (rate, seconds) in enumerate(plan):
            measured = Measured(rate, seconds)
            measured_runs.append(measured)
            if n == 0:
                print(f"\nSustained {rate:,.0f} webhooks/s for {seconds:.0f} s")
            elif n == 1:
                print("\nCeiling: short runs at rising rates")
            await drive(api, sandbox_url, seeded[n], measured, args.sample_every)
            report(measured, targets=n == 0)
            if n > 0:
                if keeps_up(measured):
                    ceiling = rate
                else:
                    print("  -> does not keep up")
                    break
            async with aiohttp.ClientSession() as session:  # settle before the next run
                deadline = time.perf_counter() + 60
                while sum(await backlog(session, api)) and time.perf_counter() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
        if len(plan) > 1:
            print(f"\nCeiling: {ceiling:,.0f} webhooks/s sustained (the highest rate tried that "
                  "kept up)" if ceiling else "\nCeiling: below the first rate tried")
    finally:
        if gateway is not None:
            gateway.kill()
            gateway.wait()
        for runner in runners:
            await runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ENV["BENCH_EVENTS_SECRET"] = SECRET
    asyncio.run(main())
