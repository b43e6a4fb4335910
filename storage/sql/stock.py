"""Stock in SQL both backends run: transfer orders, the receipts and discrepancies read from
a fulfilment network, and the inventory ledger (movements, and their running sum per
location and SKU). Mixed into the transaction (writes) and into the views (reads)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
        return await self._keyset_page(
            "transfer_orders", (("updated_at", str), ("id", str)),
            {"connector": connector, "status": statuses}, cursor, limit, transfer_from_row)

    async def inbound_receipts(self, connector: str, inbound_shipment_id: str
                               ) -> list[InboundReceipt]:
        rows = await self._read(
            "SELECT * FROM inbound_receipts WHERE connector = ? AND inbound_shipment_id = ?"
            " ORDER BY recorded_at, id", (connector, inbound_shipment_id))
        return [receipt_from_row(r) for r in rows]

    async def list_inbound_receipts(self, connector: str | None, states: Sequence[str],
                                    cursor: str | None, limit: int) -> Page:
        """Oldest first."""
        return await self._keyset_page(
            "inbound_receipts", (("recorded_at", str), ("id", str)),
            {"connector": connector, "state": states}, cursor, limit, receipt_from_row)

    async def inventory_levels(self, location: str | None, sku: str | None,
                               cursor: str | None, limit: int) -> Page:
        """By location, then SKU."""
        return await self._keyset_page(
            "inventory_levels", (("location", str), ("sku", str)),
            {"location": location, "sku": sku}, cursor, limit, level_from_row)

    async def inventory_movements(self, location: str | None, sku: str | None,
                                  cursor: str | None, limit: int) -> Page:
        """Oldest first."""
        return await self._keyset_page(
            "inventory_movements", (("id", int),), {"location": location, "sku": sku},
            cursor, limit, movement_from_row)

    async def _keyset_page(self, table: str, key: Sequence[tuple[str, type]],
                           filters: Mapping[str, str | Sequence[str] | None],
                           cursor: str | None, limit: int,
                           from_row: Callable[[Row], Any]) -> Page:
        """A page of `table` in the order of its `key` columns (each with its kind, for the
        cursor), after `cursor`; a filter is a column's value, or the values it may take
        (none given: not filtered)."""
        where, params = ["1 = 1"], []
        for column, value in filters.items():
            if isinstance(value, str):
                where.append(f"{column} = ?")
                params.append(value)
            elif value:
                where.append(f"{column} IN ({placeholders(value)})")
                params += list(value)
        columns = ", ".join(column for column, _ in key)
        if cursor:
            where.append(f"({columns}) > ({', '.join('?' for _ in key)})")
            params += decode_cursor(cursor, *(kind for _, kind in key))
        rows = await self._read(f"SELECT * FROM {table} WHERE {' AND '.join(where)}"
                                f" ORDER BY {columns} LIMIT ?", [*params, limit + 1])
        more = len(rows) > limit
        return Page([from_row(r) for r in rows[:limit]],
                    encode_cursor(*(rows[limit - 1][c] for c, _ in key)) if more else None)
