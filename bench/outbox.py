"""Outbox benchmark: signed event deliveries per second against a no-op receiver, and the
ratio to that receiver's own capacity measured in the same run.

    python bench/outbox.py [--messages 20000] [--rounds 8] [--concurrency 16]

The receiver (bench/noop.py, aiohttp, POST /events) runs in its own process on one core; the
gateway's dispatcher and the load generator that measures the receiver take turns on the other.
The two cores swap roles every two rounds (a receiver waits on each), because on this shared
host one core is often slower than the other.
Each round measures the receiver's capacity with the lean generator (bench/loadgen.py, the
same body size and webhook headers), then lets a real gateway deliver a pre-filled outbox of
N events (N FOs, so no ordering waits) and times it until nothing is pending: each delivery
signed, POSTed over keep-alive, and marked sent in SQLite (synchronous=FULL). Rounds alternate
which goes first; the ratio reported is the median of the rounds' ratios, each pairing two runs
made seconds apart (this host's speed drifts). Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from intake import free_port, pin, spawn, wait_listening  # noqa: E402
from loadgen import Run, drive  # noqa: E402

from gateway import config as config_mod  # noqa: E402
from gateway import logs  # noqa: E402
from gateway.app import Gateway  # noqa: E402
from gateway.domain.records import now_iso  # noqa: E402
from gateway.outbound import Outbound  # noqa: E402
from storage.sqlite import SqliteStorage  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-bench!").decode()
EVENT_DATA = {"old_status": "unfulfilled", "new_status": "partially_fulfilled",
              "lines": [{"line_id": "1", "sku": "TSHIRT-BLK-M", "requested": 10,
                         "fulfilled": 6}]}


def gateway_config(db: Path, receiver_port: int, concurrency: int) -> config_mod.Config:
    return config_mod.parse({
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"path": str(db)},
        "outbox": {"concurrency": concurrency},
        "subscribers": [{"name": "bench", "url": f"http://127.0.0.1:{receiver_port}/events",
                         "secret_env": "BENCH_SECRET", "events": ["*"]}],
    }, {"GATEWAY_API_TOKENS": "bench", "BENCH_SECRET": SECRET})


async def fill_outbox(cfg: config_mod.Config, messages: int, one_sequence: bool) -> None:
    storage = SqliteStorage(cfg.storage.path)
    await storage.open()
    await storage.migrate()
    outbound = Outbound(cfg)
    try:
        for start in range(0, messages, 1000):
            at = now_iso()
            async with storage.transaction() as tx:
                for i in range(start, min(start + 1000, messages)):
                    fo_id = "fo_bench" if one_sequence else f"fo_bench_{i}"
                    await outbound.event(tx, "fulfillment_order.status_changed",
                                         {"fulfillment_order_id": fo_id, **EVENT_DATA}, at, fo_id)
    finally:
        await storage.close()


async def deliver(cfg: config_mod.Config, messages: int, limit_seconds: float) -> Run:
    """Start a gateway on a full outbox; time it until nothing is pending."""
    gateway = Gateway(cfg, run_scheduler=False)
    run = Run(sent=messages)
    started = time.perf_counter()
    await gateway.start()
    try:
        # Watched with an index lookup (the earliest pending message): counting the pending
        # rows every 20 ms would itself cost the core a few percent.
        while time.perf_counter() - started < limit_seconds:
            if await gateway.storage.next_outbox_due() is None:
                break
            await asyncio.sleep(0.02)
        run.elapsed = time.perf_counter() - started
        stats = await gateway.storage.outbox_stats()
        run.ok = messages - stats["pending"] - stats["dead"]
        run.failed = stats["dead"]
    finally:
        await gateway.stop()
    return run


def event_request(port: int, body: bytes) -> bytes:
    """A delivery as the dispatcher sends it: the three webhook headers and a JSON body."""
    return (f"POST /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nwebhook-id: evt_0123456789abcdef0123456789\r\n"
            "webhook-timestamp: 1795000000\r\n"
            "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="[outbox] concurrency: deliveries in flight (default as config)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    logs.configure("ERROR")
    work = Path(tempfile.mkdtemp(prefix="gateway-outbox-bench-"))
    life = str(args.seconds * 2 * args.rounds + 120)
    ports = [free_port(), free_port()]  # a receiver on core 0, one on core 1
    receivers = [spawn([sys.executable, "bench/noop.py", "aiohttp", str(ports[core]), life],
                       core, work / f"receiver{core}.log") for core in (0, 1)]
    print(f"{os.cpu_count()} cores; a receiver on one, the gateway and the load generator on"
          f" the other (swapped every two rounds); {args.messages:,} events per round,"
          f" {args.concurrency} in flight")
    try:
        for port in ports:
            await wait_listening(port)
        sample = (b'{"id":"evt_0123456789abcdef0123456789","type":"fulfillment_order.status_'
                  b'changed","timestamp":"2026-11-23T12:00:00.000000Z","data":'
                  + str(EVENT_DATA).encode() + b"}")
        baselines, gateways = [], []

        async def baseline(port: int) -> None:
            await drive("127.0.0.1", port, lambda i: event_request(port, sample),
                        500, 8, 10)  # warm-up
            baselines.append(await drive(
                "127.0.0.1", port, lambda i: event_request(port, sample),
                args.messages, args.connections, args.seconds))

        async def gateway(round_no: int, port: int) -> None:
            cfg = gateway_config(work / f"round{round_no}.sqlite3", port, args.concurrency)
            await fill_outbox(cfg, args.messages, one_sequence=False)
            gateways.append(await deliver(cfg, args.messages, args.seconds))

        # Alternating order and cores; each round's ratio pairs two runs made seconds apart.
        for round_no in range(args.rounds):
            core = round_no // 2 % 2  # the gateway's and the generator's; threads inherit it
            pin(core)
            port = ports[1 - core]
            if round_no % 2:
                await gateway(round_no, port)
                await baseline(port)
            else:
                await baseline(port)
                await gateway(round_no, port)
        pin(0)
        ordered_count = min(args.messages, 2_000)
        cfg = gateway_config(work / "ordered.sqlite3", ports[1], args.concurrency)
        await fill_outbox(cfg, ordered_count, one_sequence=True)
        ordered = await deliver(cfg, ordered_count, args.seconds)
    finally:
        for receiver in receivers:
            receiver.kill()
            receiver.wait()
        shutil.rmtree(work, ignore_errors=True)

    def median(runs: list[Run]) -> Run:
        return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]

    base, gw = median(baselines), median(gateways)
    print(f"\nSigned event deliveries (median of {args.rounds} rounds)")
    print(f"  receiver capacity (lean generator) {base.rate:>9,.0f} /s   "
          f"({base.ok:,} ok in {base.elapsed:.1f} s)")
    print(f"  gateway outbox deliveries          {gw.rate:>9,.0f} /s   "
          f"({gw.ok:,} sent, {gw.failed} dead, {gw.elapsed:.1f} s)")
    ratios = [g.rate / b.rate for g, b in zip(gateways, baselines, strict=True)]
    print(f"  gateway / receiver capacity: {statistics.median(ratios):.1%}   (target >= 65 %;"
          f" median of the rounds' ratios; of the median rates: {gw.rate / base.rate:.1%})")
    print("  each round, gateway / receiver: " + ", ".join(
        f"{g.rate / 1000:.1f}k / {b.rate / 1000:.1f}k = {g.rate / b.rate:.0%}"
        for g, b in zip(gateways, baselines, strict=True)))
    print(f"  one FO's {ordered_count:,} events, strictly in order: {ordered.rate:,.0f} /s"
          " (one at a time by design)")


if __name__ == "__main__":
    asyncio.run(main())
