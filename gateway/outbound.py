"""What the gateway sends out, decided inside the transaction of the change that causes it.

A change (an FO created or cancelled, shipments recorded, a push sent or failed) writes its
outbound messages into the outbox in its own transaction: events for subscribers, order pushes
to a channel's OMS, invoice requests, fulfillment updates to an FO's source. So a change is
never committed without its messages, nor a message without its change. The dispatcher
(gateway/outbox.py) sends them. Every method returns how many messages it enqueued, so the
caller knows to wake the dispatcher after its commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from gateway.config import ChannelConfig, Config
from gateway.domain.records import (
    PartnerLink,
    PartnerOrder,
    PartnerRecord,
    Shipment,
    new_id,
    parse_iso,
    utc_iso,
)
from gateway.errors import Failure
from gateway.events import (
    FulfillmentOrderData,
    InvoiceData,
    OrderPushedData,
    OrderPushFailedData,
    QuantityLine,
    RejectedData,
    RequestedLine,
    ShipmentData,
    ShippedLine,
    StatusChangedData,
    UnmatchedData,
)
from gateway.ledger import Outcome
from gateway.names import (
    ACKNOWLEDGE_ORDER,
    CANCEL_FULFILLMENT,
    CANCEL_ORDER,
    EVENT,
    FO_CANCELLED,
    FO_CREATED,
    FO_STATUS_CHANGED,
    INVOICE_REQUESTED,
    ORDER_PUSH_FAILED,
    ORDER_PUSHED,
    PUSH_FULFILLMENT,
    PUSH_ORDER,
    RECORD_WRITES,
    SHIPMENT_RECORDED,
    SHIPMENT_REJECTED,
    SHIPMENT_UNMATCHED,
    connector_destination,
    event_message_key,
    split_destination,
    subscriber_destination,
)
from storage import NewOutboxMessage, OutboxMessage, Transaction

# A rejected push never reached the partner's books; any other failure may have.
REJECTED = "rejected"

def set_path(body: dict[str, Any], dotted: str, value: Any) -> None:
    """body["a"]["b"] = value for "a.b", making the objects on the way."""
    *parents, last = dotted.split(".")
    node = body
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def apply_partner_fields(body: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Put the channel's mapped custom fields into a partner request under their own names."""
    for dotted, value in fields.items():
        set_path(body, dotted, value)
    return body


def order_payload(record: Mapping[str, Any], channel: ChannelConfig) -> dict[str, Any]:
    """What a connector's push_order gets: the FO as requested, with the channel's mapping."""
    custom = record.get("custom_fields") or {}
    assert channel.oms is not None
    return {
        "fulfillment_order_id": record["id"], "order_number": record["order_number"],
        "channel": channel.name, "created_at": record["created_at"],
        "lines": [{"line_id": ln["line_id"], "sku": ln["sku"], "quantity": ln["requested"]}
                  for ln in record["lines"]],
        "ship_to": record.get("ship_to") or {}, "store_id": channel.oms.store_id,
        "partner_fields": {target: custom[name] for name, target in channel.custom_fields.items()
                           if name in custom},
    }


def _fo_data(record: Mapping[str, Any]) -> FulfillmentOrderData:
    return FulfillmentOrderData(
        fulfillment_order_id=record["id"], channel=record["channel"],
        order_number=record["order_number"], status=record["status"],
        lines=[RequestedLine(line_id=ln["line_id"], sku=ln["sku"], requested=ln["requested"])
               for ln in record["lines"]])


def _shipment_data(shipment: Shipment, fo_ids: list[str]) -> ShipmentData:
    return ShipmentData(
        shipment_id=shipment.id, source=shipment.source, external_id=shipment.external_id,
        status=shipment.status,
        lines=[ShippedLine(sku=ln.sku, quantity=ln.quantity) for ln in shipment.lines],
        carrier=shipment.carrier, service=shipment.service,
        tracking_numbers=list(shipment.tracking_numbers), tracking_url=shipment.tracking_url,
        shipped_at=shipment.shipped_at,
        fulfillment_order_ids=fo_ids)


def rejection(shipment: Shipment) -> str | None:
    """Why a shipment's fulfilment must not be pushed to an order's origin, or None.

    Several tracking numbers mean several parcels, so one item cannot carry them: such a
    shipment is a data error at the fulfiller (a relabel not voided, a number typed twice),
    and pushing it would show the end customer parcels that do not exist."""
    units = sum(line.quantity for line in shipment.lines)
    if len(set(shipment.tracking_numbers)) > 1 and units <= 1:
        return (f"one item with {len(set(shipment.tracking_numbers))} tracking numbers"
                f" ({', '.join(dict.fromkeys(shipment.tracking_numbers))}): an item travels in"
                " one parcel; correct the shipment at the fulfiller (void it and ship again"
                " with one number)")
    return None


class Outbound:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._quiet = not config.subscribers and not config.channels

    def _channel(self, record: Mapping[str, Any] | None) -> ChannelConfig | None:
        return self.config.channel(record["channel"]) if record else None

    async def event(self, tx: Transaction, event_type: str, data: Mapping[str, Any], at: str,
                    fo_id: str | None = None, key: str | None = None) -> int:
        """One event, one message per subscriber that wants it; `key` makes it once only.

        Messages of one FO share a sequence, so each subscriber gets them in order.
        """
        wanted = [s for s in self.config.subscribers if s.wants(event_type)]
        if not wanted:
            return 0
        event_id = ("evt_" + hashlib.sha256(key.encode()).hexdigest()[:26]) if key \
            else new_id("evt")
        payload = {"id": event_id, "type": event_type, "timestamp": at, "data": dict(data)}
        return await tx.enqueue_outbox([NewOutboxMessage(
            key=event_message_key(event_id, s.name), destination=subscriber_destination(s.name), kind=EVENT,
            payload=payload, not_before=at, fo_id=fo_id, sequence_key=fo_id)
            for s in wanted], at)

    async def _to_connector(self, tx: Transaction, connector: str, kind: str, fo_id: str,
                            payload: Mapping[str, Any], at: str, key: str | None,
                            not_before: str | None = None) -> int:
        return await tx.enqueue_outbox([NewOutboxMessage(
            key=key or new_id(kind), destination=connector_destination(connector), kind=kind,
            payload=dict(payload), not_before=not_before or at, fo_id=fo_id,
            sequence_key=fo_id)], at)

    # changes

    async def fulfillment_order_created(self, tx: Transaction, fo_id: str, at: str) -> int:
        """Its events, its invoice request, and its push to the channel's OMS (whose
        fulfiller link is written now, so the FO shows where it is going)."""
        if self._quiet:
            return 0
        record = await tx.fulfillment_order_record(fo_id)
        assert record is not None
        sent = await self.event(tx, FO_CREATED, _fo_data(record), at, fo_id)
        channel = self._channel(record)
        if channel and channel.invoice_timing == "on_order_created" \
                and record["flow"] != "invoice_first":
            sent += await self.event(tx, INVOICE_REQUESTED, InvoiceData(
                fulfillment_order_id=fo_id, channel=channel.name,
                order_number=record["order_number"], shipment_id=None,
                lines=[QuantityLine(line_id=ln["line_id"], sku=ln["sku"],
                                    quantity=ln["requested"]) for ln in record["lines"]]),
                at, fo_id, key=f"invoice:{fo_id}")
        if channel and channel.oms:
            connector = channel.oms.connector
            not_before = utc_iso(parse_iso(at) + timedelta(minutes=channel.oms.delay_minutes))
            sent += await self._to_connector(
                tx, connector, PUSH_ORDER, fo_id, order_payload(record, channel), at,
                key=f"{PUSH_ORDER}:{fo_id}:{connector_destination(connector)}",
                not_before=not_before)
            await tx.save_link(PartnerLink(fo_id, connector, "fulfiller", updated_at=at))
            await tx.add_timeline(fo_id, "push_scheduled", at, {
                "connector": connector, "not_before": not_before})
        return sent

    async def acknowledge_order(self, tx: Transaction, order: PartnerOrder, fo_id: str,
                                at: str) -> int:
        """Tell the order's origin it was taken (its FO exists), once."""
        return await self._to_connector(tx, order.source, ACKNOWLEDGE_ORDER, fo_id, {
            "fulfillment_order_id": fo_id, "partner_order_id": order.external_id,
            "order_number": order.order_number}, at,
            key=f"{ACKNOWLEDGE_ORDER}:{fo_id}:{connector_destination(order.source)}")

    async def fulfillment_order_cancelled(self, tx: Transaction, fo_id: str, at: str,
                                          outcome: Outcome) -> int:
        """Stop a push not yet made; send the partner's cancel for one that was (or may be)."""
        if self._quiet or not any(c.new == "cancelled" and c.fo_id == fo_id
                                  for c in outcome.status_changes):
            return 0  # it was cancelled before: nothing new to say or send
        record = await tx.fulfillment_order_record(fo_id)
        assert record is not None
        sent = await self.event(tx, FO_CANCELLED, _fo_data(record), at, fo_id)
        for push in await tx.outbox_messages_of(fo_id, [PUSH_ORDER]):
            if push["status"] == "cancelled":
                continue
            never_reached = push["status"] in ("pending", "dead") and (
                push["attempts"] == 0 or push["error_kind"] == REJECTED)
            if push["status"] in ("pending", "dead"):
                await tx.cancel_outbox_message(push["id"], at)
            if never_reached:
                # If the dispatcher is sending it this moment, marking it sent will fail
                # and the dispatcher sends the cancel itself (see after_sent).
                await tx.add_timeline(fo_id, "push_cancelled", at,
                                      {"destination": push["destination"]})
            else:
                sent += await self._cancel_at_partner(tx, fo_id, push["destination"],
                                                      push["payload"], at)
        return sent

    async def _cancel_at_partner(self, tx: Transaction, fo_id: str, destination: str,
                                 payload: Mapping[str, Any], at: str) -> int:
        _, connector = split_destination(destination)
        return await self._to_connector(tx, connector, CANCEL_ORDER, fo_id, payload, at,
                                        key=f"{CANCEL_ORDER}:{fo_id}:{destination}")

    async def outcome(self, tx: Transaction, outcome: Outcome, at: str) -> int:
        """Events for what reconciling changed; invoices and fulfilment updates for new
        allocations, and their withdrawal where a voided shipment's fulfilment was pushed."""
        if self._quiet:
            return 0
        sent = 0
        shipments: dict[str | None, Shipment] = {}
        if outcome.recorded:
            known = set(outcome.shipments) >= set(outcome.recorded) and \
                set(outcome.shipment_fos) >= set(outcome.recorded)
            shipments = dict(outcome.shipments) if known else \
                {s.id: s for s in await tx.get_shipments(outcome.recorded)}
            matches = outcome.shipment_fos if known else \
                await tx.matches_of_shipments(outcome.recorded)
            for shipment_id in outcome.recorded:
                fo_ids = sorted(matches.get(shipment_id, []))
                first = fo_ids[0] if fo_ids else None
                shipment = shipments[shipment_id]
                data = _shipment_data(shipment, fo_ids)
                sent += await self.event(tx, SHIPMENT_RECORDED, data, at, first)
                match = outcome.matches.get(shipment_id)
                if shipment_id in outcome.unmatched and match is not None:
                    sent += await self.event(tx, SHIPMENT_UNMATCHED, UnmatchedData(
                        **data, reason=match.reason, candidates=list(match.candidates)), at)
                if shipment.status == "voided":
                    sent += await self._withdraw_fulfilment(tx, shipment_id, fo_ids, at)
        records: dict[str, dict[str, Any] | None] = {}

        async def record_of(fo_id: str) -> dict[str, Any] | None:
            """What the messages below need of an FO: its channel, flow and order number."""
            if fo_id not in records:
                fo = outcome.fos.get(fo_id)
                records[fo_id] = {"id": fo.id, "channel": fo.channel, "flow": fo.flow,
                                  "order_number": fo.order_number} if fo is not None \
                    else await tx.fulfillment_order_record(fo_id)
            return records[fo_id]

        for (shipment_id, fo_id), lines in outcome.newly_allocated.items():
            record = await record_of(fo_id)
            channel = self._channel(record)
            if channel is None or record is None:
                continue
            if channel.invoice_timing == "on_shipment_created" \
                    and record["flow"] != "invoice_first":
                sent += await self.event(tx, INVOICE_REQUESTED, InvoiceData(
                    fulfillment_order_id=fo_id, channel=channel.name,
                    order_number=record["order_number"], shipment_id=shipment_id,
                    lines=lines), at, fo_id, key=f"invoice:{fo_id}:{shipment_id}")
            if channel.push_fulfillment_updates:
                shipment = shipments.get(shipment_id) or (
                    await tx.get_shipments([shipment_id]))[0]
                reason = rejection(shipment)
                for link in await self._origins(tx, fo_id):
                    if reason is not None:
                        sent += await self._reject(tx, link, shipment, reason, at)
                        continue
                    sent += await self._to_connector(tx, link.connector, PUSH_FULFILLMENT, fo_id, {
                        "fulfillment_order_id": fo_id, "channel": channel.name,
                        "partner_order_id": link.partner_order_id,
                        "type": "shipment_allocated", "shipment_id": shipment_id,
                        "lines": lines, "shipment": _shipment_data(shipment, [fo_id])}, at,
                        key=f"{PUSH_FULFILLMENT}:{fo_id}:{shipment_id}:{link.connector}")
        for change in outcome.status_changes:
            sent += await self.event(tx, FO_STATUS_CHANGED, StatusChangedData(
                fulfillment_order_id=change.fo_id, old_status=change.old,
                new_status=change.new, lines=list(change.lines)), at, change.fo_id)
            channel = self._channel(await record_of(change.fo_id))
            if channel and channel.push_fulfillment_updates:
                for link in await self._origins(tx, change.fo_id):
                    sent += await self._to_connector(
                        tx, link.connector, PUSH_FULFILLMENT, change.fo_id, {
                            "fulfillment_order_id": change.fo_id, "channel": channel.name,
                            "partner_order_id": link.partner_order_id,
                            "type": "status_changed", "old_status": change.old,
                            "new_status": change.new, "lines": list(change.lines)}, at, key=None)
        return sent

    async def _reject(self, tx: Transaction, link: PartnerLink, shipment: Shipment,
                      reason: str, at: str) -> int:
        """A fulfilment not pushed: flagged on the link (the FO's view and the console show
        it), on the timeline, and as an event."""
        assert shipment.id is not None
        await self._note_on_link(tx, link.fo_id, link.connector, "origin", at,
                                 {"rejected": reason}, partner_order_id=link.partner_order_id,
                                 pushed={shipment.id: {"status": "rejected", "reason": reason,
                                                       "at": at}})
        await tx.add_timeline(link.fo_id, "fulfillment_rejected", at, {
            "connector": link.connector, "shipment_id": shipment.id, "reason": reason})
        return await self.event(tx, SHIPMENT_REJECTED, RejectedData(
            **_shipment_data(shipment, [link.fo_id]), connector=link.connector, reason=reason),
            at, link.fo_id, key=f"{SHIPMENT_REJECTED}:{shipment.id}:{link.fo_id}:{link.connector}")

    async def _origins(self, tx: Transaction, fo_id: str) -> list[PartnerLink]:
        return [link for link in await tx.links_of([fo_id]) if link.role == "origin"]

    async def _withdraw_fulfilment(self, tx: Transaction, shipment_id: str, fo_ids: list[str],
                                   at: str) -> int:
        """A voided shipment whose fulfilment went to an origin: cancel it there (the relabel
        that follows is a new shipment, and a new push)."""
        sent = 0
        for link in await tx.links_of(fo_ids):
            pushed = link.pushed.get(shipment_id)
            if link.role != "origin" or not pushed or pushed.get("status") != "pushed":
                continue
            sent += await self._to_connector(tx, link.connector, CANCEL_FULFILLMENT, link.fo_id, {
                "fulfillment_order_id": link.fo_id, "shipment_id": shipment_id,
                "partner_order_id": link.partner_order_id,
                "partner_fulfillment_id": pushed.get("partner_id")}, at,
                key=f"{CANCEL_FULFILLMENT}:{link.fo_id}:{shipment_id}:{link.connector}")
        return sent

    # what the dispatcher learned

    async def after_sent(self, tx: Transaction, message: OutboxMessage,
                         result: Mapping[str, Any], recorded: bool, at: str) -> int:
        """`recorded` is False when the message stopped being pending while it was sent."""
        _, connector = split_destination(message.destination)
        write, _, kind = message.kind.partition(":")
        if kind and write in RECORD_WRITES:
            await self._record_confirmed(tx, connector, kind, write, message, result, at)
            return 0
        if message.fo_id is None:
            return 0
        if message.kind == PUSH_ORDER:
            partner_id = result.get("partner_order_id")
            if partner_id is not None:
                await tx.add_fulfillment_order_ref(message.fo_id, "partner_order_id",
                                                   str(partner_id))
            await self._note_on_link(tx, message.fo_id, connector, "fulfiller", at, result,
                                     partner_order_id=partner_id)
            await tx.add_timeline(message.fo_id, "pushed", at, {
                "connector": connector, "partner_order_id": partner_id,
                **({} if recorded else {"after_cancel": True})})
            if not recorded:  # cancelled while in flight: the partner has it, so cancel it
                return await self._cancel_at_partner(tx, message.fo_id, message.destination,
                                                     message.payload, at)
            return await self.event(tx, ORDER_PUSHED, OrderPushedData(
                fulfillment_order_id=message.fo_id, connector=connector,
                order_number=message.payload.get("order_number"),
                partner_order_id=partner_id), at, message.fo_id)
        if message.kind == CANCEL_ORDER and recorded:
            await self._note_on_link(tx, message.fo_id, connector, "fulfiller", at, result)
            await tx.add_timeline(message.fo_id, "cancel_sent", at, {"connector": connector})
        shipment_id = message.payload.get("shipment_id")
        if message.kind in (PUSH_FULFILLMENT, CANCEL_FULFILLMENT) and shipment_id and recorded \
                and not result.get("skipped"):  # a connector's toggle let it go unsent
            status = "pushed" if message.kind == PUSH_FULFILLMENT else "cancelled"
            partner_id = result.get("partner_fulfillment_id",
                                    message.payload.get("partner_fulfillment_id"))
            await self._note_on_link(tx, message.fo_id, connector, "origin", at, result,
                                     pushed={shipment_id: {"partner_id": partner_id,
                                                           "status": status, "at": at}})
        return 0

    async def _note_on_link(self, tx: Transaction, fo_id: str, connector: str, role: str,
                            at: str, result: Mapping[str, Any],
                            partner_order_id: Any = None,
                            pushed: Mapping[str, Any] | None = None) -> None:
        """A push's result on its link, where it outlives the outbox's retention."""
        link = next((ln for ln in await tx.links_of([fo_id])
                     if ln.connector == connector and ln.role == role),
                    PartnerLink(fo_id, connector, role))
        await tx.save_link(replace(
            link, partner_order_id=None if partner_order_id is None else str(partner_order_id),
            pushed={**link.pushed, **(pushed or {})}, last_result=dict(result), updated_at=at))

    async def _record_confirmed(self, tx: Transaction, connector: str, kind: str, write: str,
                                message: OutboxMessage, result: Mapping[str, Any],
                                at: str) -> None:
        """The partner confirmed a write: the stored record becomes what it answered."""
        external_id = result.get("id", message.payload.get("id"))
        if external_id is None:
            return
        fields = {k: v for k, v in result.items() if k not in ("id", "updated_at", "archived")}
        await tx.save_partner_record(PartnerRecord(
            source=connector, kind=kind, external_id=str(external_id), fields=fields,
            updated_at=str(result.get("updated_at") or at),
            archived=bool(result.get("archived", write == "archive"))), at)

    async def after_failed(self, tx: Transaction, message: OutboxMessage, failure: Failure,
                           dead: bool, recorded: bool, at: str) -> int:
        if message.kind != PUSH_ORDER or not message.fo_id:
            return 0
        if not recorded:
            if failure.kind == REJECTED:
                return 0
            # Cancelled while in flight and the outcome is unknown: it may have landed.
            return await self._cancel_at_partner(tx, message.fo_id, message.destination,
                                                 message.payload, at)
        if not dead:
            return 0
        _, connector = split_destination(message.destination)
        await tx.add_timeline(message.fo_id, "push_failed", at,
                              {"connector": connector, "error": failure.text})
        await self._note_on_link(tx, message.fo_id, connector, "fulfiller", at,
                                 {"error": failure.text})
        return await self.event(tx, ORDER_PUSH_FAILED, OrderPushFailedData(
            fulfillment_order_id=message.fo_id, connector=connector,
            order_number=message.payload.get("order_number"), error=failure.text,
            attempts=message.attempts + 1), at, message.fo_id)
