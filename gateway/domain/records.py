"""Canonical records every connector produces and the reconciler consumes: plain frozen data.

Timestamps are UTC strings in one fixed format (see `utc_iso`), so they sort as text.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

# Each closed set of values declared once, as a type (the API's schemas are made from these)
# and as the tuple of its values.
ShipmentStatus = Literal["shipped", "delivered", "voided"]
RefKind = Literal["fulfillment_order_id", "order_key", "order_number", "partner_order_id"]
FoStatus = Literal["unfulfilled", "partially_fulfilled", "fulfilled", "cancelled"]
PartnerOrderStatus = Literal["open", "cancelled", "closed"]
LinkRole = Literal["origin", "fulfiller"]
# A link is open while its FO is; complete when the FO is fulfilled or cancelled; watching
# (for late corrections) until its watch time has passed.
LinkState = Literal["open", "complete", "watching"]
# Where an inbound shipment is, in the gateway's terms (the partner's own status beside it):
# planned (not sent yet), open (on its way or being received), closed (receiving finished),
# cancelled (will not arrive)
InboundStage = Literal["planned", "open", "closed", "cancelled"]
SHIPMENT_STATUSES: tuple[str, ...] = get_args(ShipmentStatus)
REF_KINDS: tuple[str, ...] = get_args(RefKind)
FO_STATUSES: tuple[str, ...] = get_args(FoStatus)
PARTNER_ORDER_STATUSES: tuple[str, ...] = get_args(PartnerOrderStatus)
LINK_ROLES: tuple[str, ...] = get_args(LinkRole)
LINK_STATES: tuple[str, ...] = get_args(LinkState)
INBOUND_STAGES: tuple[str, ...] = get_args(InboundStage)


def utc_iso(moment: datetime) -> str:
    """A UTC timestamp as fixed-width text: 2026-11-23T12:30:31.000000Z."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: say which time zone it is in")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return utc_iso(datetime.now(UTC))


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {text!r}")
    return moment.astimezone(UTC)


def delivery_hash(connector: str, delivery_key: str) -> int:
    """64 bits of a delivery's identity: a tenth of the memory of the strings."""
    digest = hashlib.blake2b(f"{connector}\x00{delivery_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def new_id(prefix: str) -> str:
    """Sortable-enough, unguessable ids: prefix, time in ms (hex), 8 random bytes."""
    ms = int(datetime.now(UTC).timestamp() * 1000)
    return f"{prefix}_{ms:012x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class OrderRef:
    kind: RefKind
    value: str


@dataclass(frozen=True)
class ShipmentLine:
    sku: str
    quantity: int
    partner_line_id: str | None = None


@dataclass(frozen=True)
class Shipment:
    source: str
    external_id: str
    order_refs: tuple[OrderRef, ...]
    lines: tuple[ShipmentLine, ...]
    status: str
    partner_updated_at: str
    shipped_at: str | None = None
    carrier: str | None = None
    service: str | None = None
    tracking_numbers: tuple[str, ...] = ()
    tracking_url: str | None = None
    id: str | None = None  # the gateway's id, once stored

    def __post_init__(self) -> None:
        if self.status not in SHIPMENT_STATUSES:
            raise ValueError(f"shipment status {self.status!r} is not one of {SHIPMENT_STATUSES}")
        for ref in self.order_refs:
            if ref.kind not in REF_KINDS:
                raise ValueError(f"order ref kind {ref.kind!r} is not one of {REF_KINDS}")


@dataclass(frozen=True)
class FulfillmentOrderLine:
    line_id: str
    sku: str
    requested: int


@dataclass(frozen=True)
class FulfillmentOrder:
    id: str
    seq: int  # creation order: "oldest FO first" when a merge is allocated
    lines: tuple[FulfillmentOrderLine, ...]
    status: str = "unfulfilled"
    cancelled: bool = False
    order_number: str | None = None
    channel: str | None = None
    refs: tuple[OrderRef, ...] = field(default=())
    flow: str = "api"  # api, invoice_first or partner


@dataclass(frozen=True)
class Allocation:
    shipment_id: str
    fo_id: str
    line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class PartnerOrderLine:
    sku: str
    quantity: int
    partner_line_id: str | None = None


@dataclass(frozen=True)
class PartnerOrder:
    """An order placed at a partner (a wholesale portal's approved order, a buyer's store
    order): it becomes an FO on the channel whose source_connector is `source`."""

    source: str
    external_id: str
    status: str
    lines: tuple[PartnerOrderLine, ...]
    partner_updated_at: str
    order_number: str | None = None
    ship_to: Mapping[str, Any] = field(default_factory=dict)
    customer_ref: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)  # the partner's fields, for display
    # Why the connector cannot turn this version into FO lines (a size with no SKU, say):
    # it is kept and listed as held, and no FO is made from it; `lines` are those it could.
    hold_reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in PARTNER_ORDER_STATUSES:
            raise ValueError(f"partner order status {self.status!r} is not one of"
                             f" {PARTNER_ORDER_STATUSES}")
        if not self.lines and self.status == "open" and self.hold_reason is None:
            raise ValueError(f"partner order {self.external_id}: an open order has no lines")

    def content(self) -> dict[str, Any]:
        """What an FO made from it fixes: compared to tell a change from a repeat."""
        return {"lines": [{"sku": ln.sku, "quantity": ln.quantity,
                           "partner_line_id": ln.partner_line_id} for ln in self.lines],
                "ship_to": dict(self.ship_to)}


@dataclass(frozen=True)
class PartnerRecord:
    """A partner's own entity the gateway keeps and shows (a company, a product, a
    warehouse location): stored generically by (source, kind, external_id)."""

    source: str
    kind: str
    external_id: str
    fields: Mapping[str, Any]
    updated_at: str
    archived: bool = False


@dataclass(frozen=True)
class PartnerLink:
    """One partner an FO touches. `origin`: where the order came from and where fulfilment
    updates go; `fulfiller`: where it was pushed and where its shipments come from."""

    fo_id: str
    connector: str
    role: LinkRole
    partner_order_id: str | None = None
    state: LinkState = "open"
    watch_until: str | None = None
    # per shipment id: what the partner calls the fulfilment pushed for it
    pushed: Mapping[str, Any] = field(default_factory=dict)
    last_result: Mapping[str, Any] | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class InboundItem:
    """One seller SKU of an inbound shipment: units shipped, received so far, per case."""

    sku: str
    shipped: int
    received: int
    case_quantity: int = 0


@dataclass(frozen=True)
class InboundShipment:
    """Stock sent to a fulfilment network (an inbound shipment), as one read of it saw
    it. A read may carry the header (`status`, the partner's word, and `stage`, the
    gateway's; name, destination) or the items or both: what it leaves None stays as the
    gateway has it."""

    source: str
    external_id: str
    observed_at: str
    status: str | None = None
    name: str | None = None
    destination: str | None = None
    items: tuple[InboundItem, ...] | None = None
    stage: InboundStage | None = None

    def __post_init__(self) -> None:
        if self.stage is not None and self.stage not in INBOUND_STAGES:
            raise ValueError(f"inbound stage {self.stage!r} is not one of {INBOUND_STAGES}")


def order_changes(before: PartnerOrder, after: PartnerOrder) -> dict[str, dict[str, Any]]:
    """What a later version of a partner order changed of what its FO fixed: per field,
    {before, after}; empty when the lines and the address are as they were."""
    old, new = before.content(), after.content()
    return {name: {"before": old[name], "after": new[name]}
            for name in old if old[name] != new[name]}


def fo_id_for(connector: str, partner_order_id: str) -> str:
    """The FO id of a partner order: the same order, re-polled, never makes a second FO."""
    digest = hashlib.sha256(f"{connector}\x00{partner_order_id}".encode()).hexdigest()[:24]
    return f"fo_{connector[:16]}_{digest}"
