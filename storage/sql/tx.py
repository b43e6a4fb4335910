"""The transaction every ledger write goes through, in SQL both backends run: on SQLite inside
BEGIN IMMEDIATE, on PostgreSQL inside a transaction on one pooled connection."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from gateway.domain.reconcile import Match
from gateway.domain.records import (
    Allocation,
    FulfillmentOrder,
    FulfillmentOrderLine,
    OrderRef,
    PartnerLink,
    PartnerOrder,
    PartnerOrderLine,
    PartnerRecord,
    Shipment,
    ShipmentLine,
)
from storage import NewFulfillmentOrder, NewOutboxMessage, StoredPartnerOrder
from storage.models import InboundItemView, InboundShipmentView, StatusSeen
from storage.sql.common import Row, SqlConnection, from_json, placeholders, to_json
from storage.sql.stock import StockTransaction


def _shipment_from_row(row: Row) -> Shipment:
    return Shipment(
        id=row["id"], source=row["source"], external_id=row["external_id"],
        order_refs=tuple(OrderRef(**r) for r in from_json(row["order_refs"])),
        lines=tuple(ShipmentLine(**ln) for ln in from_json(row["lines"])),
        status=row["status"], carrier=row["carrier"], service=row["service"],
        tracking_numbers=tuple(from_json(row["tracking_numbers"])),
        tracking_url=row["tracking_url"], shipped_at=row["shipped_at"],
        partner_updated_at=row["partner_updated_at"],
    )


def partner_order_from_row(row: Row) -> StoredPartnerOrder:
    content = from_json(row["content"])
    order = PartnerOrder(
        source=row["connector"], external_id=row["external_id"], status=row["status"],
        lines=tuple(PartnerOrderLine(**ln) for ln in content["lines"]),
        partner_updated_at=row["partner_updated_at"], order_number=row["order_number"],
        ship_to=content["ship_to"], customer_ref=row["customer_ref"], raw=from_json(row["raw"]),
        hold_reason=row["hold_reason"])
    return StoredPartnerOrder(order, row["fo_id"], row["recorded_at"])


def partner_record_from_row(row: Row) -> PartnerRecord:
    return PartnerRecord(source=row["connector"], kind=row["kind"],
                         external_id=row["external_id"], fields=from_json(row["fields"]),
                         updated_at=row["updated_at"], archived=bool(row["archived"]))


def inbound_from_row(row: Row) -> InboundShipmentView:
    return InboundShipmentView(
        connector=row["connector"], id=row["external_id"], name=row["name"],
        destination=row["destination"], status=row["status"],
        status_history=[StatusSeen(**h) for h in from_json(row["status_history"])],
        items=[InboundItemView(**i) for i in from_json(row["items"])],
        created_at=row["created_at"], updated_at=row["updated_at"],
        header_seen_at=row["header_seen_at"], items_seen_at=row["items_seen_at"],
        stage=row["stage"], closed_seen_at=row["closed_seen_at"])


def link_from_row(row: Row) -> PartnerLink:
    return PartnerLink(fo_id=row["fo_id"], connector=row["connector"], role=row["role"],
                       partner_order_id=row["partner_order_id"], state=row["state"],
                       watch_until=row["watch_until"], pushed=from_json(row["pushed"]),
                       last_result=from_json(row["last_result"]), updated_at=row["updated_at"])


class SqlTransaction(StockTransaction):
    """The `storage.Transaction` protocol over one connection inside a transaction. Where the
    backends' SQL must differ, a backend subclasses it and changes the class attribute."""

    # the next FO's creation number; one writer at a time on SQLite makes MAX + 1 safe
    NEXT_FO_SEQ = "SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM fulfillment_orders"

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, params))

    # fulfillment orders

    async def create_fulfillment_order(self, new: NewFulfillmentOrder) -> None:
        fo = new.fo
        rows = await self._all(self.NEXT_FO_SEQ)
        await self.db.execute(
            "INSERT INTO fulfillment_orders (id, seq, channel, order_number, ship_to, custom_fields,"
            " request_hash, status, cancelled, created_at, updated_at, flow, invoice_id)"
            " VALUES (?,?,?,?,?,?,?,?,0,?,?,?,?)",
            (fo.id, rows[0]["seq"], fo.channel, fo.order_number, to_json(new.ship_to),
             to_json(new.custom_fields), new.request_hash, fo.status, new.created_at,
             new.created_at, new.flow, new.invoice_id))
        await self.db.executemany(
            "INSERT INTO fulfillment_order_lines (fo_id, line_id, position, sku, requested)"
            " VALUES (?,?,?,?,?)",
            [(fo.id, ln.line_id, i, ln.sku, ln.requested) for i, ln in enumerate(fo.lines)])
        await self.db.executemany(
            "INSERT INTO fulfillment_order_refs (fo_id, kind, value) VALUES (?,?,?)"
            " ON CONFLICT DO NOTHING",
            [(fo.id, r.kind, r.value) for r in fo.refs])
        await self.add_timeline(fo.id, "created", new.created_at, {"status": fo.status})

    async def fulfillment_order_request_hash(self, fo_id: str) -> str | None:
        rows = await self._all("SELECT request_hash FROM fulfillment_orders WHERE id = ?", (fo_id,))
        return rows[0]["request_hash"] if rows else None

    async def lock_fulfillment_orders(self, fo_ids: Iterable[str]) -> None:
        """One writer at a time (SQLite): nothing more to hold."""

    async def get_fulfillment_orders(self, fo_ids: Iterable[str]) -> list[FulfillmentOrder]:
        ids = list(set(fo_ids))
        if not ids:
            return []
        fos = await self._all(
            f"SELECT * FROM fulfillment_orders WHERE id IN ({placeholders(ids)})", ids)
        lines = await self._all(
            "SELECT * FROM fulfillment_order_lines"
            f" WHERE fo_id IN ({placeholders(ids)}) ORDER BY fo_id, position", ids)
        refs = await self._all(
            f"SELECT * FROM fulfillment_order_refs WHERE fo_id IN ({placeholders(ids)})", ids)
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
            refs=tuple(refs_by_fo.get(row["id"], ())), flow=row["flow"]) for row in fos]

    async def existing_fulfillment_order_ids(self, fo_ids: Iterable[str]) -> set[str]:
        ids = list(set(fo_ids))
        if not ids:
            return set()
        rows = await self._all(
            f"SELECT id FROM fulfillment_orders WHERE id IN ({placeholders(ids)})", ids)
        return {r["id"] for r in rows}

    async def fulfillment_orders_by_ref(
            self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], list[str]] = {}
        if not wanted:
            return found
        # One statement for every key (each term a lookup on the primary key's index).
        rows = await self._all(
            "SELECT kind, value, fo_id FROM fulfillment_order_refs WHERE "
            + " OR ".join(["(kind = ? AND value = ?)"] * len(wanted)) + " ORDER BY fo_id",
            [part for key in wanted for part in key])
        for r in rows:
            found.setdefault((r["kind"], r["value"]), []).append(r["fo_id"])
        return found

    async def cancel_fulfillment_order(self, fo_id: str, at: str) -> None:
        await self.db.execute(
            "UPDATE fulfillment_orders SET cancelled = 1, updated_at = ? WHERE id = ?", (at, fo_id))

    # shipments

    async def get_shipment(self, source: str, external_id: str) -> Shipment | None:
        rows = await self._all(
            "SELECT * FROM shipment_records WHERE source = ? AND external_id = ?",
            (source, external_id))
        return _shipment_from_row(rows[0]) if rows else None

    async def get_shipments(self, shipment_ids: Iterable[str]) -> list[Shipment]:
        ids = list(set(shipment_ids))
        if not ids:
            return []
        rows = await self._all(
            f"SELECT * FROM shipment_records WHERE id IN ({placeholders(ids)})", ids)
        return [_shipment_from_row(r) for r in rows]

    async def save_shipment(self, shipment: Shipment, at: str, new: bool = False) -> str:
        if shipment.id is None:
            raise ValueError("save_shipment needs the shipment's gateway id")
        await self.db.execute(
            "INSERT INTO shipments (id, source, external_id, order_refs, status, carrier,"
            " service, tracking_numbers, tracking_url, shipped_at, partner_updated_at,"
            " recorded_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (source, external_id) DO UPDATE SET order_refs = excluded.order_refs,"
            " status = excluded.status, carrier = excluded.carrier,"
            " service = excluded.service, tracking_numbers = excluded.tracking_numbers,"
            " tracking_url = excluded.tracking_url, shipped_at = excluded.shipped_at,"
            " partner_updated_at = excluded.partner_updated_at, updated_at = excluded.updated_at",
            (shipment.id, shipment.source, shipment.external_id,
             to_json([{"kind": r.kind, "value": r.value} for r in shipment.order_refs]),
             shipment.status, shipment.carrier, shipment.service,
             to_json(list(shipment.tracking_numbers)), shipment.tracking_url, shipment.shipped_at,
             shipment.partner_updated_at, at, at))
        if not new:  # what an earlier version stored goes; a new id has none
            for table in ("shipment_lines", "shipment_refs", "shipment_tracking"):
                await self.db.execute(f"DELETE FROM {table} WHERE shipment_id = ?",
                                      (shipment.id,))
        await self.db.executemany(
            "INSERT INTO shipment_lines (shipment_id, position, sku, quantity, partner_line_id)"
            " VALUES (?,?,?,?,?)",
            [(shipment.id, i, ln.sku, ln.quantity, ln.partner_line_id)
             for i, ln in enumerate(shipment.lines)])
        await self.db.executemany(
            "INSERT INTO shipment_refs (shipment_id, kind, value) VALUES (?,?,?)"
            " ON CONFLICT DO NOTHING",
            [(shipment.id, r.kind, r.value) for r in shipment.order_refs])
        await self.db.executemany(
            "INSERT INTO shipment_tracking (tracking_number, shipment_id) VALUES (?,?)"
            " ON CONFLICT DO NOTHING",
            [(t, shipment.id) for t in dict.fromkeys(shipment.tracking_numbers) if t])
        return shipment.id

    async def set_match(self, shipment_id: str, match: Match, at: str,
                        new: bool = False) -> None:
        if not new:
            await self.db.execute("DELETE FROM shipment_matches WHERE shipment_id = ?",
                                  (shipment_id,))
        await self.db.executemany(
            "INSERT INTO shipment_matches (shipment_id, fo_id) VALUES (?,?)",
            [(shipment_id, fo_id) for fo_id in match.fo_ids])
        await self.db.execute(
            "UPDATE shipments SET match_state = ?, match_rule = ?, unmatched_reason = ?,"
            " candidates = ?, updated_at = ? WHERE id = ?",
            ("matched" if match.matched else "unmatched", match.rule, match.reason,
             to_json(list(match.candidates)), at, shipment_id))

    async def get_match_rule(self, shipment_id: str) -> str | None:
        rows = await self._all("SELECT match_rule FROM shipments WHERE id = ?", (shipment_id,))
        return rows[0]["match_rule"] if rows else None

    async def matches_of_shipments(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(set(shipment_ids))
        found: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            rows = await self._all(
                "SELECT shipment_id, fo_id FROM shipment_matches"
                f" WHERE shipment_id IN ({placeholders(ids)})", ids)
            for r in rows:
                found[r["shipment_id"]].append(r["fo_id"])
        return found

    async def shipments_of_fulfillment_orders(self, fo_ids: Iterable[str]) -> set[str]:
        ids = list(set(fo_ids))
        if not ids:
            return set()
        rows = await self._all(
            f"SELECT shipment_id FROM shipment_matches WHERE fo_id IN ({placeholders(ids)})", ids)
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
                                  overshipped: Mapping[str, Mapping[str, int]]
                                  ) -> set[tuple[str, str]]:
        """Returns (shipment id, FO id) of every allocation these FOs and shipments had."""
        fos, sids = list(set(fo_ids)), list(set(shipment_ids))
        where = [f"fo_id IN ({placeholders(fos)})"] if fos else []
        where += [f"shipment_id IN ({placeholders(sids)})"] if sids else []
        before = {(r["shipment_id"], r["fo_id"]) for r in await self._all(
            f"DELETE FROM allocations WHERE {' OR '.join(where)} RETURNING shipment_id, fo_id",
            [*fos, *sids])} if where else set()
        if sids:
            await self.db.executemany(
                "UPDATE shipments SET overshipped = ? WHERE id = ?",
                [(to_json(dict(overshipped.get(s, {}))), s) for s in sids])
        await self.db.executemany(
            "INSERT INTO allocations (shipment_id, fo_id, line_id, sku, quantity)"
            " VALUES (?,?,?,?,?)",
            [(a.shipment_id, a.fo_id, a.line_id, a.sku, a.quantity) for a in allocations])
        return before

    async def set_fulfillment_order_status(self, fo_id: str, old: str, new: str, at: str,
                                           detail: Mapping[str, Any]) -> None:
        await self.db.execute(
            "UPDATE fulfillment_orders SET status = ?, updated_at = ? WHERE id = ?",
            (new, at, fo_id))
        await self.db.execute(
            "INSERT INTO timeline (fo_id, at, kind, from_status, to_status, detail)"
            " VALUES (?,?,?,?,?,?)", (fo_id, at, "status_changed", old, new, to_json(dict(detail))))

    async def add_timeline(self, fo_id: str, kind: str, at: str,
                           detail: Mapping[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO timeline (fo_id, at, kind, detail) VALUES (?,?,?,?)",
            (fo_id, at, kind, to_json(dict(detail))))
        await self.db.execute(
            "UPDATE fulfillment_orders SET updated_at = ? WHERE id = ? AND updated_at < ?",
            (at, fo_id, at))

    async def mark_inbox_processed(self, event_ids: Sequence[int], at: str) -> None:
        ids = list(event_ids)
        await self.db.execute(
            "UPDATE inbox_events SET status = 'processed', processed_at = ?, last_error = NULL"
            f" WHERE status = 'pending' AND id IN ({placeholders(ids)})", (at, *ids))

    async def fulfillment_order_record(self, fo_id: str) -> dict[str, Any] | None:
        rows = await self._all("SELECT * FROM fulfillment_orders WHERE id = ?", (fo_id,))
        if not rows:
            return None
        record = dict(rows[0])
        record["ship_to"] = from_json(record["ship_to"])
        record["custom_fields"] = from_json(record["custom_fields"])
        lines = await self._all(
            "SELECT line_id, sku, requested FROM fulfillment_order_lines WHERE fo_id = ?"
            " ORDER BY position", (fo_id,))
        record["lines"] = [dict(ln) for ln in lines]
        return record

    async def add_fulfillment_order_ref(self, fo_id: str, kind: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO fulfillment_order_refs (fo_id, kind, value) VALUES (?,?,?)"
            " ON CONFLICT DO NOTHING",
            (fo_id, kind, value))

    # partner orders, records, links

    async def get_partner_order(self, connector: str, external_id: str
                                ) -> StoredPartnerOrder | None:
        rows = await self._all("SELECT * FROM partner_orders WHERE connector = ?"
                               " AND external_id = ?", (connector, external_id))
        return partner_order_from_row(rows[0]) if rows else None

    async def save_partner_order(self, order: PartnerOrder, fo_id: str | None, at: str) -> None:
        await self.db.execute(
            "INSERT INTO partner_orders (connector, external_id, order_number, status, content,"
            " raw, customer_ref, partner_updated_at, fo_id, hold_reason, recorded_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (connector, external_id) DO UPDATE SET"
            " order_number = excluded.order_number, status = excluded.status,"
            " content = excluded.content, raw = excluded.raw,"
            " customer_ref = excluded.customer_ref,"
            " partner_updated_at = excluded.partner_updated_at,"
            " fo_id = COALESCE(partner_orders.fo_id, excluded.fo_id),"
            " hold_reason = excluded.hold_reason, updated_at = excluded.updated_at",
            (order.source, order.external_id, order.order_number, order.status,
             to_json(order.content()), to_json(dict(order.raw)), order.customer_ref,
             order.partner_updated_at, fo_id, order.hold_reason, at, at))

    async def get_partner_record(self, connector: str, kind: str,
                                 external_id: str) -> PartnerRecord | None:
        rows = await self._all("SELECT * FROM partner_records WHERE connector = ? AND kind = ?"
                               " AND external_id = ?", (connector, kind, external_id))
        return partner_record_from_row(rows[0]) if rows else None

    async def save_partner_record(self, record: PartnerRecord, at: str) -> None:
        await self.db.execute(
            "INSERT INTO partner_records (connector, kind, external_id, fields, updated_at,"
            " archived, recorded_at) VALUES (?,?,?,?,?,?,?)"
            " ON CONFLICT (connector, kind, external_id) DO UPDATE SET fields = excluded.fields,"
            " updated_at = excluded.updated_at, archived = excluded.archived,"
            " recorded_at = excluded.recorded_at",
            (record.source, record.kind, record.external_id, to_json(dict(record.fields)),
             record.updated_at, int(record.archived), at))

    async def get_inbound_shipment(self, connector: str,
                                   external_id: str) -> InboundShipmentView | None:
        rows = await self._all("SELECT * FROM inbound_shipments WHERE connector = ?"
                               " AND external_id = ?", (connector, external_id))
        return inbound_from_row(rows[0]) if rows else None

    async def save_inbound_shipment(self, shipment: InboundShipmentView) -> None:
        await self.db.execute(
            "INSERT INTO inbound_shipments (connector, external_id, name, destination, status,"
            " status_history, items, header_seen_at, items_seen_at, created_at, updated_at,"
            " stage, closed_seen_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (connector, external_id) DO UPDATE SET name = excluded.name,"
            " destination = excluded.destination, status = excluded.status,"
            " status_history = excluded.status_history, items = excluded.items,"
            " header_seen_at = excluded.header_seen_at, items_seen_at = excluded.items_seen_at,"
            " updated_at = excluded.updated_at, stage = excluded.stage,"
            " closed_seen_at = excluded.closed_seen_at",
            (shipment.connector, shipment.id, shipment.name, shipment.destination,
             shipment.status, to_json([vars(h) for h in shipment.status_history]),
             to_json([vars(i) for i in shipment.items]), shipment.header_seen_at,
             shipment.items_seen_at, shipment.created_at, shipment.updated_at, shipment.stage,
             shipment.closed_seen_at))

    async def links_of(self, fo_ids: Iterable[str]) -> list[PartnerLink]:
        ids = list(set(fo_ids))
        if not ids:
            return []
        rows = await self._all(f"SELECT * FROM partner_links WHERE fo_id IN ({placeholders(ids)})"
                               " ORDER BY fo_id, role, connector", ids)
        return [link_from_row(r) for r in rows]

    async def save_link(self, link: PartnerLink) -> None:
        await self.db.execute(
            "INSERT INTO partner_links (fo_id, connector, role, partner_order_id, state,"
            " watch_until, pushed, last_result, updated_at) VALUES (?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (fo_id, connector, role) DO UPDATE SET"
            " partner_order_id = COALESCE(excluded.partner_order_id,"
            " partner_links.partner_order_id), state = excluded.state,"
            " watch_until = excluded.watch_until, pushed = excluded.pushed,"
            " last_result = COALESCE(excluded.last_result, partner_links.last_result),"
            " updated_at = excluded.updated_at",
            (link.fo_id, link.connector, link.role, link.partner_order_id, link.state,
             link.watch_until, to_json(dict(link.pushed)),
             None if link.last_result is None else to_json(dict(link.last_result)),
             link.updated_at))

    # the outbox

    async def enqueue_outbox(self, messages: Sequence[NewOutboxMessage], at: str) -> int:
        inserted = 0
        for m in messages:
            cur = await self.db.execute(
                "INSERT INTO outbox_messages (key, destination, kind, fo_id, sequence_key,"
                " payload, not_before, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (key) DO NOTHING",
                (m.key, m.destination, m.kind, m.fo_id, m.sequence_key, to_json(dict(m.payload)),
                 m.not_before, at, at))
            inserted += cur.rowcount
        return inserted

    async def outbox_message_id(self, key: str) -> int | None:
        rows = await self._all("SELECT id FROM outbox_messages WHERE key = ?", (key,))
        return rows[0]["id"] if rows else None

    async def outbox_messages_of(self, fo_id: str, kinds: Collection[str]
                                 ) -> list[dict[str, Any]]:
        kinds = list(kinds)
        rows = await self._all(
            "SELECT id, key, destination, kind, status, attempts, last_error, error_kind, payload"
            " FROM outbox_messages"
            f" WHERE fo_id = ? AND kind IN ({placeholders(kinds)}) ORDER BY id", [fo_id, *kinds])
        return [{**dict(r), "payload": from_json(r["payload"])} for r in rows]

    async def _pending_to(self, message_id: int, sets: str, params: Sequence[Any],
                          extra: str = "", extra_params: Sequence[Any] = ()) -> bool:
        cur = await self.db.execute(
            f"UPDATE outbox_messages SET {sets} WHERE id = ? AND status = 'pending'{extra}",
            (*params, message_id, *extra_params))
        return cur.rowcount == 1

    async def mark_outbox_sent(self, message_id: int, at: str,
                               result: Mapping[str, Any]) -> bool:
        return await self._pending_to(
            message_id, "status = 'sent', attempts = attempts + 1, result = ?, last_error = NULL,"
            " error_kind = NULL,"
            " updated_at = ?", (to_json(dict(result)), at))

    async def mark_outbox_events_sent(self, message_ids: Sequence[int], at: str) -> set[int]:
        """Many event deliveries at once (their answers are not kept): one statement."""
        ids = list(message_ids)
        if not ids:
            return set()
        rows = await self._all(
            "UPDATE outbox_messages SET status = 'sent', attempts = attempts + 1,"
            " last_error = NULL, updated_at = ?"
            f" WHERE status = 'pending' AND id IN ({placeholders(ids)}) RETURNING id",
            (at, *ids))
        return {r["id"] for r in rows}

    async def hasten_outbox_retries(self, destination: str, at: str) -> int:
        """Messages to this destination waiting out a backoff become due at `at`."""
        cur = await self.db.execute(
            "UPDATE outbox_messages SET not_before = ?, updated_at = ? WHERE status = 'pending'"
            " AND destination = ? AND attempts > 0 AND not_before > ?",
            (at, at, destination, at))
        return cur.rowcount

    async def cancel_outbox_message(self, message_id: int, at: str) -> bool:
        """A pending or dead message will not be sent (nor replayed)."""
        cur = await self.db.execute(
            "UPDATE outbox_messages SET status = 'cancelled', updated_at = ?"
            " WHERE id = ? AND status IN ('pending', 'dead')", (at, message_id))
        return cur.rowcount == 1

    async def retry_outbox_message(self, message_id: int, attempts: int, not_before: str,
                                   error: str, at: str, error_kind: str = "error") -> bool:
        return await self._pending_to(
            message_id, "attempts = ?, not_before = ?, last_error = ?, error_kind = ?,"
            " updated_at = ?", (attempts, not_before, error, error_kind, at),
            " AND attempts = ?", (attempts - 1,))

    async def dead_letter_outbox_message(self, message_id: int, attempts: int, error: str,
                                         at: str, error_kind: str = "error") -> bool:
        return await self._pending_to(
            message_id, "status = 'dead', attempts = ?, last_error = ?, error_kind = ?,"
            " updated_at = ?", (attempts, error, error_kind, at))
