"""Canonical records every connector produces and the reconciler consumes: plain frozen data.

Timestamps are UTC strings in one fixed format (see `utc_iso`), so they sort as text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

SHIPMENT_STATUSES = ("shipped", "delivered", "voided")
REF_KINDS = ("fulfillment_order_id", "order_key", "order_number", "partner_order_id")
FO_STATUSES = ("unfulfilled", "partially_fulfilled", "fulfilled", "cancelled")


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


def new_id(prefix: str) -> str:
    """Sortable-enough, unguessable ids: prefix, time in ms (hex), 8 random bytes."""
    ms = int(datetime.now(UTC).timestamp() * 1000)
    return f"{prefix}_{ms:012x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class OrderRef:
    kind: str
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


@dataclass(frozen=True)
class Allocation:
    shipment_id: str
    fo_id: str
    line_id: str
    sku: str
    quantity: int
