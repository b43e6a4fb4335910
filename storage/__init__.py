"""The storage interface the gateway talks to, and the records that cross it.

`Storage` is what gateway/ may call; `storage.sqlite.SqliteStorage` fulfils it. A PostgreSQL
sibling implements the same two protocols and nothing in gateway/ changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, TypeVar

import orjson

from gateway.domain.reconcile import Match
from gateway.domain.records import (
    Allocation,
    FulfillmentOrder,
    PartnerLink,
    PartnerOrder,
    PartnerRecord,
    Shipment,
)
from storage.models import (
    DeadLetter,
    FulfillmentOrderSummary,
    FulfillmentOrderView,
    InboundReceipt,
    InboundShipmentView,
    Movement,
    ShipmentView,
    TransferOrder,
)

__all__ = ["DeadLetter", "FulfillmentOrderSummary", "FulfillmentOrderView",
           "InboundShipmentView", "ShipmentView"]
T = TypeVar("T")
INBOX, OUTBOX = "inbox", "outbox"  # the queues claims are taken from


class StorageInUse(Exception):
    """Another process serves this storage, and the backend cannot be shared."""


class StorageUnavailable(Exception):
    """The database cannot be opened, or read and written: the message is one line naming the
    config key, the path or server, and what to do."""


class InvalidCursor(ValueError):
    """A list was asked to continue from a cursor it did not hand out."""


@dataclass(frozen=True)
class NewInboxEvent:
    connector: str
    delivery_key: str
    kind: str  # "webhook" or "poll"
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InboxEvent:
    id: int
    connector: str
    delivery_key: str
    kind: str
    body: bytes
    headers: Mapping[str, str]
    attempts: int
    received_at: str


@dataclass(frozen=True)
class FeedState:
    """Where a connector's feed stands: its cursor, its last run, and who runs it now."""

    connector: str
    feed: str
    cursor: str | None = None
    last_poll_at: str | None = None
    last_result: Mapping[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    last_error_at: str | None = None
    last_started_at: str | None = None
    owner: str | None = None
    lease_until: str | None = None
    paused_by: str | None = None  # an operator paused it: not polled until resumed
    paused_at: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters: by where they were going or came from (a connector's or a
    subscriber's name), kind, a piece of their error text (any case), failed since when,
    and whether inbox or outbox ones."""

    name: str | None = None
    kind: str | None = None
    error: str | None = None
    since: str | None = None
    source: str | None = None  # "inbox" or "outbox"

    def sql(self, name_column: str, failed_column: str, outbox: bool = False
            ) -> tuple[str, list[Any]]:
        """" AND ..." conditions for one of the two tables, and their parameters."""
        found, params = [], []
        if self.name:
            if outbox:
                found.append(f"{name_column} IN (?, ?)")
                params += [f"connector:{self.name}", f"subscriber:{self.name}"]
            else:
                found.append(f"{name_column} = ?")
                params.append(self.name)
        if self.kind:
            found.append("kind = ?")
            params.append(self.kind)
        if self.error:
            escaped = self.error.lower().replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_")
            found.append("LOWER(last_error) LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        if self.since:
            found.append(f"{failed_column} >= ?")
            params.append(self.since)
        return "".join(f" AND {c}" for c in found), params


@dataclass(frozen=True)
class StoredPartnerOrder:
    """The latest version of a partner order, and the FO made from it (None: unclaimed)."""

    order: PartnerOrder
    fo_id: str | None
    recorded_at: str


@dataclass(frozen=True)
class NewFulfillmentOrder:
    fo: FulfillmentOrder
    request_hash: str
    ship_to: Mapping[str, Any]
    custom_fields: Mapping[str, Any]
    created_at: str
    flow: str = "api"  # or "invoice_first"
    invoice_id: str | None = None


@dataclass(frozen=True)
class NewOutboxMessage:
    key: str  # enqueueing the same key twice stores one message
    destination: str  # "connector:<name>" or "subscriber:<name>"
    kind: str
    payload: Mapping[str, Any]
    not_before: str
    fo_id: str | None = None
    sequence_key: str | None = None  # messages to one destination sharing it go in order


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    key: str
    destination: str
    kind: str
    payload_json: bytes  # as stored: an event is sent as it is, without parsing it
    fo_id: str | None
    attempts: int
    created_at: str

    @cached_property
    def payload(self) -> Mapping[str, Any]:
        return orjson.loads(self.payload_json)


class Transaction(Protocol):
    """One atomic unit of work: everything done through it commits together or not at all."""

    async def create_fulfillment_order(self, new: NewFulfillmentOrder) -> None: ...
    async def fulfillment_order_request_hash(self, fo_id: str) -> str | None: ...
    async def get_fulfillment_orders(self, fo_ids: Iterable[str]) -> list[FulfillmentOrder]: ...
    async def existing_fulfillment_order_ids(self, fo_ids: Iterable[str]) -> set[str]: ...
    async def fulfillment_orders_by_ref(
        self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[str]]: ...
    async def cancel_fulfillment_order(self, fo_id: str, at: str) -> None: ...
    # Held until the transaction ends: another process reconciling the same FOs waits, then
    # sees this one's result (a single-writer backend holds everything already).
    async def lock_fulfillment_orders(self, fo_ids: Iterable[str]) -> None: ...

    async def get_shipment(self, source: str, external_id: str) -> Shipment | None: ...
    async def get_shipments(self, shipment_ids: Iterable[str]) -> list[Shipment]: ...
    # `new`: the caller found no stored version, so the shipment has no lines, references,
    # tracking numbers or matches to replace (six statements fewer per new shipment).
    async def save_shipment(self, shipment: Shipment, at: str, new: bool = False) -> str: ...
    async def set_match(self, shipment_id: str, match: Match, at: str,
                        new: bool = False) -> None: ...
    async def get_match_rule(self, shipment_id: str) -> str | None: ...
    async def matches_of_shipments(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]: ...
    async def shipments_of_fulfillment_orders(self, fo_ids: Iterable[str]) -> set[str]: ...
    async def unmatched_shipments_referencing(
        self, refs: Iterable[tuple[str, str]], prefixes: Iterable[tuple[str, str]]
    ) -> list[str]: ...
    async def replace_allocations(self, fo_ids: Iterable[str], shipment_ids: Iterable[str],
                                  allocations: Sequence[Allocation],
                                  overshipped: Mapping[str, Mapping[str, int]]
                                  ) -> set[tuple[str, str]]: ...  # (shipment, FO) before
    async def set_fulfillment_order_status(self, fo_id: str, old: str, new: str, at: str,
                                           detail: Mapping[str, Any]) -> None: ...
    async def add_timeline(self, fo_id: str, kind: str, at: str,
                           detail: Mapping[str, Any]) -> None: ...
    async def mark_inbox_processed(self, event_ids: Sequence[int], at: str) -> None: ...
    async def fulfillment_order_record(self, fo_id: str) -> dict[str, Any] | None: ...
    async def add_fulfillment_order_ref(self, fo_id: str, kind: str, value: str) -> None: ...

    # partner orders, partner records and the links between FOs and partners
    async def get_partner_order(self, connector: str, external_id: str
                                ) -> StoredPartnerOrder | None: ...
    async def save_partner_order(self, order: PartnerOrder, fo_id: str | None,
                                 at: str) -> None: ...
    async def get_partner_record(self, connector: str, kind: str,
                                 external_id: str) -> PartnerRecord | None: ...
    async def save_partner_record(self, record: PartnerRecord, at: str) -> None: ...
    async def get_inbound_shipment(self, connector: str,
                                   external_id: str) -> InboundShipmentView | None: ...
    async def save_inbound_shipment(self, shipment: InboundShipmentView) -> None: ...
    # stock: read an inbound shipment (above: held against other writers until the end of
    # the transaction) before its transfer order or its receipts
    async def get_transfer_order(self, transfer_order_id: str) -> TransferOrder | None: ...
    async def transfer_order_of(self, connector: str,
                                inbound_shipment_id: str) -> TransferOrder | None: ...
    async def save_transfer_order(self, order: TransferOrder) -> None: ...
    async def receipts_of(self, connector: str, inbound_shipment_id: str
                          ) -> list[InboundReceipt]: ...
    async def save_receipts(self, receipts: Sequence[InboundReceipt]) -> None: ...
    async def move_inventory(self, movements: Iterable[Movement]) -> None: ...
    async def links_of(self, fo_ids: Iterable[str]) -> list[PartnerLink]: ...
    # Insert or update by (fo_id, connector, role); a None partner_order_id keeps the stored.
    async def save_link(self, link: PartnerLink) -> None: ...

    # the outbox: written with the change that causes it
    async def enqueue_outbox(self, messages: Sequence[NewOutboxMessage], at: str) -> int: ...
    async def outbox_message_id(self, key: str) -> int | None: ...
    async def outbox_messages_of(self, fo_id: str, kinds: Collection[str]
                                 ) -> list[dict[str, Any]]: ...
    # Each changes only a still-pending message (cancel: or a dead one) and says whether it
    # did, so an outcome that arrives after a cancel (or twice) is seen as such.
    async def mark_outbox_sent(self, message_id: int, at: str,
                               result: Mapping[str, Any]) -> bool: ...
    async def mark_outbox_events_sent(self, message_ids: Sequence[int], at: str) -> set[int]: ...
    async def hasten_outbox_retries(self, destination: str, at: str) -> int: ...
    async def cancel_outbox_message(self, message_id: int, at: str) -> bool: ...
    async def retry_outbox_message(self, message_id: int, attempts: int, not_before: str,
                                   error: str, at: str, error_kind: str = "error") -> bool: ...
    async def dead_letter_outbox_message(self, message_id: int, attempts: int, error: str,
                                         at: str, error_kind: str = "error") -> bool: ...


class Storage(Protocol):
    # The owner sets this; while it returns True (a burst of writes), maintenance waits.
    busy: Callable[[], bool]
    # The owner sets this; a backend shared by several processes calls it (INBOX or OUTBOX)
    # when a process committed new work there, so idle claim loops wake without polling.
    on_work: Callable[[str], None]

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self) -> int: ...
    async def schema_version(self) -> int: ...
    async def pending_migrations(self) -> int: ...
    # None when the database answers a read and takes a write (a cheap probe: `/readyz`);
    # otherwise why not, in a line.
    async def probe(self) -> str | None: ...
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...
    # One atomic unit of work: `change` gets the transaction and may await only its methods
    # (a backend may run the whole change in one trip to the database).
    async def run(self, change: Callable[[Transaction], Awaitable[T]]) -> T: ...

    # A serving process joins before it takes webhooks or claims work: a backend that cannot
    # be shared (one SQLite file) refuses a second with StorageInUse.
    async def join(self, owner: str) -> None: ...
    # intake: webhook deliveries stored durably in one commit; for each, was it new? (a
    # delivery stored before, by this process or another, is not stored again)
    async def store_webhooks(self, events: Sequence[NewInboxEvent]) -> list[bool]: ...
    # Feed runs. A run is claimed by one owner with a lease (another owner's unexpired lease,
    # or, when `started_before` is given, a run started since then, makes the claim None);
    # the owner extends it while it polls; its records and the new cursor are committed
    # together, the cursor only while the lease is still the owner's.
    async def claim_feed_run(self, connector: str, feed: str, owner: str, now: str,
                             lease_until: str, started_before: str | None = None
                             ) -> FeedState | None: ...
    async def extend_feed_lease(self, connector: str, feed: str, owner: str,
                                lease_until: str) -> bool: ...
    async def commit_poll(self, connector: str, feed: str, owner: str,
                          events: Sequence[NewInboxEvent], cursor: str,
                          result: Mapping[str, Any], at: str) -> int: ...
    async def record_poll_error(self, connector: str, feed: str, owner: str, error: str,
                                at: str) -> None: ...
    async def feed_states(self, connector: str) -> list[FeedState]: ...
    # an operator's pauses (`by` None resumes): a paused feed is not polled, nothing is
    # sent to a paused destination (its messages wait, in order)
    async def pause_feed(self, connector: str, feed: str, by: str | None, at: str) -> None: ...
    async def pause_destination(self, destination: str, by: str | None, at: str) -> None: ...
    async def paused_destinations(self) -> dict[str, dict[str, str]]: ...

    # Claims. Inbox events and outbox messages are claimed by an owner with a lease (in
    # seconds): what another owner holds under an unexpired lease is never handed out, an
    # expired lease is claimed again by anyone (a dead process's work is taken over). The
    # owner extends the leases of what it still holds (only its own: the ids it gets back)
    # and releases what it has recorded the outcome of.
    async def claim_inbox_events(self, owner: str, limit: int,
                                 lease_seconds: float) -> list[InboxEvent]: ...
    async def claim_outbox_messages(self, owner: str, limit: int,
                                    lease_seconds: float) -> list[OutboxMessage]: ...
    async def extend_claims(self, owner: str, queue: str, ids: Collection[int],
                            lease_seconds: float) -> set[int]: ...
    async def release_claims(self, owner: str, queue: str, ids: Collection[int]) -> None: ...

    # the inbox worker
    async def pending_inbox_events(self, limit: int, now: str,
                                   skip: Collection[int] = ()) -> list[InboxEvent]: ...
    # These three change only a still-pending event (retry: only at the attempt it was
    # claimed at), so a late or repeated outcome never overwrites a newer one.
    async def retry_inbox_event(self, event_id: int, attempts: int, next_attempt_at: str,
                                error: str) -> None: ...
    async def dead_letter_inbox_event(self, event_id: int, attempts: int, error: str,
                                      at: str) -> None: ...
    async def next_inbox_due(self) -> str | None: ...
    async def inbox_stats(self) -> dict[str, Any]: ...
    # Deletes processed events received before `before`; a delivery purged is new again.
    async def purge_processed_inbox(self, before: str, batch: int = 5000) -> int: ...

    # the outbox dispatcher: the first due pending message of each sequence
    async def due_outbox_messages(self, limit: int, now: str,
                                  skip: Collection[int] = ()) -> list[OutboxMessage]: ...
    async def next_outbox_due(self) -> str | None: ...
    async def outbox_stats(self) -> dict[str, Any]: ...
    async def purge_finished_outbox(self, before: str, batch: int = 5000) -> int: ...

    # A partner's request budget, shared by every process: up to `want` of `limit` requests
    # are reserved (reservations count over `window_seconds`); 0 and how long to wait when
    # none is left or the budget is paused. `pause_rate`: a 429 pauses every process.
    async def reserve_rate(self, key: str, want: int, limit: int,
                           window_seconds: float) -> tuple[int, float]: ...
    async def pause_rate(self, key: str, seconds: float) -> None: ...

    # links a feed still has to watch: open ones, and watching ones until their time
    async def links_to_watch(self, connector: str, role: str, now: str,
                             after_fo_id: str | None, limit: int) -> list[PartnerLink]: ...
    async def finish_watching_links(self, now: str) -> int: ...

    # reads for the API
    async def partner_record(self, connector: str, kind: str,
                             external_id: str) -> PartnerRecord | None: ...
    # items: PartnerRecord, oldest recorded first
    async def list_partner_records(self, connector: str, kind: str, updated_since: str | None,
                                   cursor: str | None, limit: int) -> Page: ...
    # one by its partner id (the first connector's, unless one is named)
    async def inbound_shipment(self, external_id: str, connector: str | None = None
                               ) -> InboundShipmentView | None: ...
    # items: InboundShipmentView, oldest change first
    async def list_inbound_shipments(self, connector: str | None, statuses: Sequence[str],
                                     updated_since: str | None, cursor: str | None,
                                     limit: int) -> Page: ...
    async def transfer_order(self, transfer_order_id: str) -> TransferOrder | None: ...
    async def transfer_order_for(self, connector: str,
                                 inbound_shipment_id: str) -> TransferOrder | None: ...
    async def inbound_receipts(self, connector: str, inbound_shipment_id: str
                               ) -> list[InboundReceipt]: ...
    # items: TransferOrder, oldest change first
    async def list_transfer_orders(self, connector: str | None, statuses: Sequence[str],
                                   cursor: str | None, limit: int) -> Page: ...
    # items: InboundReceipt, oldest first
    async def list_inbound_receipts(self, connector: str | None, states: Sequence[str],
                                    cursor: str | None, limit: int) -> Page: ...
    # items: StockLevel, by location and SKU
    async def inventory_levels(self, location: str | None, sku: str | None,
                               cursor: str | None, limit: int) -> Page: ...
    # items: Movement, oldest first
    async def inventory_movements(self, location: str | None, sku: str | None,
                                  cursor: str | None, limit: int) -> Page: ...
    # items: StoredPartnerOrder, oldest first
    async def list_partner_orders(self, connector: str | None, unclaimed: bool, held: bool,
                                  cursor: str | None, limit: int) -> Page: ...
    async def fulfillment_order_view(self, fo_id: str) -> FulfillmentOrderView | None: ...
    # items: FulfillmentOrderSummary, oldest change first
    async def list_fulfillment_orders(self, status: str | None, updated_since: str | None,
                                      cursor: str | None, limit: int) -> Page: ...
    async def shipment_view(self, shipment_id: str) -> ShipmentView | None: ...
    # items: ShipmentView
    async def list_shipments(self, fo_id: str | None, cursor: str | None, limit: int) -> Page: ...
    async def list_unmatched(self, cursor: str | None, limit: int) -> Page: ...
    # items: DeadLetter, of both kinds, ids "inbox-N" and "outbox-N".
    async def list_dead_letters(self, cursor: str | None, limit: int,
                                where: DeadLetterFilter | None = None) -> Page: ...
    async def dead_letter(self, dead_letter_id: str) -> dict[str, Any] | None: ...
    # the console's search: what an id names (order refs, shipments, tracking numbers,
    # outbox-N / inbox-N), each hit {kind, label, fo_id | shipment_id | dead_letter}
    async def search(self, text: str, limit: int,
                     connectors: Sequence[str] = ()) -> list[dict[str, Any]]: ...
    async def recent_status_changes(self, limit: int) -> list[dict[str, Any]]: ...
    async def count_unmatched(self, cap: int) -> int: ...
    async def replay_dead_letter(self, dead_letter_id: str, at: str) -> bool: ...
    # A dead letter a person decided not to retry: no longer listed, never replayed.
    async def discard_dead_letter(self, dead_letter_id: str, at: str,
                                  reason: str | None = None) -> bool: ...


BACKENDS = ("sqlite", "postgresql")


def open_backend(backend: str, path: str = "", dsn: str = "", pool_size: int = 10,
                 dsn_source: str = "the DSN") -> Storage:
    """The storage a config names: a SQLite file (`path`) or a PostgreSQL database (`dsn`,
    which came from `dsn_source`: what an error tells the operator to check)."""
    if backend == "sqlite":
        from storage.sqlite import SqliteStorage

        return SqliteStorage(path)
    if backend == "postgresql":
        from storage.postgres import PostgresStorage

        return PostgresStorage(dsn, pool_size, dsn_source)
    raise ValueError(f"unknown storage backend {backend!r}; known: {', '.join(BACKENDS)}")
