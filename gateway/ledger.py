"""Applies the reconciler's pure rules to stored state, inside one storage transaction.

Every entry point takes a transaction, loads just the connected FOs and shipments a change
touches, recomputes their allocations and statuses from scratch, and writes what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.domain.reconcile import (
    ID_KINDS,
    Match,
    allocate,
    derive_status,
    fulfilled_by_line,
    lookup_keys,
    match_shipment,
    supersedes,
)
from gateway.domain.records import Allocation, FulfillmentOrder, Shipment, new_id
from gateway.errors import Conflict, NotFound
from storage import NewFulfillmentOrder, Transaction

_MAX_COMPONENT_ROUNDS = 16


@dataclass(frozen=True)
class StatusChange:
    fo_id: str
    old: str
    new: str
    lines: tuple[dict, ...] = ()  # {line_id, sku, requested, fulfilled} after the change


@dataclass
class Outcome:
    """What one unit of work changed; the caller logs it and (later) emits events from it."""

    status_changes: list[StatusChange] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # shipment ids stored or replaced
    ignored: list[str] = field(default_factory=list)  # external ids of stale or equal versions
    unmatched: list[str] = field(default_factory=list)
    matches: dict[str, Match] = field(default_factory=dict)  # of recorded shipments
    # (shipment id, FO id) pairs allocated now that were not before, with the lines allocated
    newly_allocated: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    # What reconciling loaded, as it stands after the change, so what follows need not read
    # it again: FOs (status as before the change), shipments, and each shipment's FO ids.
    fos: dict[str, FulfillmentOrder] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    shipment_fos: dict[str, list[str]] = field(default_factory=dict)

    def merge(self, other: Outcome) -> Outcome:
        self.status_changes += other.status_changes
        self.recorded += [s for s in other.recorded if s not in self.recorded]
        self.ignored += other.ignored
        self.unmatched += [s for s in other.unmatched if s not in self.unmatched]
        self.matches |= other.matches
        for pair, lines in other.newly_allocated.items():
            self.newly_allocated.setdefault(pair, []).extend(lines)
        self.fos |= other.fos
        self.shipments |= other.shipments
        self.shipment_fos |= other.shipment_fos
        return self


async def _match(tx: Transaction, shipment: Shipment) -> Match:
    ids, keys = lookup_keys(shipment.order_refs)
    known = await tx.existing_fulfillment_order_ids(ids)
    by_ref = await tx.fulfillment_orders_by_ref(keys)
    return match_shipment(shipment.order_refs, known, by_ref)


async def refresh(tx: Transaction, fo_ids: Iterable[str], shipment_ids: Iterable[str],
                  at: str, outcome: Outcome) -> None:
    """Recompute allocations and statuses for everything connected to these FOs and shipments."""
    fos, sids = set(fo_ids), set(shipment_ids)
    matches: dict[str, list[str]] = {}
    locked: set[str] = set()
    for _ in range(_MAX_COMPONENT_ROUNDS):
        # Locked before their shipments are read: another process reconciling them waits,
        # then finds this one's shipments too (and no status changes twice).
        await tx.lock_fulfillment_orders(fos - locked)
        locked |= fos
        sids |= await tx.shipments_of_fulfillment_orders(fos)
        matches = await tx.matches_of_shipments(sids)
        grown = fos | {fo for fo_list in matches.values() for fo in fo_list}
        if grown == fos:
            break
        fos = grown
    fulfillment_orders = await tx.get_fulfillment_orders(fos)
    shipments = await tx.get_shipments(sids)
    outcome.fos |= {fo.id: fo for fo in fulfillment_orders}
    outcome.shipments |= {s.id: s for s in shipments if s.id}
    outcome.shipment_fos |= {sid: list(fo_ids) for sid, fo_ids in matches.items()}
    allocations, overshipped = allocate(
        fulfillment_orders, [(s, matches.get(s.id or "", [])) for s in shipments])
    before = await tx.replace_allocations(fos, sids, allocations, overshipped)
    for a in allocations:
        if (a.shipment_id, a.fo_id) not in before:
            outcome.newly_allocated.setdefault((a.shipment_id, a.fo_id), []).append(
                {"line_id": a.line_id, "sku": a.sku, "quantity": a.quantity})
    for fo in sorted(fulfillment_orders, key=lambda f: f.seq):
        await _update_status(tx, fo, allocations, at, outcome)


async def _update_status(tx: Transaction, fo: FulfillmentOrder, allocations: Sequence[Allocation],
                         at: str, outcome: Outcome) -> None:
    status = derive_status(fo, allocations)
    if status == fo.status:
        return
    fulfilled = fulfilled_by_line(fo, allocations)
    lines = tuple({"line_id": ln.line_id, "sku": ln.sku, "requested": ln.requested,
                   "fulfilled": fulfilled[ln.line_id]} for ln in fo.lines)
    await tx.set_fulfillment_order_status(fo.id, fo.status, status, at, {"lines": list(lines)})
    outcome.status_changes.append(StatusChange(fo.id, fo.status, status, lines))


async def record_shipments(tx: Transaction, shipments: Iterable[Shipment], at: str,
                           outcome: Outcome | None = None) -> Outcome:
    """Rule 4 then rules 1-3: keep the newest version of each shipment, match it, reconcile.

    All the shipments are stored and matched first and reconciled together once, so the FOs
    they touch change status at most once for the whole set.
    """
    outcome = outcome or Outcome()
    fo_ids: set[str] = set()
    for incoming in shipments:
        old = await tx.get_shipment(incoming.source, incoming.external_id)
        if not supersedes(incoming, old):
            outcome.ignored.append(incoming.external_id)
            continue
        # A new id has nothing stored under it: nothing to replace, no earlier match.
        new = old is None or not old.id
        shipment_id = new_id("shp") if new else old.id
        shipment = Shipment(**{**incoming.__dict__, "id": shipment_id})
        await tx.save_shipment(shipment, at, new=new)
        previous = [] if new else (await tx.matches_of_shipments([shipment_id]))[shipment_id]
        if not new and await tx.get_match_rule(shipment_id) == "manual":
            match = Match(tuple(previous), rule="manual")
        else:
            match = await _match(tx, shipment)
        await tx.set_match(shipment_id, match, at, new=new)
        outcome.recorded.append(shipment_id)
        outcome.matches[shipment_id] = match
        if not match.matched and shipment.status != "voided":
            outcome.unmatched.append(shipment_id)
        fo_ids |= set(previous) | set(match.fo_ids)
    if outcome.recorded:
        await refresh(tx, fo_ids, outcome.recorded, at, outcome)
    return outcome


async def create_fulfillment_order(tx: Transaction, new: NewFulfillmentOrder) -> tuple[bool, Outcome]:
    """Create an FO, or confirm an identical earlier request (False). Rule 5: re-try unmatched."""
    outcome = Outcome()
    existing = await tx.fulfillment_order_request_hash(new.fo.id)
    if existing is not None:
        if existing != new.request_hash:
            raise Conflict(f"fulfillment order {new.fo.id} exists with a different request")
        return False, outcome
    await tx.create_fulfillment_order(new)
    await rematch_unmatched(tx, new.fo, new.created_at, outcome)
    return True, outcome


async def rematch_unmatched(tx: Transaction, fo: FulfillmentOrder, at: str,
                            outcome: Outcome) -> None:
    """Rule 5: unmatched shipments that name this FO, its references, or a split of them."""
    refs = [(kind, fo.id) for kind in ID_KINDS] + [(r.kind, r.value) for r in fo.refs]
    prefixes = [(r.kind, f"{r.value}-") for r in fo.refs]
    candidates = await tx.unmatched_shipments_referencing(refs, prefixes)
    fo_ids: set[str] = set()
    matched: list[str] = []
    for shipment in await tx.get_shipments(candidates):
        match = await _match(tx, shipment)
        if match.matched:
            await tx.set_match(shipment.id or "", match, at)
            fo_ids |= set(match.fo_ids)
            matched.append(shipment.id or "")
    if matched:
        await refresh(tx, fo_ids, matched, at, outcome)


async def cancel_fulfillment_order(tx: Transaction, fo_id: str, at: str) -> Outcome:
    outcome = Outcome()
    fos = await tx.get_fulfillment_orders([fo_id])
    if not fos:
        raise NotFound(f"fulfillment order {fo_id} does not exist")
    if not fos[0].cancelled:
        await tx.cancel_fulfillment_order(fo_id, at)
        await refresh(tx, [fo_id], [], at, outcome)
    return outcome


async def unmatch(tx: Transaction, shipment_id: str, at: str, by: str = "api") -> Outcome:
    """Undo a manual match: the shipment is matched by the rules again (or waits unmatched)."""
    outcome = Outcome()
    shipments = await tx.get_shipments([shipment_id])
    if not shipments:
        raise NotFound(f"shipment {shipment_id} does not exist")
    if await tx.get_match_rule(shipment_id) != "manual":
        raise Conflict(f"shipment {shipment_id} was not matched by hand; only a manual match"
                       " can be undone")
    previous = (await tx.matches_of_shipments([shipment_id]))[shipment_id]
    match = await _match(tx, shipments[0])
    await tx.set_match(shipment_id, match, at)
    for fo_id in previous:
        await tx.add_timeline(fo_id, "shipment_unmatched_manually", at,
                              {"shipment_id": shipment_id, "by": by})
    if not match.matched and shipments[0].status != "voided":
        outcome.unmatched.append(shipment_id)
    outcome.recorded.append(shipment_id)
    outcome.matches[shipment_id] = match
    await refresh(tx, set(previous) | set(match.fo_ids), [shipment_id], at, outcome)
    return outcome


async def match_manually(tx: Transaction, shipment_id: str, fo_ids: Sequence[str],
                         at: str, by: str = "api") -> Outcome:
    """A person's answer for an unmatched shipment; later versions keep it."""
    outcome = Outcome()
    shipments = await tx.get_shipments([shipment_id])
    if not shipments:
        raise NotFound(f"shipment {shipment_id} does not exist")
    known = await tx.existing_fulfillment_order_ids(fo_ids)
    missing = sorted(set(fo_ids) - known)
    if missing:
        raise NotFound(f"fulfillment order(s) {', '.join(missing)} do not exist")
    previous = (await tx.matches_of_shipments([shipment_id]))[shipment_id]
    await tx.set_match(shipment_id, Match(tuple(sorted(set(fo_ids))), rule="manual"), at)
    for fo_id in fo_ids:
        await tx.add_timeline(fo_id, "shipment_matched_manually", at,
                              {"shipment_id": shipment_id, "by": by})
    await refresh(tx, set(previous) | set(fo_ids), [shipment_id], at, outcome)
    return outcome
