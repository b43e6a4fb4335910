"""Console benchmark: each console page's server time with a million shipments stored.

    python bench/console.py [--shipments N] [--samples K]

Builds a SQLite database through the gateway's own migrations, fills it in bulk (N shipments,
one FO per four, their lines, matches, allocations, tracking numbers and timelines; 1 % of
the shipments unmatched; a thousand dead letters), then serves it with `fulfillment-gateway
serve` and times each console page from loopback as a logged-in operator: p50 / p95 / worst
of K requests, against /healthz of the same run (the baseline: what any request costs here).
Target: every page under 100 ms. It also asks SQLite for the plan of every query the
overview makes and says whether any of them scans a big table instead of using an index.
Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage import open_backend  # noqa: E402

TOKEN = "bench-operator-token-0123456789"
API_TOKEN = "bench-api-token"
TARGET_MS = 100.0
BIG = ("shipments", "timeline", "allocations", "shipment_matches", "shipment_lines",
       "fulfillment_orders", "fulfillment_order_lines", "inbox_events", "outbox_messages")


def stamp(i: int) -> str:
    return f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00.000000Z"


async def migrate(path: Path) -> None:
    storage = open_backend("sqlite", str(path))
    await storage.open()
    await storage.migrate()
    await storage.close()


def fill(path: Path, shipments: int) -> dict[str, str]:
    """Bulk rows, as the gateway would have written them; returns ids to look up."""
    fos = shipments // 4
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA journal_mode = WAL")
    with db:
        db.executemany(
            "INSERT INTO fulfillment_orders (id, seq, channel, order_number, request_hash,"
            " status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
            ((f"fo-{i:07d}", i, "web", f"ORD-{i:07d}", "h", "fulfilled", stamp(i), stamp(i))
             for i in range(fos)))
        db.executemany(
            "INSERT INTO fulfillment_order_lines (fo_id, line_id, position, sku, requested)"
            " VALUES (?,?,?,?,?)", ((f"fo-{i:07d}", "1", 0, "SKU-A", 4) for i in range(fos)))
        db.executemany(
            "INSERT INTO fulfillment_order_refs (fo_id, kind, value) VALUES (?,?,?)",
            ((f"fo-{i:07d}", "partner_order_id", f"P{i:07d}") for i in range(fos)))
        db.executemany(
            "INSERT INTO timeline (fo_id, at, kind, from_status, to_status) VALUES (?,?,?,?,?)",
            ((f"fo-{i // 2:07d}", stamp(i), "status_changed" if i % 2 else "created",
              "unfulfilled" if i % 2 else None, "fulfilled" if i % 2 else "unfulfilled")
             for i in range(fos * 2)))
        unmatched = set(range(0, shipments, 100))
        db.executemany(
            "INSERT INTO shipments (id, source, external_id, order_refs, status, carrier,"
            " tracking_numbers, partner_updated_at, recorded_at, updated_at, match_state,"
            " match_rule, unmatched_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ((f"shp-{n:08d}", "wms", f"S{n:08d}", "[]", "shipped", "ups", f'["1Z{n:010d}"]',
              stamp(n), stamp(n), stamp(n), "unmatched" if n in unmatched else "matched",
              None if n in unmatched else "fo_id",
              "no order reference matches" if n in unmatched else None)
             for n in range(shipments)))
        db.executemany(
            "INSERT INTO shipment_lines (shipment_id, position, sku, quantity) VALUES (?,?,?,?)",
            ((f"shp-{n:08d}", 0, "SKU-A", 1) for n in range(shipments)))
        db.executemany(
            "INSERT INTO shipment_tracking (tracking_number, shipment_id) VALUES (?,?)",
            ((f"1Z{n:010d}", f"shp-{n:08d}") for n in range(shipments)))
        matched = [n for n in range(shipments) if n not in unmatched]
        db.executemany("INSERT INTO shipment_matches (shipment_id, fo_id) VALUES (?,?)",
                       ((f"shp-{n:08d}", f"fo-{n // 4:07d}") for n in matched))
        db.executemany(
            "INSERT INTO allocations (shipment_id, fo_id, line_id, sku, quantity)"
            " VALUES (?,?,?,?,?)",
            ((f"shp-{n:08d}", f"fo-{n // 4:07d}", "1", "SKU-A", 1) for n in matched))
        db.executemany(
            "INSERT INTO inbox_events (connector, delivery_key, kind, body, received_at,"
            " status, attempts, next_attempt_at, last_error, processed_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (("wms", f"d{n}", "webhook", b'{"kind": "x"}', stamp(n),
              "dead" if n < 1000 else "processed", 8, stamp(n),
              "error: ValueError: unknown record" if n < 1000 else None, stamp(n))
             for n in range(50_000)))
    db.execute("ANALYZE")
    db.close()
    return {"fo": f"fo-{fos // 2:07d}", "order": f"ORD-{fos // 3:07d}",
            "tracking": f"1Z{shipments // 5 + 1:010d}", "shipment": f"S{shipments // 7 + 1:08d}"}


def plans(path: Path) -> list[str]:
    """The overview's queries, as SQLite plans them: any that scans a big table."""
    queries = [
        "SELECT COUNT(*) AS n, MIN(received_at) FROM inbox_events WHERE status = 'pending'",
        "SELECT COUNT(*) AS n FROM inbox_events WHERE status = 'dead'",
        "SELECT COUNT(*) AS n, MIN(not_before) FROM outbox_messages WHERE status = 'pending'",
        "SELECT COUNT(*) AS n FROM outbox_messages WHERE status = 'dead'",
        "SELECT fo_id, at FROM timeline WHERE kind = 'status_changed' ORDER BY id DESC LIMIT 15",
        "SELECT COUNT(*) FROM (SELECT 1 FROM shipments WHERE match_state = 'unmatched'"
        " AND status != 'voided' LIMIT 1001)",
        "SELECT * FROM unmatched_shipments ORDER BY recorded_at, id LIMIT 51",
        "SELECT * FROM dead_letters WHERE id > 0 ORDER BY id LIMIT 51",
    ]
    db = sqlite3.connect(path)
    found = []
    for sql in queries:
        for row in db.execute(f"EXPLAIN QUERY PLAN {sql}"):
            detail = row[-1]
            scanned = re.match(r"SCAN (\w+)", detail)
            if scanned and scanned.group(1) in BIG and "USING" not in detail:
                found.append(f"{sql[:60]}…: {detail}")
    db.close()
    return found


async def timed(session: aiohttp.ClientSession, url: str, samples: int) -> list[float]:
    took = []
    for _ in range(samples):
        start = time.perf_counter()
        async with session.get(url, allow_redirects=False) as resp:
            await resp.read()
            assert resp.status == 200, (url, resp.status)
        took.append((time.perf_counter() - start) * 1000)
    return took


def serve(work: Path, db: Path, port: int) -> subprocess.Popen:
    config = work / "c.toml"
    config.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
access_log = false
[storage]
path = "{db}"
[console]
tokens_env = "BENCH_CONSOLE"
[[connectors]]
name = "wms"
type = "shipstation"
base_url = "http://127.0.0.1:9"
allowed_resource_origin = "http://127\\\\.0\\\\.0\\\\.1:9"
api_key_env = "K"
api_secret_env = "S"
webhook_token_env = "H"
""")
    env = {**os.environ, "BENCH_CONSOLE": f"bench:{TOKEN}", "GATEWAY_API_TOKENS": API_TOKEN,
           "K": "k", "S": "s", "H": "h"}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "--config", str(config),
                             "--log-level", "warning", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


async def measure(base: str, ids: dict[str, str], samples: int) -> float:
    """Log in, time every page; the worst p95."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        for _ in range(200):  # up to 20 s for it to listen
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        async with session.get(f"{base}/console/login") as resp:
            nonce = re.search(r'name="nonce" value="([^"]+)"', await resp.text()).group(1)
        async with session.post(f"{base}/console/login", data={
                "token": TOKEN, "nonce": nonce}) as resp:
            assert resp.status == 200
        pages = {
            "overview": "/console/", "FO page": f"/console/fo/{ids['fo']}",
            "unmatched queue": "/console/unmatched", "dead letters": "/console/dead-letters",
            "dead letters, filtered": "/console/dead-letters?error=unknown&name=wms",
            "dead letter": "/console/dead-letters/inbox-500",
            "search: order number": f"/console/search?q={ids['order']}",
            "search: tracking number": f"/console/search?q={ids['tracking']}",
            "search: partner shipment id": f"/console/search?q={ids['shipment']}",
            "search: webhook delivery key": "/console/search?q=d42000",
            "connector page": "/console/connectors/wms",
        }
        baseline = statistics.median(await timed(session, f"{base}/healthz", samples))
        print(f"\n{'page':<28} {'p50':>8} {'p95':>8} {'worst':>8}  vs /healthz")
        worst_p95 = 0.0
        for name, path in pages.items():
            took = sorted(await timed(session, base + path, samples))
            p50, p95 = statistics.median(took), took[int(len(took) * 0.95) - 1]
            worst_p95 = max(worst_p95, p95)
            print(f"{name:<28} {p50:7.1f}ms {p95:7.1f}ms {took[-1]:7.1f}ms"
                  f"  {p50 / baseline:6.1f}x")
        print(f"{'/healthz (baseline)':<28} {baseline:7.1f}ms")
    return worst_p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    db = work / "gateway.sqlite3"
    asyncio.run(migrate(db))
    started = time.monotonic()
    ids = fill(db, args.shipments)
    print(f"{args.shipments:,} shipments stored ({args.shipments // 4:,} FOs, 1 % unmatched,"
          f" 1,000 dead letters) in {time.monotonic() - started:.0f} s")
    scans = plans(db)
    port = 18700 + os.getpid() % 200
    process = serve(work, db, port)
    try:
        worst_p95 = asyncio.run(measure(f"http://127.0.0.1:{port}", ids, args.samples))
    finally:
        process.terminate()
        process.wait(timeout=20)
    verdict = "meets" if worst_p95 < TARGET_MS else "MISSES"
    print(f"\nworst p95 {worst_p95:.1f} ms: {verdict} the target of every page under"
          f" {TARGET_MS:.0f} ms (times from a loopback client: server time plus one round trip)")
    print("overview queries: " + ("each through an index" if not scans else
                                  "SCANS: " + "; ".join(scans)))


if __name__ == "__main__":
    main()
