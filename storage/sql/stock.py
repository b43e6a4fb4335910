"""Stock in SQL both backends run: transfer orders, the receipts and discrepancies read from
a fulfilment network, and the inventory ledger (movements, and their running sum per
location and SKU). Mixed into the transaction (writes) and into the views (reads)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from storage import Page
from storage.models import (
    InboundReceipt,
    Movement,
    StockLevel,
    TransferLine,
    TransferOrder,
)
from storage.sql.common import (
    Row,
    SqlConnection,
    decode_cursor,
    encode_cursor,
    from_json,
    placeholders,
    to_json,
)


def transfer_from_row(row: Row) -> TransferOrder:
    return TransferOrder(
        id=row["id"], connector=row["connector"],
        inbound_shipment_id=row["inbound_shipment_id"], fulfillment_order_id=row["fo_id"],
        purchase_order_id=row["purchase_order_id"], source_location=row["source_location"],
        destination_location=row["destination_location"], status=row["status"],
        purchase_order_status=row["po_status"],
        lines=[TransferLine(**ln) for ln in from_json(row["lines"])],
        created_at=row["created_at"], updated_at=row["updated_at"], carrier=row["carrier"],
        tracking_numbers=from_json(row["tracking_numbers"]), shipped_at=row["shipped_at"],
        closed_at=row["closed_at"])


def receipt_from_row(row: Row) -> InboundReceipt:
    return InboundReceipt(**{k: row[k] for k in (
        "id", "connector", "inbound_shipment_id", "sku", "kind", "quantity", "received_before",
        "received_after", "state", "observed_at", "recorded_at", "transfer_order_id",
        "applied_at")})


def level_from_row(row: Row) -> StockLevel:
    return StockLevel(row["location"], row["sku"], row["on_hand"], row["in_transit"],
                          row["updated_at"])


def movement_from_row(row: Row) -> Movement:
    return Movement(row["location"], row["sku"], row["on_hand"], row["in_transit"],
                    row["reason"], row["reference"], row["at"], id=row["id"])


class StockTransaction:
    db: SqlConnection

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def get_transfer_order(self, transfer_order_id: str) -> TransferOrder | None:
        rows = await self._all("SELECT * FROM transfer_orders WHERE id = ?",
                               (transfer_order_id,))
        return transfer_from_row(rows[0]) if rows else None

    async def transfer_order_of(self, connector: str,
                                inbound_shipment_id: str) -> TransferOrder | None:
        rows = await self._all("SELECT * FROM transfer_orders WHERE connector = ?"
                               " AND inbound_shipment_id = ?", (connector, inbound_shipment_id))
        return transfer_from_row(rows[0]) if rows else None

    async def save_transfer_order(self, order: TransferOrder) -> None:
        await self.db.execute(
            "INSERT INTO transfer_orders (id, connector, inbound_shipment_id, fo_id,"
            " purchase_order_id, source_location, destination_location, status, po_status,"
            " lines, carrier, tracking_numbers, shipped_at, closed_at, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
            " po_status = excluded.po_status, lines = excluded.lines,"
            " carrier = excluded.carrier, tracking_numbers = excluded.tracking_numbers,"
            " shipped_at = excluded.shipped_at, closed_at = excluded.closed_at,"
            " updated_at = excluded.updated_at",
            (order.id, order.connector, order.inbound_shipment_id, order.fulfillment_order_id,
             order.purchase_order_id, order.source_location, order.destination_location,
             order.status, order.purchase_order_status, to_json([vars(ln) for ln in order.lines]),
             order.carrier, to_json(list(order.tracking_numbers)), order.shipped_at,
             order.closed_at, order.created_at, order.updated_at))

    async def receipts_of(self, connector: str, inbound_shipment_id: str
                          ) -> list[InboundReceipt]:
        rows = await self._all(
            "SELECT * FROM inbound_receipts WHERE connector = ? AND inbound_shipment_id = ?"
            " ORDER BY recorded_at, id", (connector, inbound_shipment_id))
        return [receipt_from_row(r) for r in rows]

    async def save_receipts(self, receipts: Sequence[InboundReceipt]) -> None:
        """Insert, or update the state of, each."""
        await self.db.executemany(
            "INSERT INTO inbound_receipts (id, connector, inbound_shipment_id, sku, kind,"
            " quantity, received_before, received_after, state, transfer_order_id, observed_at,"
            " recorded_at, applied_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
            " transfer_order_id = excluded.transfer_order_id, applied_at = excluded.applied_at",
            [(r.id, r.connector, r.inbound_shipment_id, r.sku, r.kind, r.quantity,
              r.received_before, r.received_after, r.state, r.transfer_order_id, r.observed_at,
              r.recorded_at, r.applied_at) for r in receipts])

    async def move_inventory(self, movements: Iterable[Movement]) -> None:
        """Each movement written, and added to its location and SKU's levels."""
        moves = [m for m in movements if m.on_hand or m.in_transit]
        if not moves:
            return
        await self.db.executemany(
            "INSERT INTO inventory_movements (location, sku, on_hand, in_transit, reason,"
            " reference, at) VALUES (?,?,?,?,?,?,?)",
            [(m.location, m.sku, m.on_hand, m.in_transit, m.reason, m.reference, m.at)
             for m in moves])
        for m in moves:  # one statement each: two moves of one SKU in a batch both count
            await self.db.execute(
                "INSERT INTO inventory_levels (location, sku, on_hand, in_transit, updated_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT (location, sku) DO UPDATE SET"
                " on_hand = inventory_levels.on_hand + excluded.on_hand,"
                " in_transit = inventory_levels.in_transit + excluded.in_transit,"
                " updated_at = excluded.updated_at",
                (m.location, m.sku, m.on_hand, m.in_transit, m.at))


class StockViews:
    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def transfer_order(self, transfer_order_id: str) -> TransferOrder | None:
        rows = await self._read("SELECT * FROM transfer_orders WHERE id = ?",
                                (transfer_order_id,))
        return transfer_from_row(rows[0]) if rows else None

    async def transfer_order_for(self, connector: str,
                                 inbound_shipment_id: str) -> TransferOrder | None:
        rows = await self._read("SELECT * FROM transfer_orders WHERE connector = ?"
                                " AND inbound_shipment_id = ?", (connector, inbound_shipment_id))
        return transfer_from_row(rows[0]) if rows else None

    async def list_transfer_orders(self, connector: str | None, statuses: Sequence[str],
                                   cursor: str | None, limit: int) -> Page:
        """Oldest change first."""
        where, params = ["1 = 1"], []
        if connector:
            where.append("connector = ?")
            params.append(connector)
        if statuses:
            where.append(f"status IN ({placeholders(statuses)})")
            params += list(statuses)
        if cursor:
            where.append("(updated_at, id) > (?, ?)")
            params += decode_cursor(cursor, str, str)
        rows = await self._read(
            f"SELECT * FROM transfer_orders WHERE {' AND '.join(where)}"
            " ORDER BY updated_at, id LIMIT ?", [*params, limit + 1])
        return Page([transfer_from_row(r) for r in rows[:limit]],
                    _next(rows, limit, "updated_at", "id"))

    async def inbound_receipts(self, connector: str, inbound_shipment_id: str
                               ) -> list[InboundReceipt]:
        rows = await self._read(
            "SELECT * FROM inbound_receipts WHERE connector = ? AND inbound_shipment_id = ?"
            " ORDER BY recorded_at, id", (connector, inbound_shipment_id))
        return [receipt_from_row(r) for r in rows]

    async def list_inbound_receipts(self, connector: str | None, states: Sequence[str],
                                    cursor: str | None, limit: int) -> Page:
        """Oldest first."""
        where, params = ["1 = 1"], []
        if connector:
            where.append("connector = ?")
            params.append(connector)
        if states:
            where.append(f"state IN ({placeholders(states)})")
            params += list(states)
        if cursor:
            where.append("(recorded_at, id) > (?, ?)")
            params += decode_cursor(cursor, str, str)
        rows = await self._read(
            f"SELECT * FROM inbound_receipts WHERE {' AND '.join(where)}"
            " ORDER BY recorded_at, id LIMIT ?", [*params, limit + 1])
        return Page([receipt_from_row(r) for r in rows[:limit]],
                    _next(rows, limit, "recorded_at", "id"))

    async def inventory_levels(self, location: str | None, sku: str | None,
                               cursor: str | None, limit: int) -> Page:
        """By location, then SKU."""
        where, params = _at(location, sku)
        if cursor:
            where.append("(location, sku) > (?, ?)")
            params += decode_cursor(cursor, str, str)
        rows = await self._read(
            f"SELECT * FROM inventory_levels WHERE {' AND '.join(where)}"
            " ORDER BY location, sku LIMIT ?", [*params, limit + 1])
        return Page([level_from_row(r) for r in rows[:limit]],
                    _next(rows, limit, "location", "sku"))

    async def inventory_movements(self, location: str | None, sku: str | None,
                                  cursor: str | None, limit: int) -> Page:
        """Oldest first."""
        where, params = _at(location, sku)
        if cursor:
            where.append("id > ?")
            params += decode_cursor(cursor, int)
        rows = await self._read(
            f"SELECT * FROM inventory_movements WHERE {' AND '.join(where)}"
            " ORDER BY id LIMIT ?", [*params, limit + 1])
        return Page([movement_from_row(r) for r in rows[:limit]], _next(rows, limit, "id"))


def _at(location: str | None, sku: str | None) -> tuple[list[str], list[Any]]:
    where, params = ["1 = 1"], []
    for column, value in (("location", location), ("sku", sku)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def _next(rows: Sequence[Row], limit: int, *columns: str) -> str | None:
    """The cursor after a page (its last row's key), when more rows follow."""
    return encode_cursor(*(rows[limit - 1][c] for c in columns)) if len(rows) > limit else None
