"""What keeps the database's work per webhook flat as tables grow: every statement on the path
from a webhook to a delivered event finds its rows through an index, and every foreign key
leads an index (a row's children are read, replaced and cascaded by it).

Two such lookups once scanned whole tables (a shipment's tracking numbers, an FO's order
references): invisible in a test's few rows, 69 % of SQLite's work per webhook at 2,000
shipments (bench/pipeline.py), and growing with every shipment stored."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayUnderTest, Receiver, fake_doc, storage_sql, wait_events
from tests.test_contract import webhook

# Scans that are no table's whole: rows written in the statement, a JSON array bound to it, a
# subquery's own rows; and the schema's bookkeeping (a handful of rows, read at start).
BOUNDED_SCANS = re.compile(r"SCAN (\d+ CONSTANT ROW|json_each|sqlite_master|schema_version\b)")
READ_AT_START = ("SELECT connector, delivery_key FROM inbox_events",)  # the keys, once


class Statements(list[str]):
    """What SQLite connections opened from now run, bound values in place, once `on`
    (the trace callback of the standard library's sqlite3, not the gateway's code)."""

    on = False

    def __call__(self, statement: str) -> None:
        if self.on:
            self.append(statement)


def record_statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    seen = Statements()
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.set_trace_callback(seen)
        return db

    monkeypatch.setattr(sqlite3, "connect", traced)
    return seen


def full_scans(db: sqlite3.Connection, statement: str) -> list[str]:
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement)]
    subqueries = {m.group(1) for step in plan
                  if (m := re.match(r"(?:CO-ROUTINE|MATERIALIZE) (\S+)", step))}
    return [step for step in plan if step.startswith("SCAN ") and "USING" not in step
            and not BOUNDED_SCANS.match(step) and step.split()[1] not in subqueries]


@pytest.mark.parametrize("start_fake", ["sqlite"], indirect=True)
async def test_no_statement_from_webhook_to_event_scans_a_table(
        start_fake: Any, receiver: Receiver, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    statements = record_statements(monkeypatch)
    subscribers = [{"name": "erp", "url": receiver.url, "secret_env": "SUB_SECRET",
                    "events": ["*"]}]
    gw: GatewayUnderTest = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms",
                                                     subscribers=subscribers))
    statements.on = True  # from here: the running gateway (not its migrations)
    fo = await gw.create_fo([("A", 2)], order_number="R-1")
    shipped = {"id": "S1", "order_refs": [["order_number", "R-1"]], "lines": [["A", 2]],
               "tracking_numbers": ["1Z1"], "updated_at": "2026-12-01T10:00:00Z"}
    assert await webhook(gw, "wms", "shipment", shipped, "d-1") == 200
    await gw.wait_status(fo["id"], "fulfilled")
    # Recorded again (its tracking numbers replaced), then voided: every rewrite path runs.
    for n, change in enumerate(({"tracking_numbers": ["1Z2"]}, {"status": "voided"}), 2):
        later = shipped | change | {"updated_at": f"2026-12-01T10:0{n}:00Z"}
        assert await webhook(gw, "wms", "shipment", later, f"d-{n}") == 200
    await gw.wait_status(fo["id"], "unfulfilled")
    await wait_events(receiver, 2, "fulfillment_order.status_changed")
    view = await gw.fo(fo["id"])
    assert [s["status"] for s in view["shipments"]] == ["voided"]
    await gw.call("GET", "/api/v1/fulfillment-orders?status=unfulfilled")

    ran = {s for s in set(statements)
           if s.lstrip().split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE",
                                                       "WITH")}
    assert any(s.startswith("DELETE FROM shipment_tracking") for s in ran)  # the path ran
    with sqlite3.connect(gw.db_path) as db:
        scanning = {s[:160]: scans for s in sorted(ran)
                    if not s.startswith(READ_AT_START) and (scans := full_scans(db, s))}
    assert scanning == {}


async def test_every_foreign_key_leads_an_index(open_storage: Any, tmp_path: Path) -> None:
    storage = await open_storage(tmp_path)
    try:
        if open_storage.backend == "sqlite":
            tables = [r[0] for r in await storage_sql(
                storage, "SELECT name FROM sqlite_master WHERE type = 'table'")]
            keys, leading = [], set()
            for table in tables:
                keys += [(table, fk[3]) for fk in await storage_sql(
                    storage, f"PRAGMA foreign_key_list({table})")]
                for index in await storage_sql(storage, f"PRAGMA index_list({table})"):
                    columns = await storage_sql(storage, f"PRAGMA index_info({index[1]})")
                    leading |= {(table, c[2]) for c in columns if c[0] == 0}
        else:
            keys = [tuple(r) for r in await storage.pool.fetch(
                "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c"
                " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
                " WHERE c.contype = 'f'")]
            leading = {tuple(r) for r in await storage.pool.fetch(
                "SELECT i.indrelid::regclass::text, a.attname FROM pg_index i"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]")}
        assert keys, "the schema has foreign keys"
        assert [key for key in keys if key not in leading] == []
    finally:
        await storage.close()
