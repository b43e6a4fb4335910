"""The reads behind the HTTP API, in SQL both backends run: FOs, shipments, the unmatched
queue, dead letters, partner records and orders.

Each read of several statements runs in one read transaction (`snapshot`), so it shows one
committed state; the backend says how (`_snapshot`).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from gateway.domain.records import OrderRef, PartnerRecord
from storage import DeadLetterFilter, InvalidCursor, Page
from storage.models import (
    AllocationView,
    DeadLetter,
    FulfillmentOrderSummary,
    FulfillmentOrderView,
    InboundShipmentView,
    LineProgress,
    OutboundView,
    ShipmentView,
    TimelineEntry,
)
from storage.sql.common import decode_cursor, encode_cursor
from storage.sql.queues import dead_letter_number
from storage.sql.stock import StockViews
from storage.sql.tx import (
    Row,
    SqlConnection,
    from_json,
    inbound_from_row,
    link_from_row,
    partner_order_from_row,
    partner_record_from_row,
)

T = TypeVar("T")




snapshot_connection: contextvars.ContextVar[SqlConnection | None] = contextvars.ContextVar(
    "snapshot_db", default=None)


def snapshot(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run an API read of several statements in one read transaction, so it sees one
    committed state (an FO's outbound status and the refs written with it), never half of a
    commit. The worker's and dispatcher's reads stay outside any snapshot, so they always see
    the latest commit. `_read` reads from the snapshot's connection while one is open."""

    @functools.wraps(method)
    async def read_in_snapshot(self: SqlViews, *args: Any, **kwargs: Any) -> T:
        if snapshot_connection.get() is not None:  # already inside one
            return await method(self, *args, **kwargs)
        return await self._in_snapshot(lambda: method(self, *args, **kwargs))

    return read_in_snapshot


class SqlViews(StockViews):
    """Mixed into a backend's storage class, which provides `_read` and either `_snapshot`
    (a read transaction on a connection of its own, yielding that connection) or its own
    `_in_snapshot`."""

    def _snapshot(self) -> AbstractAsyncContextManager[SqlConnection]:
        raise NotImplementedError

    async def _in_snapshot(self, read: Callable[[], Awaitable[T]]) -> T:
        """Run `read` in one read transaction, its `_read`s on that transaction's connection."""
        async with self._snapshot() as db:
            token = snapshot_connection.set(db)
            try:
                return await read()
            finally:
                snapshot_connection.reset(token)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def _fo_lines_view(self, fo_id: str) -> list[LineProgress]:
        rows = await self._read(
            "SELECT l.line_id, l.sku, l.requested, COALESCE(SUM(a.quantity), 0) AS fulfilled"
            " FROM fulfillment_order_lines l LEFT JOIN allocations a"
            " ON a.fo_id = l.fo_id AND a.line_id = l.line_id"
            " WHERE l.fo_id = ? GROUP BY l.line_id, l.sku, l.requested, l.position"
            " ORDER BY l.position", (fo_id,))
        return [LineProgress(**dict(r)) for r in rows]

    async def _fo_summary(self, row: Row) -> FulfillmentOrderSummary:
        return FulfillmentOrderSummary(
            id=row["id"], channel=row["channel"], order_number=row["order_number"],
            status=row["status"], ship_to=from_json(row["ship_to"]),
            custom_fields=from_json(row["custom_fields"]), created_at=row["created_at"],
            updated_at=row["updated_at"], lines=await self._fo_lines_view(row["id"]))

    @snapshot
    async def fulfillment_order_view(self, fo_id: str) -> FulfillmentOrderView | None:
        rows = await self._read("SELECT * FROM fulfillment_orders WHERE id = ?", (fo_id,))
        if not rows:
            return None
        refs = await self._read(
            "SELECT kind, value FROM fulfillment_order_refs WHERE fo_id = ? ORDER BY kind, value",
            (fo_id,))
        pushes = await self._read(
            "SELECT id, destination, kind, status, not_before, attempts, last_error, result,"
            " updated_at FROM outbox_messages WHERE fo_id = ? AND kind != 'event' ORDER BY id",
            (fo_id,))
        shipments = await self._read(
            "SELECT s.* FROM shipment_records s JOIN shipment_matches m ON m.shipment_id = s.id"
            " WHERE m.fo_id = ? ORDER BY COALESCE(s.shipped_at, s.partner_updated_at), s.id",
            (fo_id,))
        timeline = await self._read(
            "SELECT at, kind, from_status, to_status, detail FROM timeline WHERE fo_id = ?"
            " ORDER BY id", (fo_id,))
        links = await self._read("SELECT * FROM partner_links WHERE fo_id = ?"
                                 " ORDER BY role DESC, connector", (fo_id,))
        return FulfillmentOrderView(
            **vars(await self._fo_summary(rows[0])),
            external_refs=[OrderRef(r["kind"], r["value"]) for r in refs],
            flow=rows[0]["flow"], invoice_id=rows[0]["invoice_id"],
            outbound=[OutboundView(
                id=f"outbox-{r['id']}", destination=r["destination"], kind=r["kind"],
                status=r["status"], not_before=r["not_before"], attempts=r["attempts"],
                last_error=r["last_error"], result=from_json(r["result"]),
                updated_at=r["updated_at"]) for r in pushes],
            shipments=[await self._shipment_view_row(s) for s in shipments],
            timeline=[TimelineEntry(at=t["at"], kind=t["kind"], from_status=t["from_status"],
                                    to_status=t["to_status"], detail=from_json(t["detail"]))
                      for t in timeline],
            links=[link_from_row(r) for r in links])

    @snapshot
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
            after_at, after_id = decode_cursor(cursor, str, str)
            where.append("(updated_at > ? OR (updated_at = ? AND id > ?))")
            params += [after_at, after_at, after_id]
        sql = "SELECT * FROM fulfillment_orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._read(sql + " ORDER BY updated_at, id LIMIT ?", [*params, limit + 1])
        items = [await self._fo_summary(row) for row in rows[:limit]]
        nxt = encode_cursor(rows[limit - 1]["updated_at"], rows[limit - 1]["id"]) \
            if len(rows) > limit else None
        return Page(items, nxt)

    async def _shipment_view_row(self, row: Row) -> ShipmentView:
        allocations = await self._read(
            "SELECT fo_id, line_id, sku, quantity FROM allocations WHERE shipment_id = ?"
            " ORDER BY fo_id, line_id", (row["id"],))
        matches = await self._read(
            "SELECT fo_id FROM shipment_matches WHERE shipment_id = ? ORDER BY fo_id", (row["id"],))
        return ShipmentView(
            id=row["id"], source=row["source"], external_id=row["external_id"],
            order_refs=from_json(row["order_refs"]), lines=from_json(row["lines"]),
            status=row["status"], carrier=row["carrier"], service=row["service"],
            tracking_numbers=from_json(row["tracking_numbers"]),
            tracking_url=row["tracking_url"], shipped_at=row["shipped_at"],
            partner_updated_at=row["partner_updated_at"], recorded_at=row["recorded_at"],
            updated_at=row["updated_at"], match_state=row["match_state"],
            match_rule=row["match_rule"], unmatched_reason=row["unmatched_reason"],
            candidates=from_json(row["candidates"]),
            fulfillment_order_ids=[m["fo_id"] for m in matches],
            allocations=[AllocationView(**dict(a)) for a in allocations],
            overshipped=from_json(row["overshipped"]))

    @snapshot
    async def shipment_view(self, shipment_id: str) -> ShipmentView | None:
        rows = await self._read("SELECT * FROM shipment_records WHERE id = ?", (shipment_id,))
        return await self._shipment_view_row(rows[0]) if rows else None

    @snapshot
    async def _shipment_page(self, where: list[str], params: list[Any], cursor: str | None,
                             limit: int, join: str = "", source: str = "shipment_records"
                             ) -> Page:
        if cursor:
            after_at, after_id = decode_cursor(cursor, str, str)
            where.append("(s.recorded_at > ? OR (s.recorded_at = ? AND s.id > ?))")
            params += [after_at, after_at, after_id]
        sql = f"SELECT s.* FROM {source} s {join}"
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
        return await self._shipment_page([], [], cursor, limit, source="unmatched_shipments")

    @snapshot
    async def list_dead_letters(self, cursor: str | None, limit: int,
                                where: DeadLetterFilter | None = None) -> Page:
        """Inbox dead letters, then outbox ones, each by id; the cursor names the last seen.
        `where` narrows them (only dead rows are read: the status indexes)."""
        source, after_id = decode_cursor(cursor, str, int) if cursor else ("inbox", 0)
        if source not in ("inbox", "outbox"):
            raise InvalidCursor("cursor: not a cursor this list returned")
        where = where or DeadLetterFilter()
        inbox_sql, inbox_params = where.sql("connector", "failed_at")
        outbox_sql, outbox_params = where.sql("destination", "updated_at", outbox=True)
        items: list[DeadLetter] = []
        if source == "inbox" and where.source in (None, "inbox"):
            rows = await self._read(
                f"SELECT * FROM dead_letters WHERE id > ?{inbox_sql} ORDER BY id LIMIT ?",
                (after_id, *inbox_params, limit + 1))
            items += [DeadLetter(
                id=f"inbox-{r['id']}", source="inbox", connector=r["connector"],
                destination=None, kind=r["kind"], delivery_key=r["delivery_key"],
                fulfillment_order_id=None, received_at=r["received_at"],
                attempts=r["attempts"], error=r["last_error"], failed_at=r["failed_at"])
                for r in rows]
            after_id = 0
        if len(items) <= limit and where.source in (None, "outbox"):
            rows = await self._read(
                "SELECT id, destination, kind, fo_id, created_at, attempts, last_error,"
                f" updated_at FROM outbox_messages WHERE status = 'dead' AND id > ?{outbox_sql}"
                " ORDER BY id LIMIT ?",
                (after_id if source == "outbox" else 0, *outbox_params,
                 limit + 1 - len(items)))
            items += [DeadLetter(
                id=f"outbox-{r['id']}", source="outbox",
                connector=r["destination"].partition(":")[2]
                if r["destination"].startswith("connector:") else None,
                destination=r["destination"], kind=r["kind"], delivery_key=None,
                fulfillment_order_id=r["fo_id"], received_at=r["created_at"],
                attempts=r["attempts"], error=r["last_error"], failed_at=r["updated_at"])
                for r in rows]
        nxt = None
        if len(items) > limit:
            last = items[limit - 1]
            kind, _, number = last.id.partition("-")
            nxt = encode_cursor(kind, int(number))
        return Page(items[:limit], nxt)

    # whether this backend keeps webhook delivery keys indexed (SQLite keeps them in memory
    # instead: an index over random keys was intake's largest cost); without, a webhook's key
    # is looked for among the latest WEBHOOK_KEY_WINDOW inbox events only (a primary-key range)
    webhook_keys_indexed = False
    WEBHOOK_KEY_WINDOW = 100_000

    async def search(self, text: str, limit: int,
                     connectors: Sequence[str] = ()) -> list[dict[str, Any]]:
        """What an id names, each through an index: an order number or partner order id, a
        partner's shipment id, a tracking number, an outbox or inbox message (outbox-N,
        inbox-N), a delivery key of one of `connectors` (a polled record's; a webhook's where
        the backend indexes them). Each hit: kind, label, and the fo_id, shipment_id or
        dead_letter it leads to."""
        hits: list[dict[str, Any]] = []
        for row in await self._read(
                "SELECT kind, fo_id FROM fulfillment_order_refs WHERE kind IN"
                " ('order_number', 'partner_order_id', 'order_key') AND value = ? LIMIT ?",
                (text, limit)):
            hits.append({"kind": row["kind"], "label": f"{row['kind']} {text}",
                         "fo_id": row["fo_id"]})
        for row in await self._read("SELECT id FROM fulfillment_orders WHERE order_number = ?"
                                    " LIMIT ?", (text, limit)):
            hits.append({"kind": "order_number", "label": f"order number {text}",
                         "fo_id": row["id"]})
        shipments = [(r["id"], f"{r['source']} shipment {text}") for r in await self._read(
            "SELECT id, source FROM shipments WHERE external_id = ? LIMIT ?", (text, limit))]
        shipments += [(r["shipment_id"], f"tracking number {text}") for r in await self._read(
            "SELECT shipment_id FROM shipment_tracking WHERE tracking_number = ? LIMIT ?",
            (text, limit))]
        for shipment_id, label in shipments:
            fo = await self._read("SELECT fo_id FROM shipment_matches WHERE shipment_id = ?"
                                  " ORDER BY fo_id LIMIT 1", (shipment_id,))
            hits.append({"kind": "shipment", "label": label, "shipment_id": shipment_id,
                         "fo_id": fo[0]["fo_id"] if fo else None})
        # Delivery keys last, and only for what named nothing else (a webhook's key on
        # SQLite costs a bounded range read).
        inbox = [] if hits else await self._delivery_keys(text, connectors, limit)
        source, number = dead_letter_number(text)
        messages = [(f"inbox-{i}", f"delivery {text}") for i in inbox]
        if number is not None:
            messages.append((text, text))
        for message_id, label in messages:
            source, number = dead_letter_number(message_id)
            table = "inbox_events" if source == "inbox" else "outbox_messages"
            fo_column = "NULL AS fo_id" if source == "inbox" else "fo_id"
            for row in await self._read(f"SELECT status, {fo_column} FROM {table} WHERE id = ?",
                                        (number,)):
                dead = row["status"] == "dead"
                hits.append({"kind": source, "label": f"{label} ({message_id}, {row['status']})",
                             "dead_letter": message_id if dead else None,
                             "fo_id": None if dead else row["fo_id"]})
        unique = {(h["kind"], h.get("fo_id"), h.get("shipment_id"), h.get("dead_letter")): h
                  for h in hits}
        return list(unique.values())[:limit]

    async def _delivery_keys(self, text: str, connectors: Sequence[str],
                             limit: int) -> list[int]:
        """Inbox events with this delivery key: polled ones through their unique index, a
        webhook's through the backend's index or among the latest WEBHOOK_KEY_WINDOW."""
        window = "" if self.webhook_keys_indexed else \
            f" AND id > (SELECT MAX(id) FROM inbox_events) - {self.WEBHOOK_KEY_WINDOW}"
        found = []
        for connector in connectors:
            for kind, bound in (("poll", ""), ("webhook", window)):
                found += [r["id"] for r in await self._read(  # a literal kind: SQLite's
                    # partial index over polled keys needs it
                    f"SELECT id FROM inbox_events WHERE connector = ? AND kind = '{kind}'"
                    f" AND delivery_key = ?{bound} LIMIT ?", (connector, text, limit))]
        return found

    async def count_unmatched(self, cap: int) -> int:
        """How many shipments wait for a person, counted up to `cap` (the index, no scan)."""
        rows = await self._read(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM shipments WHERE match_state = 'unmatched'"
            " AND status != 'voided' LIMIT ?) AS waiting", (cap,))
        return int(rows[0]["n"])

    async def recent_status_changes(self, limit: int) -> list[dict[str, Any]]:
        """The latest FO status changes, newest first (the partial index, no scan)."""
        rows = await self._read(
            "SELECT fo_id, at, from_status, to_status FROM timeline"
            " WHERE kind = 'status_changed' ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    async def dead_letter(self, dead_letter_id: str) -> dict[str, Any] | None:
        """One dead letter whole: its payload (an inbox event's body as text) and error."""
        source, number = dead_letter_number(dead_letter_id)
        if number is None:
            return None
        if source == "inbox":
            rows = await self._read(
                "SELECT connector, kind, delivery_key, body, received_at, attempts,"
                " last_error FROM inbox_events WHERE id = ? AND status = 'dead'", (number,))
            if not rows:
                return None
            r = rows[0]
            body = bytes(r["body"]).decode(errors="replace")
            return {"id": dead_letter_id, "source": "inbox", "connector": r["connector"],
                    "destination": None, "kind": r["kind"], "delivery_key": r["delivery_key"],
                    "fulfillment_order_id": None, "received_at": r["received_at"],
                    "attempts": r["attempts"], "error": r["last_error"], "payload": body}
        rows = await self._read(
            "SELECT destination, kind, fo_id, payload, created_at, attempts, last_error"
            " FROM outbox_messages WHERE id = ? AND status = 'dead'", (number,))
        if not rows:
            return None
        r = rows[0]
        return {"id": dead_letter_id, "source": "outbox", "connector": None,
                "destination": r["destination"], "kind": r["kind"], "delivery_key": None,
                "fulfillment_order_id": r["fo_id"], "received_at": r["created_at"],
                "attempts": r["attempts"], "error": r["last_error"], "payload": r["payload"]}

    async def partner_record(self, connector: str, kind: str,
                             external_id: str) -> PartnerRecord | None:
        rows = await self._read("SELECT * FROM partner_records WHERE connector = ? AND kind = ?"
                                " AND external_id = ?", (connector, kind, external_id))
        return partner_record_from_row(rows[0]) if rows else None

    async def list_partner_records(self, connector: str, kind: str, updated_since: str | None,
                                   cursor: str | None, limit: int) -> Page:
        where, params = ["connector = ?", "kind = ?"], [connector, kind]
        if updated_since:
            where.append("recorded_at >= ?")
            params.append(updated_since)
        if cursor:
            after_at, after_id = decode_cursor(cursor, str, str)
            where.append("(recorded_at > ? OR (recorded_at = ? AND external_id > ?))")
            params += [after_at, after_at, after_id]
        rows = await self._read(
            f"SELECT * FROM partner_records WHERE {' AND '.join(where)}"
            " ORDER BY recorded_at, external_id LIMIT ?", [*params, limit + 1])
        nxt = encode_cursor(rows[limit - 1]["recorded_at"], rows[limit - 1]["external_id"]) \
            if len(rows) > limit else None
        return Page([partner_record_from_row(r) for r in rows[:limit]], nxt)

    async def inbound_shipment(self, external_id: str, connector: str | None = None
                               ) -> InboundShipmentView | None:
        sql, params = "SELECT * FROM inbound_shipments WHERE external_id = ?", [external_id]
        if connector:
            sql, params = sql + " AND connector = ?", [*params, connector]
        rows = await self._read(sql + " ORDER BY connector LIMIT 1", params)
        return inbound_from_row(rows[0]) if rows else None

    async def list_inbound_shipments(self, connector: str | None, statuses: Sequence[str],
                                     updated_since: str | None, cursor: str | None,
                                     limit: int) -> Page:
        where: list[str] = []
        params: list[Any] = []
        if connector:
            where.append("connector = ?")
            params.append(connector)
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params += list(statuses)
        if updated_since:
            where.append("updated_at >= ?")
            params.append(updated_since)
        return await self._keyed_page("inbound_shipments", "updated_at", where, params, cursor,
                                      limit, inbound_from_row)

    async def _keyed_page(self, table: str, at: str, where: list[str], params: list[Any],
                          cursor: str | None, limit: int, from_row: Callable[[Any], Any]
                          ) -> Page:
        """A page of a table keyed by (connector, external_id), oldest `at` first."""
        if cursor:
            after = decode_cursor(cursor, str, str, str)
            where = [*where, f"({at}, connector, external_id) > (?, ?, ?)"]
            params = [*params, *after]
        sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
        rows = await self._read(sql + f" ORDER BY {at}, connector, external_id LIMIT ?",
                                [*params, limit + 1])
        last = rows[limit - 1] if len(rows) > limit else None
        nxt = encode_cursor(last[at], last["connector"], last["external_id"]) \
            if last is not None else None
        return Page([from_row(r) for r in rows[:limit]], nxt)

    async def list_partner_orders(self, connector: str | None, unclaimed: bool, held: bool,
                                  cursor: str | None, limit: int) -> Page:
        where: list[str] = []
        params: list[Any] = []
        if connector:
            where.append("connector = ?")
            params.append(connector)
        if unclaimed:
            where.append("fo_id IS NULL AND hold_reason IS NULL")
        if held:
            where.append("hold_reason IS NOT NULL")
        return await self._keyed_page("partner_orders", "recorded_at", where, params, cursor,
                                      limit, partner_order_from_row)
