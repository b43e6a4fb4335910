"""Every state change the API, the worker and the CLI make, each written once: its transaction,
the ledger's rules, the partner links, the outbound messages, and the wake-up after commit.

No HTTP handler and no loop writes that sequence itself; they call a method here. Each change
is safe to run twice (a repeated partner order, a replayed event, a second cancel).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

import orjson

from gateway import inbound, ledger, logs
from gateway.config import Config
from gateway.connector import Connector, Record
from gateway.domain.records import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    InboundShipment,
    OrderRef,
    PartnerLink,
    PartnerOrder,
    PartnerRecord,
    Shipment,
    fo_id_for,
    new_id,
    now_iso,
    order_changes,
    parse_iso,
    utc_iso,
)
from gateway.errors import BadRequest, Conflict, NotFound, OperationUnsupported
from gateway.events import HeldData, SourceChangedData, UnclaimedData
from gateway.inventory import consolidate
from gateway.ledger import Outcome
from gateway.names import (
    ACKNOWLEDGE_ORDER,
    FO_SOURCE_CHANGED,
    PARTNER_ORDER_HELD,
    PARTNER_ORDER_UNCLAIMED,
    PUSH_INVENTORY,
    RECORD_WRITES,
    connector_destination,
    record_operation,
    subscriber_destination,
)
from gateway.outbound import Outbound
from storage import (
    DeadLetterFilter,
    NewFulfillmentOrder,
    NewOutboxMessage,
    Storage,
    Transaction,
)

log = logs.get("gateway.commands")
T = TypeVar("T")
DONE_STATUSES = ("fulfilled", "cancelled")
INVENTORY_LINES_PER_MESSAGE = 500  # a partner call of a size any partner takes


class Commands:
    def __init__(self, config: Config, storage: Storage, outbound: Outbound,
                 connectors: dict[str, Connector],
                 wake_dispatcher: Callable[[], None] = lambda: None,
                 wake_worker: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.storage = storage
        self.outbound = outbound
        self.connectors = connectors
        self.wake_dispatcher = wake_dispatcher
        self.wake_worker = wake_worker
        self.replays: dict[str, ReplayJob] = {}  # this process's, newest last

    async def run(self, change: Callable[[Transaction, str], Awaitable[tuple[T, int]]]) -> T:
        at = now_iso()
        result, enqueued = await self.storage.run(lambda tx: change(tx, at))
        if enqueued:
            self.wake_dispatcher()
        return result

    async def settle(self, tx: Transaction, outcome: Outcome, at: str) -> int:
        """What follows any change: link states from the FOs' new statuses, then the
        outbound messages for all it changed."""
        watch_until = utc_iso(parse_iso(at) + timedelta(days=self.config.links.watch_days))
        for change in outcome.status_changes:
            done, was_done = change.new in DONE_STATUSES, change.old in DONE_STATUSES
            if done == was_done:
                continue
            for link in await tx.links_of([change.fo_id]):
                await tx.save_link(replace(
                    link, state="watching" if done else "open",
                    watch_until=watch_until if done else None, updated_at=at))
        return await self.outbound.outcome(tx, outcome, at)

    def _report(self, outcome: Outcome) -> None:
        for change in outcome.status_changes:
            log.info("fulfillment_order.status_changed", fo_id=change.fo_id, old=change.old,
                     new=change.new)

    # fulfillment orders

    async def created(self, tx: Transaction, fo_id: str, at: str, outcome: Outcome,
                       origin: tuple[str, str] | None = None) -> int:
        record = await tx.fulfillment_order_record(fo_id)
        assert record is not None
        channel = self.config.channel(record["channel"])
        if origin is not None or (channel and channel.source_connector):
            connector, partner_order_id = origin or (channel.source_connector, None)
            await tx.save_link(PartnerLink(fo_id, connector, "origin",
                                           partner_order_id=partner_order_id, updated_at=at))
        return await self.outbound.fulfillment_order_created(tx, fo_id, at)

    async def create_fulfillment_order(self, new: NewFulfillmentOrder) -> bool:
        """False when an identical request made it before (Conflict when it differs)."""
        async def change(tx: Transaction, at: str) -> tuple[bool, int]:
            created, outcome = await ledger.create_fulfillment_order(tx, new)
            if not created:
                return False, 0
            self._report(outcome)
            return True, await self.created(tx, new.fo.id, new.created_at, outcome) \
                + await self.settle(tx, outcome, new.created_at)

        created = await self.run(change)
        if created:
            log.info("fulfillment_order.created", fo_id=new.fo.id, channel=new.fo.channel)
        return created

    async def _cancel(self, tx: Transaction, fo_id: str, at: str, outcome: Outcome) -> int:
        cancelled = await ledger.cancel_fulfillment_order(tx, fo_id, at)
        outcome.merge(cancelled)
        return await self.outbound.fulfillment_order_cancelled(tx, fo_id, at, cancelled)

    async def cancel_fulfillment_order(self, fo_id: str, by: str = "api") -> None:
        """`by`: who asked (the API, or a console operator), on the FO's timeline."""
        async def change(tx: Transaction, at: str) -> tuple[Outcome, int]:
            outcome = Outcome()
            sent = await self._cancel(tx, fo_id, at, outcome)
            if by != "api" and any(c.fo_id == fo_id and c.new == "cancelled"
                                   for c in outcome.status_changes):
                await tx.add_timeline(fo_id, "cancel_requested", at, {"by": by})  # a person
            return outcome, sent + await self.settle(tx, outcome, at)

        self._report(await self.run(change))

    # shipments

    async def match_unmatched(self, shipment_id: str, fo_ids: Sequence[str],
                              by: str = "api") -> None:
        """A person's match for a shipment in the unmatched queue (Conflict when it is
        matched already: undo that first)."""
        view = await self.storage.shipment_view(shipment_id)
        if view is None:
            raise NotFound(f"shipment {shipment_id} does not exist")
        if view.match_state != "unmatched":
            raise Conflict(f"shipment {shipment_id} is already matched to "
                           f"{', '.join(view.fulfillment_order_ids)}")
        await self.match_manually(shipment_id, fo_ids, by)

    async def match_manually(self, shipment_id: str, fo_ids: Sequence[str],
                             by: str = "api") -> None:
        async def change(tx: Transaction, at: str) -> tuple[Outcome, int]:
            outcome = await ledger.match_manually(tx, shipment_id, fo_ids, at, by)
            return outcome, await self.settle(tx, outcome, at)

        self._report(await self.run(change))

    async def unmatch(self, shipment_id: str, by: str = "api") -> None:
        async def change(tx: Transaction, at: str) -> tuple[Outcome, int]:
            outcome = await ledger.unmatch(tx, shipment_id, at, by)
            return outcome, await self.settle(tx, outcome, at)

        self._report(await self.run(change))

    # what the inbox brings

    async def apply_inbox(self, batch: Sequence[tuple[int, Sequence[Record]]]
                          ) -> list[Outcome]:
        """The records of several inbox events, each applied as its own change, all in one
        transaction with the events' "processed" marks."""
        outcomes = []

        async def change(tx: Transaction, at: str) -> tuple[list[Outcome], int]:
            sent = 0
            for _, records in batch:
                outcome = Outcome()
                await ledger.record_shipments(
                    tx, [r for r in records if isinstance(r, Shipment)], at, outcome)
                for record in records:
                    if isinstance(record, PartnerOrder):
                        sent += await self._partner_order(tx, record, at, outcome)
                    elif isinstance(record, PartnerRecord):
                        await self._partner_record(tx, record, at)
                    elif isinstance(record, InboundShipment):
                        sent += await inbound.record(tx, record, at, self.outbound)
                sent += await self.settle(tx, outcome, at)
                outcomes.append(outcome)
            await tx.mark_inbox_processed([event_id for event_id, _ in batch], at)
            return outcomes, sent

        return await self.run(change)

    async def _partner_order(self, tx: Transaction, order: PartnerOrder, at: str,
                             outcome: Outcome) -> int:
        """A partner order becomes an FO on the channel that takes its connector's orders;
        a later version cancels it, or is recorded as a change (the FO stays as it was)."""
        stored = await tx.get_partner_order(order.source, order.external_id)
        if stored is not None and (
                stored.order.partner_updated_at > order.partner_updated_at
                or (stored.order.partner_updated_at == order.partner_updated_at
                    and stored.fo_id is not None)):
            return 0  # an older version (never over a newer one), or the same one again
        channel = self.config.channel_for_source(order.source)
        if stored is None or stored.fo_id is None:
            if order.hold_reason is not None and order.status == "open":
                # Kept and listed as held; a later version the connector can map makes the FO.
                await tx.save_partner_order(order, None, at)
                if stored is None or stored.order.hold_reason != order.hold_reason:
                    log.warning("partner_order.held", connector=order.source,
                                partner_order_id=order.external_id, reason=order.hold_reason)
                    return await self.outbound.event(tx, PARTNER_ORDER_HELD, HeldData(
                        connector=order.source, partner_order_id=order.external_id,
                        order_number=order.order_number, reason=order.hold_reason), at)
                return 0
            if channel is None or order.status != "open":
                # Kept and listed, not dropped: a channel configured later takes its next
                # version. An order first seen cancelled or closed needs no FO.
                await tx.save_partner_order(order, None, at)
                if channel is None and stored is None:
                    log.warning("partner_order.unclaimed", connector=order.source,
                                partner_order_id=order.external_id)
                    return await self.outbound.event(tx, PARTNER_ORDER_UNCLAIMED, UnclaimedData(
                        connector=order.source, partner_order_id=order.external_id,
                        order_number=order.order_number), at,
                        key=f"unclaimed:{order.source}:{order.external_id}")
                return 0
            new = _fulfillment_order(order, channel.name, at)
            created, created_outcome = await ledger.create_fulfillment_order(tx, new)
            outcome.merge(created_outcome)
            await tx.save_partner_order(order, new.fo.id, at)
            if not created:
                return 0
            log.info("fulfillment_order.created", fo_id=new.fo.id, channel=channel.name,
                     connector=order.source, partner_order_id=order.external_id)
            sent = await self.created(tx, new.fo.id, at, outcome,
                                       origin=(order.source, order.external_id))
            connector = self.connectors.get(order.source)
            if connector is not None and ACKNOWLEDGE_ORDER in connector.declared_operations() \
                    and connector.refusal(ACKNOWLEDGE_ORDER) is None:
                sent += await self.outbound.acknowledge_order(tx, order, new.fo.id, at)
            return sent
        await tx.save_partner_order(order, stored.fo_id, at)
        sent = 0
        if order.status == "cancelled" and stored.order.status != "cancelled":
            await tx.add_timeline(stored.fo_id, "source_cancelled", at,
                                  {"connector": order.source,
                                   "partner_order_id": order.external_id})
            sent += await self._cancel(tx, stored.fo_id, at, outcome)
        changes = order_changes(stored.order, order)
        if order.hold_reason is not None and order.hold_reason != stored.order.hold_reason:
            changes["hold_reason"] = {"before": stored.order.hold_reason,
                                      "after": order.hold_reason}
        if changes:
            detail = {"connector": order.source, "partner_order_id": order.external_id,
                      "changes": changes}
            await tx.add_timeline(stored.fo_id, "source_changed", at, detail)
            sent += await self.outbound.event(
                tx, FO_SOURCE_CHANGED, SourceChangedData(fulfillment_order_id=stored.fo_id,
                                                         **detail), at, stored.fo_id)
        return sent

    async def _partner_record(self, tx: Transaction, record: PartnerRecord, at: str) -> None:
        stored = await tx.get_partner_record(record.source, record.kind, record.external_id)
        if stored is None or record.updated_at > stored.updated_at or (
                record.updated_at == stored.updated_at and record != stored):
            await tx.save_partner_record(record, at)

    # partner records written back

    async def write_partner_record(self, connector_name: str, kind: str, write: str,
                                   external_id: str | None, fields: dict[str, Any]) -> int:
        """Queue a create, update or archive of a partner record; the stored record changes
        when the partner confirms. Returns the outbox message's id."""
        connector = self.connectors.get(connector_name)
        if connector is None:
            raise NotFound(f"no enabled connector {connector_name!r}")
        operation = record_operation(write, kind)
        if operation in connector.unsupported:  # declared: answered before anything else
            raise OperationUnsupported(connector_name, operation, connector.unsupported[operation])
        record_kind = connector.record_kind(kind)
        if record_kind is None:
            kinds = ", ".join(k.name for k in connector.record_kinds) or "none"
            raise NotFound(f"connector {connector_name!r} keeps no {kind!r} records;"
                           f" its kinds: {kinds}")
        assert write in RECORD_WRITES
        reason = connector.refusal(operation) if write in record_kind.writes else \
            f"{kind} records are not written back to this partner"
        if reason is not None:
            raise OperationUnsupported(connector_name, operation, reason)
        if external_id is not None and await self.storage.partner_record(
                connector_name, kind, external_id) is None:
            raise NotFound(f"connector {connector_name!r} has no {kind} {external_id!r}")
        await connector.check_write(kind, write, external_id, fields)
        key = new_id("rec")

        async def change(tx: Transaction, at: str) -> tuple[int, int]:
            sent = await tx.enqueue_outbox([NewOutboxMessage(
                key=key, destination=connector_destination(connector_name), kind=operation,
                payload={"kind": kind, "write": write, "id": external_id, "fields": fields},
                not_before=at, sequence_key=f"{kind}:{external_id or key}")], at)
            message_id = await tx.outbox_message_id(key)
            assert message_id is not None
            return message_id, sent

        return await self.run(change)

    # inventory

    def inventory_connectors(self, name: str | None) -> list[Connector]:
        """The connector named, or every enabled one that takes inventory; OperationUnsupported
        (501) naming why when none will."""
        if name is not None:
            connector = self.connectors.get(name)
            if connector is None:
                raise NotFound(f"no enabled connector {name!r}")
            reason = connector.refusal(PUSH_INVENTORY)
            if reason is not None:
                raise OperationUnsupported(name, PUSH_INVENTORY, reason)
            return [connector]
        found = [c for c in self.connectors.values() if c.refusal(PUSH_INVENTORY) is None]
        if not found:
            why = [f"{c.name}: {c.refusal(PUSH_INVENTORY)}" for c in self.connectors.values()
                   if PUSH_INVENTORY in c.declared_operations()]
            raise OperationUnsupported("any", PUSH_INVENTORY,
                                       "no enabled connector takes inventory levels"
                                       + (f" ({'; '.join(why)})" if why else ""))
        return found

    async def push_inventory(self, name: str | None, levels: Sequence[dict[str, Any]]
                             ) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
        """Consolidate the levels, check them with each connector (what its partner does not
        know is refused before anything is queued, each named), then queue one push per
        connector. Returns the consolidated lines and (connector, outbox message id) pairs."""
        targets = self.inventory_connectors(name)
        lines = consolidate(levels)
        problems = []
        for connector in targets:
            problems += [{"field": "levels", "code": "unknown_to_partner",
                          "message": f"{connector.name}: {p}"}
                         for p in await connector.check_inventory(lines)]
        if problems:
            raise BadRequest(f"{len(problems)} problem(s): "
                             + "; ".join(p["message"] for p in problems), problems)
        chunks = [lines[i:i + INVENTORY_LINES_PER_MESSAGE]
                  for i in range(0, len(lines), INVENTORY_LINES_PER_MESSAGE)]
        messages = [(c.name, new_id("inv"), chunk) for c in targets for chunk in chunks]

        async def change(tx: Transaction, at: str) -> tuple[list[tuple[str, int]], int]:
            # One sequence per connector: a later push never lands before an earlier one.
            sent = await tx.enqueue_outbox([NewOutboxMessage(
                key=key, destination=connector_destination(name), kind=PUSH_INVENTORY,
                payload={"levels": chunk}, not_before=at, sequence_key=f"inventory:{name}")
                for name, key, chunk in messages], at)
            queued = []
            for name, key, _ in messages:
                message_id = await tx.outbox_message_id(key)
                assert message_id is not None
                queued.append((name, message_id))
            return queued, sent

        return lines, await self.run(change)

    # pauses

    async def pause_feed(self, connector_name: str, feed_name: str,
                         by: str | None) -> tuple[Connector, Any]:
        """Pause a feed (`by`: who) or resume it (None)."""
        connector = self.connectors.get(connector_name)
        feed = connector.feed(feed_name) if connector is not None else None
        if connector is None or feed is None:
            raise NotFound(f"no enabled connector {connector_name!r} with a feed {feed_name!r}")
        await self.storage.pause_feed(connector_name, feed_name, by, now_iso())
        log.info("feed.paused" if by else "feed.resumed", connector=connector_name,
                 feed=feed_name, by=by)
        return connector, feed

    def _destinations(self) -> list[str]:
        return [connector_destination(name) for name in self.connectors] + \
            [subscriber_destination(s.name) for s in self.config.subscribers]

    async def destinations(self) -> list[dict[str, Any]]:
        paused = await self.storage.paused_destinations()
        waiting = (await self.storage.outbox_stats())["oldest_pending_age_seconds"]
        return [{"destination": d, "paused_by": paused.get(d, {}).get("paused_by"),
                 "paused_at": paused.get(d, {}).get("paused_at"),
                 "oldest_pending_age_seconds": waiting.get(d)} for d in self._destinations()]

    async def pause_destination(self, destination: str, by: str | None) -> None:
        """Send nothing to a destination (`by`: who) until resumed (None)."""
        if destination not in self._destinations():
            raise NotFound(f"no destination {destination!r}; the destinations: "
                           + ", ".join(self._destinations()))
        await self.storage.pause_destination(destination, by, now_iso())
        log.info("destination.paused" if by else "destination.resumed",
                 destination=destination, by=by)
        if by is None:
            self.wake_dispatcher()

    # dead letters

    async def replay_dead_letter(self, dead_letter_id: str) -> bool:
        replayed = await self.storage.replay_dead_letter(dead_letter_id, now_iso())
        if replayed:
            self.wake_worker()
            self.wake_dispatcher()
        return replayed

    async def discard_dead_letter(self, dead_letter_id: str, reason: str | None = None,
                                  by: str = "api") -> bool:
        discarded = await self.storage.discard_dead_letter(dead_letter_id, now_iso(), reason)
        if discarded:
            log.info("dead_letter.discarded", dead_letter=dead_letter_id, reason=reason, by=by)
        return discarded

    async def matching_dead_letters(self, where: DeadLetterFilter) -> list[str]:
        """The ids of every dead letter the filter matches, now."""
        ids, cursor = [], None
        while True:
            page = await self.storage.list_dead_letters(cursor, 500, where)
            ids += [letter.id for letter in page.items]
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor

    def replay_matching(self, where: DeadLetterFilter, by: str = "api") -> ReplayJob:
        """Replay every dead letter the filter matches, in the background: the job's
        progress and, when done, what was replayed and what was gone by then."""
        job = ReplayJob(id=new_id("replay"), where=where, by=by)
        self.replays[job.id] = job
        job.task = asyncio.create_task(self._replay(job))
        while len(self.replays) > 100:  # the newest hundred jobs are kept to look at
            oldest = next(iter(self.replays))
            if not self.replays[oldest].finished:
                break
            del self.replays[oldest]
        return job

    async def _replay(self, job: ReplayJob) -> None:
        try:
            ids = await self.matching_dead_letters(job.where)
            job.matched = len(ids)
            for dead_id in ids:
                if await self.replay_dead_letter(dead_id):
                    job.replayed += 1
                else:
                    job.gone.append(dead_id)  # replayed or discarded meanwhile
            log.info("dead_letters.replayed", job=job.id, matched=job.matched,
                     replayed=job.replayed, gone=len(job.gone), by=job.by)
        except Exception as exc:  # the job reports it; the process goes on
            job.error = f"{type(exc).__name__}: {exc}"
            log.error("dead_letters.replay_failed", job=job.id, error=job.error)
        finally:
            job.finished = now_iso()


@dataclass
class ReplayJob:
    """Dead letters replayed in the background (`replay_matching`)."""

    id: str
    where: DeadLetterFilter
    by: str
    started: str = field(default_factory=now_iso)
    matched: int | None = None  # None until they are counted
    replayed: int = 0
    gone: list[str] = field(default_factory=list)
    error: str | None = None
    finished: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "state": "finished" if self.finished else "running",
                "filter": {k: v for k, v in vars(self.where).items() if v is not None},
                "by": self.by, "started_at": self.started, "finished_at": self.finished,
                "matched": self.matched, "replayed": self.replayed, "gone": list(self.gone),
                "error": self.error}


def _fulfillment_order(order: PartnerOrder, channel: str, at: str) -> NewFulfillmentOrder:
    """The FO a partner order becomes: its id follows from the connector and the partner's
    order id, so a re-polled order never makes a second FO."""
    lines, seen = [], set()
    for i, line in enumerate(order.lines):
        line_id = line.partner_line_id or str(i + 1)
        if line_id in seen:
            line_id = f"{line_id}-{i + 1}"
        seen.add(line_id)
        lines.append(FulfillmentOrderLine(line_id, line.sku, line.quantity))
    refs = [OrderRef("partner_order_id", order.external_id)]
    if order.order_number:
        refs.append(OrderRef("order_number", order.order_number))
    content = {"connector": order.source, "id": order.external_id, **order.content()}
    return NewFulfillmentOrder(
        fo=FulfillmentOrder(id=fo_id_for(order.source, order.external_id), seq=0,
                            lines=tuple(lines), order_number=order.order_number,
                            channel=channel, refs=tuple(refs)),
        request_hash=hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
        .hexdigest(), ship_to=dict(order.ship_to), custom_fields={}, created_at=at,
        flow="partner")
