"""The reconciliation rules (DESIGN.md rules 1-6) as pure functions over plain data.

No I/O here: the worker loads the records a change touches, calls these, and stores the result.
Everything is a function of the latest shipment versions, so replaying any event is harmless.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.domain.records import Allocation, FulfillmentOrder, OrderRef, Shipment

ID_KINDS = ("fulfillment_order_id", "order_key")
REFERENCE_KINDS = ("order_number", "partner_order_id")
_SPLIT_SUFFIX = re.compile(r"(.+?)-\d{1,3}")
_STATUS_RANK = {"shipped": 0, "delivered": 1, "voided": 2}


@dataclass(frozen=True)
class Match:
    """Which FOs a shipment belongs to; empty fo_ids means it waits in the unmatched queue."""

    fo_ids: tuple[str, ...]
    rule: str | None = None  # fulfillment_order_id | reference | split_suffix | manual
    reason: str | None = None
    candidates: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return bool(self.fo_ids)


def strip_split_suffix(value: str) -> str | None:
    """`1001-2` -> `1001`; None when there is no split suffix to strip."""
    m = _SPLIT_SUFFIX.fullmatch(value)
    return m.group(1) if m else None


def lookup_keys(refs: Iterable[OrderRef]) -> tuple[list[str], list[tuple[str, str]]]:
    """What the caller must look up to match: candidate FO ids, and (kind, value) references."""
    ids = [r.value for r in refs if r.kind in ID_KINDS]
    keys = []
    for r in refs:
        if r.kind in REFERENCE_KINDS:
            keys.append((r.kind, r.value))
            stripped = strip_split_suffix(r.value)
            if stripped:
                keys.append((r.kind, stripped))
    return ids, keys


def _by_reference(pairs: Sequence[tuple[str, str]],
                  fos_by_ref: Mapping[tuple[str, str], Sequence[str]]) -> tuple[set[str], set[str]]:
    """(matched FO ids, ambiguous candidates) for references that must each name one FO."""
    found: set[str] = set()
    ambiguous: set[str] = set()
    for pair in pairs:
        fo_ids = set(fos_by_ref.get(pair, ()))
        if len(fo_ids) > 1:
            ambiguous |= fo_ids
        else:
            found |= fo_ids
    return found, ambiguous


def match_shipment(refs: Sequence[OrderRef], known_fo_ids: Collection[str],
                   fos_by_ref: Mapping[tuple[str, str], Sequence[str]]) -> Match:
    """Rule 2: FO id as order key, then order number / partner order id, then split suffix."""
    by_id = sorted({r.value for r in refs if r.kind in ID_KINDS and r.value in known_fo_ids})
    if by_id:
        return Match(tuple(by_id), rule="fulfillment_order_id")

    direct = [(r.kind, r.value) for r in refs if r.kind in REFERENCE_KINDS]
    found, ambiguous = _by_reference(direct, fos_by_ref)
    if ambiguous:
        return Match((), reason="ambiguous_reference", candidates=tuple(sorted(ambiguous | found)))
    if found:
        return Match(tuple(sorted(found)), rule="reference")

    stripped = [(kind, s) for kind, value in direct if (s := strip_split_suffix(value))]
    found, ambiguous = _by_reference(stripped, fos_by_ref)
    if ambiguous:
        return Match((), reason="ambiguous_split_reference",
                     candidates=tuple(sorted(ambiguous | found)))
    if found:
        return Match(tuple(sorted(found)), rule="split_suffix")

    if not refs:
        return Match((), reason="no_reference")
    return Match((), reason="no_fulfillment_order_matches")


def _content_key(s: Shipment) -> tuple:
    return (s.status, tuple(sorted((ln.sku, ln.quantity, ln.partner_line_id or "") for ln in s.lines)),
            tuple(sorted((r.kind, r.value) for r in s.order_refs)), s.carrier or "",
            s.service or "", tuple(s.tracking_numbers), s.shipped_at or "")


def supersedes(new: Shipment, old: Shipment | None) -> bool:
    """Rule 4: newer `partner_updated_at` wins, never older over newer.

    Equal timestamps with different content are settled by a fixed total order (void first),
    so any arrival order of the same versions ends in the same stored version.
    """
    if old is None:
        return True
    if new.partner_updated_at != old.partner_updated_at:
        return new.partner_updated_at > old.partner_updated_at
    new_key, old_key = _content_key(new), _content_key(old)
    if new_key == old_key:
        return False
    return (_STATUS_RANK[new.status], new_key) > (_STATUS_RANK[old.status], old_key)


def _shipment_order(s: Shipment) -> tuple:
    return (s.shipped_at or s.partner_updated_at, s.source, s.external_id)


def allocate(fulfillment_orders: Sequence[FulfillmentOrder],
             shipments: Sequence[tuple[Shipment, Sequence[str]]]
             ) -> tuple[list[Allocation], dict[str, dict[str, int]]]:
    """Rules 1 and 3 over one connected set of FOs and the shipments matched to them.

    Each shipment (earliest first) fills its FOs SKU by SKU, oldest FO first, line by line, up to
    each line's remaining quantity. What is left is that shipment's `overshipped`, by SKU.
    Voided shipments allocate nothing.
    """
    fos = {fo.id: fo for fo in fulfillment_orders}
    remaining = {(fo.id, ln.line_id): ln.requested for fo in fulfillment_orders for ln in fo.lines}
    allocations: list[Allocation] = []
    overshipped: dict[str, dict[str, int]] = {}
    for shipment, fo_ids in sorted(shipments, key=lambda pair: _shipment_order(pair[0])):
        if shipment.status == "voided":
            continue
        targets = sorted((fos[i] for i in set(fo_ids) if i in fos), key=lambda fo: (fo.seq, fo.id))
        per_sku: dict[str, int] = defaultdict(int)
        for line in shipment.lines:
            if line.quantity > 0:
                per_sku[line.sku] += line.quantity
        for sku in sorted(per_sku):
            left = per_sku[sku]
            for fo in targets:
                for fo_line in fo.lines:
                    if left == 0:
                        break
                    if fo_line.sku != sku:
                        continue
                    key = (fo.id, fo_line.line_id)
                    take = min(left, remaining[key])
                    if take:
                        remaining[key] -= take
                        left -= take
                        allocations.append(Allocation(shipment.id or shipment.external_id, fo.id,
                                                      fo_line.line_id, sku, take))
            if left:
                overshipped.setdefault(shipment.id or shipment.external_id, {})[sku] = left
    return allocations, overshipped


def fulfilled_by_line(fo: FulfillmentOrder, allocations: Iterable[Allocation]) -> dict[str, int]:
    done = {ln.line_id: 0 for ln in fo.lines}
    for a in allocations:
        if a.fo_id == fo.id and a.line_id in done:
            done[a.line_id] += a.quantity
    return done


def derive_status(fo: FulfillmentOrder, allocations: Iterable[Allocation]) -> str:
    """Rule 1 and the status definitions: a pure function of the FO and its allocations."""
    if fo.cancelled:
        return "cancelled"
    done = fulfilled_by_line(fo, allocations)
    if all(done[ln.line_id] == 0 for ln in fo.lines):
        return "unfulfilled"
    if all(done[ln.line_id] >= ln.requested for ln in fo.lines):
        return "fulfilled"
    return "partially_fulfilled"
