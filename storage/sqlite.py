"""The SQLite implementation of the storage interface (aiosqlite, WAL, synchronous=FULL).

One writer connection serialised by a lock, so transactions never interleave, and one reader
connection for the API, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from gateway.errors import BadRequest
from gateway.reconcile import Match
from gateway.records import (
    Allocation,
    FulfillmentOrder,
    FulfillmentOrderLine,
    OrderRef,
    Shipment,
    ShipmentLine,
    now_iso,
    parse_iso,
)
from storage import InboxEvent, NewFulfillmentOrder, NewInboxEvent, Page

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _unjson(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest("cursor: not a cursor this API returned") from None
    if not isinstance(key, list) or len(key) != size:
        raise BadRequest("cursor: not a cursor this API returned")
    return key


def _placeholders(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def _shipment_from_row(row: aiosqlite.Row) -> Shipment:
    return Shipment(
        id=row["id"], source=row["source"], external_id=row["external_id"],
        order_refs=tuple(OrderRef(**r) for r in _unjson(row["order_refs"])),
        lines=tuple(ShipmentLine(**ln) for ln in _unjson(row["lines"])),
        status=row["status"], carrier=row["carrier"], service=row["service"],
        tracking_numbers=tuple(_unjson(row["tracking_numbers"])),
        tracking_url=row["tracking_url"], shipped_at=row["shipped_at"],
        partner_updated_at=row["partner_updated_at"],
    )


class SqliteTransaction:
    """The `storage.Transaction` protocol over the writer connection, inside BEGIN IMMEDIATE."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self.db.execute_fetchall(sql, params))

    # fulfillment orders

    async def create_fulfillment_order(self, new: NewFulfillmentOrder) -> None:
        fo = new.fo
        rows = await self._all("SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM fulfillment_orders")
        await self.db.execute(
            "INSERT INTO fulfillment_orders (id, seq, channel, order_number, ship_to, custom_fields,"
            " request_hash, status, cancelled, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,0,?,?)",
            (fo.id, rows[0]["seq"], fo.channel, fo.order_number, _json(new.ship_to),
             _json(new.custom_fields), new.request_hash, fo.status, new.created_at, new.created_at))
        await self.db.executemany(
            "INSERT INTO fulfillment_order_lines (fo_id, line_id, position, sku, requested)"
            " VALUES (?,?,?,?,?)",
            [(fo.id, ln.line_id, i, ln.sku, ln.requested) for i, ln in enumerate(fo.lines)])
        await self.db.executemany(
            "INSERT OR IGNORE INTO fulfillment_order_refs (fo_id, kind, value) VALUES (?,?,?)",
            [(fo.id, r.kind, r.value) for r in fo.refs])
        await self.add_timeline(fo.id, "created", new.created_at, {"status": fo.status})

    async def fulfillment_order_request_hash(self, fo_id: str) -> str | None:
        rows = await self._all("SELECT request_hash FROM fulfillment_orders WHERE id = ?", (fo_id,))
        return rows[0]["request_hash"] if rows else None

    async def get_fulfillment_orders(self, fo_ids: Iterable[str]) -> list[FulfillmentOrder]:
        ids = list(set(fo_ids))
        if not ids:
            return []
        fos = await self._all(
            f"SELECT * FROM fulfillment_orders WHERE id IN ({_placeholders(ids)})", ids)
        lines = await self._all(
            "SELECT * FROM fulfillment_order_lines"
            f" WHERE fo_id IN ({_placeholders(ids)}) ORDER BY fo_id, position", ids)
        refs = await self._all(
            f"SELECT * FROM fulfillment_order_refs WHERE fo_id IN ({_placeholders(ids)})", ids)
        by_fo: dict[str, list[FulfillmentOrderLine]] = {}
        for ln in lines:
            by_fo.setdefault(ln["fo_id"], []).append(
                FulfillmentOrderLine(ln["line_id"], ln["sku"], ln["requested"]))
        refs_by_fo: dict[str, list[OrderRef]] = {}
        for r in refs:
            refs_by_fo.setdefault(r["fo_id"], []).append(OrderRef(r["kind"], r["value"]))
        return [FulfillmentOrder(
            id=row["id"], seq=row["seq"], lines=tuple(by_fo.get(row["id"], ())),
            status=row["status"], cancelled=bool(row["cancelled"]),
            order_number=row["order_number"], channel=row["channel"],
            refs=tuple(refs_by_fo.get(row["id"], ()))) for row in fos]

    async def existing_fulfillment_order_ids(self, fo_ids: Iterable[str]) -> set[str]:
        ids = list(set(fo_ids))
        if not ids:
            return set()
        rows = await self._all(
            f"SELECT id FROM fulfillment_orders WHERE id IN ({_placeholders(ids)})", ids)
        return {r["id"] for r in rows}

    async def fulfillment_orders_by_ref(
            self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        found: dict[tuple[str, str], list[str]] = {}
        for kind, value in set(keys):
            rows = await self._all(
                "SELECT fo_id FROM fulfillment_order_refs WHERE kind = ? AND value = ?"
                " ORDER BY fo_id", (kind, value))
            if rows:
                found[(kind, value)] = [r["fo_id"] for r in rows]
        return found

    async def cancel_fulfillment_order(self, fo_id: str, at: str) -> None:
        await self.db.execute(
            "UPDATE fulfillment_orders SET cancelled = 1, updated_at = ? WHERE id = ?", (at, fo_id))

    async def add_fulfillment_order_ref(self, fo_id: str, ref: OrderRef) -> None:
        await self.db.execute(
            "INSERT OR IGNORE INTO fulfillment_order_refs (fo_id, kind, value) VALUES (?,?,?)",
            (fo_id, ref.kind, ref.value))

    # shipments

    async def get_shipment(self, source: str, external_id: str) -> Shipment | None:
        rows = await self._all("SELECT * FROM shipments WHERE source = ? AND external_id = ?",
                               (source, external_id))
        return _shipment_from_row(rows[0]) if rows else None

    async def get_shipments(self, shipment_ids: Iterable[str]) -> list[Shipment]:
        ids = list(set(shipment_ids))
        if not ids:
            return []
        rows = await self._all(f"SELECT * FROM shipments WHERE id IN ({_placeholders(ids)})", ids)
        return [_shipment_from_row(r) for r in rows]

    async def save_shipment(self, shipment: Shipment, at: str) -> str:
        if shipment.id is None:
            raise ValueError("save_shipment needs the shipment's gateway id")
        await self.db.execute(
            "INSERT INTO shipments (id, source, external_id, order_refs, lines, status, carrier,"
            " service, tracking_numbers, tracking_url, shipped_at, partner_updated_at,"
            " recorded_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (source, external_id) DO UPDATE SET order_refs = excluded.order_refs,"
            " lines = excluded.lines, status = excluded.status, carrier = excluded.carrier,"
            " service = excluded.service, tracking_numbers = excluded.tracking_numbers,"
            " tracking_url = excluded.tracking_url, shipped_at = excluded.shipped_at,"
            " partner_updated_at = excluded.partner_updated_at, updated_at = excluded.updated_at",
            (shipment.id, shipment.source, shipment.external_id,
             _json([{"kind": r.kind, "value": r.value} for r in shipment.order_refs]),
             _json([{"sku": ln.sku, "quantity": ln.quantity, "partner_line_id": ln.partner_line_id}
                    for ln in shipment.lines]),
             shipment.status, shipment.carrier, shipment.service,
             _json(list(shipment.tracking_numbers)), shipment.tracking_url, shipment.shipped_at,
             shipment.partner_updated_at, at, at))
        await self.db.execute("DELETE FROM shipment_refs WHERE shipment_id = ?", (shipment.id,))
        await self.db.executemany(
            "INSERT OR IGNORE INTO shipment_refs (shipment_id, kind, value) VALUES (?,?,?)",
            [(shipment.id, r.kind, r.value) for r in shipment.order_refs])
        return shipment.id

    async def set_match(self, shipment_id: str, match: Match, at: str) -> None:
        await self.db.execute("DELETE FROM shipment_matches WHERE shipment_id = ?", (shipment_id,))
        await self.db.executemany(
            "INSERT INTO shipment_matches (shipment_id, fo_id) VALUES (?,?)",
            [(shipment_id, fo_id) for fo_id in match.fo_ids])
        await self.db.execute(
            "UPDATE shipments SET match_state = ?, match_rule = ?, unmatched_reason = ?,"
            " candidates = ?, updated_at = ? WHERE id = ?",
            ("matched" if match.matched else "unmatched", match.rule, match.reason,
             _json(list(match.candidates)), at, shipment_id))

    async def get_match_rule(self, shipment_id: str) -> str | None:
        rows = await self._all("SELECT match_rule FROM shipments WHERE id = ?", (shipment_id,))
        return rows[0]["match_rule"] if rows else None

    async def matches_of_shipments(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(set(shipment_ids))
        found: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            rows = await self._all(
                "SELECT shipment_id, fo_id FROM shipment_matches"
                f" WHERE shipment_id IN ({_placeholders(ids)})", ids)
            for r in rows:
                found[r["shipment_id"]].append(r["fo_id"])
        return found

    async def shipments_of_fulfillment_orders(self, fo_ids: Iterable[str]) -> set[str]:
        ids = list(set(fo_ids))
        if not ids:
            return set()
        rows = await self._all(
            f"SELECT shipment_id FROM shipment_matches WHERE fo_id IN ({_placeholders(ids)})", ids)
        return {r["shipment_id"] for r in rows}

    async def unmatched_shipments_referencing(
            self, refs: Iterable[tuple[str, str]], prefixes: Iterable[tuple[str, str]]
    ) -> list[str]:
        found: set[str] = set()
        unmatched = ("SELECT r.shipment_id FROM shipment_refs r JOIN shipments s"
                     " ON s.id = r.shipment_id WHERE s.match_state = 'unmatched'"
                     " AND s.status != 'voided' AND r.kind = ?")
        for kind, value in set(refs):
            rows = await self._all(unmatched + " AND r.value = ?", (kind, value))
            found |= {row["shipment_id"] for row in rows}
        for kind, prefix in set(prefixes):
            # A range on the (kind, value) key: every value that starts with the prefix.
            rows = await self._all(unmatched + " AND r.value >= ? AND r.value < ?",
                                   (kind, prefix, prefix + "\U0010ffff"))
            found |= {row["shipment_id"] for row in rows}
        return sorted(found)

    async def replace_allocations(self, fo_ids: Iterable[str], shipment_ids: Iterable[str],
                                  allocations: Sequence[Allocation],
                                  overshipped: Mapping[str, Mapping[str, int]]) -> None:
        fos, sids = list(set(fo_ids)), list(set(shipment_ids))
        if fos:
            await self.db.execute(
                f"DELETE FROM allocations WHERE fo_id IN ({_placeholders(fos)})", fos)
        if sids:
            await self.db.execute(
                f"DELETE FROM allocations WHERE shipment_id IN ({_placeholders(sids)})", sids)
            await self.db.executemany(
                "UPDATE shipments SET overshipped = ? WHERE id = ?",
                [(_json(dict(overshipped.get(s, {}))), s) for s in sids])
        await self.db.executemany(
            "INSERT INTO allocations (shipment_id, fo_id, line_id, sku, quantity)"
            " VALUES (?,?,?,?,?)",
            [(a.shipment_id, a.fo_id, a.line_id, a.sku, a.quantity) for a in allocations])

    async def set_fulfillment_order_status(self, fo_id: str, old: str, new: str, at: str,
                                           detail: Mapping[str, Any]) -> None:
        await self.db.execute(
            "UPDATE fulfillment_orders SET status = ?, updated_at = ? WHERE id = ?",
            (new, at, fo_id))
        await self.db.execute(
            "INSERT INTO timeline (fo_id, at, kind, from_status, to_status, detail)"
            " VALUES (?,?,?,?,?,?)", (fo_id, at, "status_changed", old, new, _json(dict(detail))))

    async def add_timeline(self, fo_id: str, kind: str, at: str,
                           detail: Mapping[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO timeline (fo_id, at, kind, detail) VALUES (?,?,?,?)",
            (fo_id, at, kind, _json(dict(detail))))
        await self.db.execute(
            "UPDATE fulfillment_orders SET updated_at = MAX(updated_at, ?) WHERE id = ?",
            (at, fo_id))

    async def mark_inbox_processed(self, event_ids: Sequence[int], at: str) -> None:
        ids = list(event_ids)
        await self.db.execute(
            "UPDATE inbox_events SET status = 'processed', processed_at = ?, last_error = NULL"
            f" WHERE id IN ({_placeholders(ids)})", (at, *ids))


class SqliteStorage:
    """`storage.Storage` on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA busy_timeout = 10000")
        return db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        self._reader = await self._connect()

    async def close(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("storage is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("storage is not open")
        return self._reader

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            db = self.writer
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        async with self._write() as db:
            yield SqliteTransaction(db)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self.reader.execute_fetchall(sql, params))

    # schema

    async def schema_version(self) -> int:
        rows = await self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
        if not rows:
            return 0
        rows = await self._read("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return rows[0]["v"]

    async def pending_migrations(self) -> int:
        current = await self.schema_version()
        return sum(1 for number, _, _ in migrations() if number > current)

    async def migrate(self) -> int:
        """Apply every numbered migration not yet applied, each in its own transaction."""
        async with self._write() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                             "version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                             " applied_at TEXT NOT NULL)")
        applied = 0
        for number, name, sql in migrations():
            async with self._write() as db:
                rows = await db.execute_fetchall(
                    "SELECT 1 FROM schema_version WHERE version = ?", (number,))
                if rows:
                    continue
                for statement in _split_sql(sql):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version, name, applied_at)"
                                 " VALUES (?,?,?)",
                                 (number, name, datetime.now(UTC).isoformat()))
                applied += 1
        return applied

    async def ping(self) -> bool:
        try:
            await self._read("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

    # intake and polling

    # One statement inserts the whole batch: in autocommit mode it is its own durable
    # transaction, and it costs one hop to the database thread instead of three.
    _INSERT_INBOX = (
        "INSERT INTO inbox_events (connector, delivery_key, kind, headers, body, received_at,"
        " next_attempt_at) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
        " json_extract(value, '$[2]'), json_extract(value, '$[3]'),"
        " CAST(json_extract(value, '$[4]') AS BLOB), json_extract(value, '$[5]'),"
        " json_extract(value, '$[5]') FROM json_each(?) WHERE true"
        " ON CONFLICT (connector, delivery_key) DO NOTHING")

    @staticmethod
    def _inbox_batch(events: Sequence[NewInboxEvent], at: str) -> str:
        """Events as one JSON parameter; bodies are JSON already, so valid UTF-8."""
        return orjson.dumps([[e.connector, e.delivery_key, e.kind, _json(dict(e.headers)),
                              e.body.decode(), at] for e in events]).decode()

    async def insert_inbox_events(self, events: Sequence[NewInboxEvent]) -> int:
        batch = self._inbox_batch(events, now_iso())
        async with self._write_lock:
            cursor = await self.writer.execute(self._INSERT_INBOX, (batch,))
            return cursor.rowcount

    async def commit_poll(self, connector: str, events: Sequence[NewInboxEvent], cursor: str,
                          result: Mapping[str, Any], at: str) -> int:
        async with self._write() as db:
            inserted = (await db.execute(self._INSERT_INBOX,
                                         (self._inbox_batch(events, at),))).rowcount
            await db.execute(
                "INSERT INTO poll_state (connector, cursor, last_poll_at, last_result)"
                " VALUES (?,?,?,?) ON CONFLICT (connector) DO UPDATE SET cursor = excluded.cursor,"
                " last_poll_at = excluded.last_poll_at, last_result = excluded.last_result",
                (connector, cursor, at, _json({**result, "new_events": inserted})))
            return inserted

    async def record_poll_error(self, connector: str, error: str, at: str) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO poll_state (connector, last_error, last_error_at) VALUES (?,?,?)"
                " ON CONFLICT (connector) DO UPDATE SET last_error = excluded.last_error,"
                " last_error_at = excluded.last_error_at", (connector, error, at))

    async def poll_state(self, connector: str) -> dict[str, Any] | None:
        rows = await self._read("SELECT * FROM poll_state WHERE connector = ?", (connector,))
        if not rows:
            return None
        row = dict(rows[0])
        row["last_result"] = _unjson(row["last_result"])
        return row

    # the inbox worker

    async def pending_inbox_events(self, limit: int, now: str,
                                   skip: Collection[int] = ()) -> list[InboxEvent]:
        """Due events, oldest first, except those the caller already has in hand.

        Claims live in the one process's memory, not in the table: a claim costs no write, and
        after a crash every unprocessed event is simply pending again.
        """
        rows = list(await self.reader.execute_fetchall(
            "SELECT * FROM inbox_events WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?", (now, limit + len(skip))))
        return [InboxEvent(id=r["id"], connector=r["connector"], delivery_key=r["delivery_key"],
                           kind=r["kind"], body=bytes(r["body"]), headers=_unjson(r["headers"]),
                           attempts=r["attempts"], received_at=r["received_at"])
                for r in rows if r["id"] not in skip][:limit]

    async def retry_inbox_event(self, event_id: int, attempts: int, next_attempt_at: str,
                                error: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE inbox_events SET status = 'pending', attempts = ?, next_attempt_at = ?,"
                " last_error = ? WHERE id = ?", (attempts, next_attempt_at, error, event_id))

    async def dead_letter_inbox_event(self, event_id: int, attempts: int, error: str,
                                      at: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE inbox_events SET status = 'dead', attempts = ?, last_error = ?,"
                " processed_at = ? WHERE id = ?", (attempts, error, at, event_id))

    async def next_inbox_due(self) -> str | None:
        rows = await self._read(
            "SELECT MIN(next_attempt_at) AS due FROM inbox_events WHERE status = 'pending'")
        return rows[0]["due"]

    async def inbox_stats(self) -> dict[str, Any]:
        rows = await self._read(
            "SELECT status, COUNT(*) AS n, MIN(received_at) AS oldest FROM inbox_events"
            " WHERE status IN ('pending', 'dead') GROUP BY status")
        by_status = {r["status"]: r for r in rows}
        depth = by_status["pending"]["n"] if "pending" in by_status else 0
        oldest = by_status["pending"]["oldest"] if "pending" in by_status else None
        age = (datetime.now(UTC) - parse_iso(oldest)).total_seconds() if oldest else 0.0
        return {"depth": depth, "oldest_age_seconds": max(age, 0.0),
                "dead": by_status["dead"]["n"] if "dead" in by_status else 0}

    # reads for the API

    async def _fo_lines_view(self, fo_id: str) -> list[dict[str, Any]]:
        rows = await self._read(
            "SELECT l.line_id, l.sku, l.requested, COALESCE(SUM(a.quantity), 0) AS fulfilled"
            " FROM fulfillment_order_lines l LEFT JOIN allocations a"
            " ON a.fo_id = l.fo_id AND a.line_id = l.line_id"
            " WHERE l.fo_id = ? GROUP BY l.line_id ORDER BY l.position", (fo_id,))
        return [dict(r) for r in rows]

    def _fo_summary(self, row: aiosqlite.Row) -> dict[str, Any]:
        return {"id": row["id"], "channel": row["channel"], "order_number": row["order_number"],
                "status": row["status"], "ship_to": _unjson(row["ship_to"]),
                "custom_fields": _unjson(row["custom_fields"]),
                "created_at": row["created_at"], "updated_at": row["updated_at"]}

    async def fulfillment_order_view(self, fo_id: str) -> dict[str, Any] | None:
        rows = await self._read("SELECT * FROM fulfillment_orders WHERE id = ?", (fo_id,))
        if not rows:
            return None
        view = self._fo_summary(rows[0])
        view["lines"] = await self._fo_lines_view(fo_id)
        refs = await self._read(
            "SELECT kind, value FROM fulfillment_order_refs WHERE fo_id = ? ORDER BY kind, value",
            (fo_id,))
        view["external_refs"] = [dict(r) for r in refs]
        shipments = await self._read(
            "SELECT s.* FROM shipments s JOIN shipment_matches m ON m.shipment_id = s.id"
            " WHERE m.fo_id = ? ORDER BY COALESCE(s.shipped_at, s.partner_updated_at), s.id",
            (fo_id,))
        view["shipments"] = [await self._shipment_view_row(s) for s in shipments]
        timeline = await self._read(
            "SELECT at, kind, from_status, to_status, detail FROM timeline WHERE fo_id = ?"
            " ORDER BY id", (fo_id,))
        view["timeline"] = [{**dict(t), "detail": _unjson(t["detail"])} for t in timeline]
        return view

    async def list_fulfillment_orders(self, status: str | None, updated_since: str | None,
                                      cursor: str | None, limit: int) -> Page:
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if updated_since:
            where.append("updated_at >= ?")
            params.append(updated_since)
        if cursor:
            after_at, after_id = decode_cursor(cursor, 2)
            where.append("(updated_at > ? OR (updated_at = ? AND id > ?))")
            params += [after_at, after_at, after_id]
        sql = "SELECT * FROM fulfillment_orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._read(sql + " ORDER BY updated_at, id LIMIT ?", [*params, limit + 1])
        items = []
        for row in rows[:limit]:
            item = self._fo_summary(row)
            item["lines"] = await self._fo_lines_view(row["id"])
            items.append(item)
        nxt = encode_cursor(rows[limit - 1]["updated_at"], rows[limit - 1]["id"]) \
            if len(rows) > limit else None
        return Page(items, nxt)

    async def _shipment_view_row(self, row: aiosqlite.Row) -> dict[str, Any]:
        allocations = await self._read(
            "SELECT fo_id, line_id, sku, quantity FROM allocations WHERE shipment_id = ?"
            " ORDER BY fo_id, line_id", (row["id"],))
        matches = await self._read(
            "SELECT fo_id FROM shipment_matches WHERE shipment_id = ? ORDER BY fo_id", (row["id"],))
        return {
            "id": row["id"], "source": row["source"], "external_id": row["external_id"],
            "order_refs": _unjson(row["order_refs"]), "lines": _unjson(row["lines"]),
            "status": row["status"], "carrier": row["carrier"], "service": row["service"],
            "tracking_numbers": _unjson(row["tracking_numbers"]),
            "tracking_url": row["tracking_url"], "shipped_at": row["shipped_at"],
            "partner_updated_at": row["partner_updated_at"], "recorded_at": row["recorded_at"],
            "updated_at": row["updated_at"], "match_state": row["match_state"],
            "match_rule": row["match_rule"], "unmatched_reason": row["unmatched_reason"],
            "candidates": _unjson(row["candidates"]),
            "fulfillment_order_ids": [m["fo_id"] for m in matches],
            "allocations": [dict(a) for a in allocations],
            "overshipped": _unjson(row["overshipped"]),
        }

    async def shipment_view(self, shipment_id: str) -> dict[str, Any] | None:
        rows = await self._read("SELECT * FROM shipments WHERE id = ?", (shipment_id,))
        return await self._shipment_view_row(rows[0]) if rows else None

    async def _shipment_page(self, where: list[str], params: list[Any], cursor: str | None,
                             limit: int, join: str = "") -> Page:
        if cursor:
            after_at, after_id = decode_cursor(cursor, 2)
            where.append("(s.recorded_at > ? OR (s.recorded_at = ? AND s.id > ?))")
            params += [after_at, after_at, after_id]
        sql = f"SELECT s.* FROM shipments s {join}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._read(sql + " ORDER BY s.recorded_at, s.id LIMIT ?", [*params, limit + 1])
        items = [await self._shipment_view_row(r) for r in rows[:limit]]
        nxt = encode_cursor(rows[limit - 1]["recorded_at"], rows[limit - 1]["id"]) \
            if len(rows) > limit else None
        return Page(items, nxt)

    async def list_shipments(self, fo_id: str | None, cursor: str | None, limit: int) -> Page:
        if fo_id:
            return await self._shipment_page(["m.fo_id = ?"], [fo_id], cursor, limit,
                                             join="JOIN shipment_matches m ON m.shipment_id = s.id")
        return await self._shipment_page([], [], cursor, limit)

    async def list_unmatched(self, cursor: str | None, limit: int) -> Page:
        return await self._shipment_page(["s.match_state = 'unmatched'", "s.status != 'voided'"],
                                         [], cursor, limit)

    async def list_dead_letters(self, cursor: str | None, limit: int) -> Page:
        where, params = ["status = 'dead'"], []
        if cursor:
            (after_id,) = decode_cursor(cursor, 1)
            where.append("id > ?")
            params.append(after_id)
        rows = await self._read(
            "SELECT id, connector, delivery_key, kind, received_at, attempts, last_error,"
            f" processed_at FROM inbox_events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, limit + 1])
        items = [{"id": f"inbox-{r['id']}", "source": "inbox", "connector": r["connector"],
                  "delivery_key": r["delivery_key"], "kind": r["kind"],
                  "received_at": r["received_at"], "attempts": r["attempts"],
                  "error": r["last_error"], "failed_at": r["processed_at"]} for r in rows[:limit]]
        nxt = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
        return Page(items, nxt)

    async def replay_dead_letter(self, event_id: int, at: str) -> bool:
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE inbox_events SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " processed_at = NULL WHERE id = ? AND status = 'dead'", (at, event_id))
            return cur.rowcount == 1


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file; ours hold no semicolons inside strings or triggers."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
