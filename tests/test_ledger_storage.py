"""The ledger on a real SQLite file: out-of-order versions, replays, one timeline entry each."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gateway import ledger
from gateway.domain.records import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    OrderRef,
    Shipment,
    ShipmentLine,
)
from storage import NewFulfillmentOrder, NewOutboxMessage
from storage.sqlite import SqliteStorage, migrations
from tests.conftest import storage_sql


def new_fo(fo_id: str, qty: int, number: str | None = None) -> NewFulfillmentOrder:
    refs = (OrderRef("order_number", number),) if number else ()
    return NewFulfillmentOrder(
        FulfillmentOrder(fo_id, 0, (FulfillmentOrderLine("1", "A", qty),), order_number=number,
                         refs=refs),
        request_hash=fo_id, ship_to={}, custom_fields={}, created_at="2026-01-01T00:00:00.000000Z")


def version(at: str, status: str = "shipped", qty: int = 4, key: str = "fo_1") -> Shipment:
    return Shipment(source="ss", external_id="500001", order_refs=(OrderRef("order_key", key),),
                    lines=(ShipmentLine("A", qty),), status=status, partner_updated_at=at,
                    shipped_at="2026-01-01T00:00:00.000000Z")


async def open_sqlite(tmp_path: Path) -> SqliteStorage:
    storage = SqliteStorage(tmp_path / "db.sqlite3")
    await storage.open()
    await storage.migrate()
    return storage


async def test_migrations_are_numbered_and_idempotent(open_storage, tmp_path: Path) -> None:
    from storage.postgres import migrations as pg_migrations

    storage = await open_storage(tmp_path)
    numbered = migrations() if open_storage.backend == "sqlite" else pg_migrations()
    try:
        assert await storage.schema_version() == len(numbered)
        assert await storage.migrate() == 0
        assert await storage.pending_migrations() == 0
    finally:
        await storage.close()
    if open_storage.backend == "sqlite":
        with sqlite3.connect(tmp_path / "db.sqlite3") as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_older_version_never_replaces_newer(open_storage, tmp_path: Path) -> None:
    storage = await open_storage(tmp_path)
    try:
        async with storage.transaction() as tx:
            await ledger.create_fulfillment_order(tx, new_fo("fo_1", 4))
        shipped = version("2026-01-01T00:00:00.000000Z")
        voided = version("2026-01-02T00:00:00.000000Z", status="voided")
        async with storage.transaction() as tx:
            out = await ledger.record_shipments(tx, [voided], "t1")
        assert out.status_changes == []  # a void of something never seen changes nothing
        async with storage.transaction() as tx:
            out = await ledger.record_shipments(tx, [shipped], "t2")
        assert out.ignored == ["500001"] and out.status_changes == []
        view = await storage.fulfillment_order_view("fo_1")
        assert view.status == "unfulfilled" and view.shipments[0].status == "voided"

        async with storage.transaction() as tx:  # a relabel is a new shipment id
            relabel = Shipment(**{**shipped.__dict__, "external_id": "500002",
                                  "partner_updated_at": "2026-01-03T00:00:00.000000Z"})
            out = await ledger.record_shipments(tx, [relabel, relabel], "t3")
        assert [(c.old, c.new) for c in out.status_changes] == [("unfulfilled", "fulfilled")]
        view = await storage.fulfillment_order_view("fo_1")
        changes = [t for t in view.timeline if t.kind == "status_changed"]
        assert len(changes) == 1 and view.lines[0].fulfilled == 4
    finally:
        await storage.close()


async def test_failed_transaction_leaves_nothing(open_storage, tmp_path: Path) -> None:
    storage = await open_storage(tmp_path)
    try:
        try:
            async with storage.transaction() as tx:
                await ledger.create_fulfillment_order(tx, new_fo("fo_x", 1))
                raise RuntimeError("crash between steps")
        except RuntimeError:
            pass
        assert await storage.fulfillment_order_view("fo_x") is None
    finally:
        await storage.close()


async def test_concurrent_changes_fail_alone(open_storage, tmp_path: Path) -> None:
    """Changes made at once: the one that fails half-way leaves nothing, the others stand
    (and another connection sees them: they were committed before run() returned)."""
    storage = await open_storage(tmp_path)
    try:
        def create(fo_id: str, fail: bool = False):
            async def change(tx):
                await ledger.create_fulfillment_order(tx, new_fo(fo_id, 1))
                if fail:
                    raise RuntimeError(f"{fo_id} fails after its first write")
                return fo_id
            return change

        results = await asyncio.gather(
            storage.run(create("fo_a")), storage.run(create("fo_b", fail=True)),
            storage.run(create("fo_c")), return_exceptions=True)
        assert results[0] == "fo_a" and results[2] == "fo_c"
        assert isinstance(results[1], RuntimeError) and "fo_b fails" in str(results[1])
        other = await open_storage(tmp_path)  # what another process sees
        try:
            assert await storage_sql(other, "SELECT id FROM fulfillment_orders ORDER BY id") == [
                ("fo_a",), ("fo_c",)]
        finally:
            await other.close()
        assert await storage.fulfillment_order_view("fo_b") is None
    finally:
        await storage.close()


async def test_two_processes_reconciling_one_fo_at_once_agree(open_storage, tmp_path: Path
                                                              ) -> None:
    """Two processes (two storages on one database) record the two halves of each FO at
    the same moment: every FO ends fulfilled with both halves allocated, and each status
    change is recorded once (FOs are locked while reconciled, a shipment recorded by one
    process at a time)."""
    first, second = await open_storage(tmp_path), await open_storage(tmp_path)
    try:
        fo_ids = [f"fo_{n}" for n in range(12)]
        for fo_id in fo_ids:
            await first.run(lambda tx, fo_id=fo_id: ledger.create_fulfillment_order(
                tx, new_fo(fo_id, 2)))

        def half(fo_id: str, n: int) -> Shipment:
            return Shipment(source="ss", external_id=f"{fo_id}-{n}",
                            order_refs=(OrderRef("order_key", fo_id),),
                            lines=(ShipmentLine("A", 1),), status="shipped",
                            partner_updated_at="2026-01-01T00:00:00.000000Z",
                            shipped_at="2026-01-01T00:00:00.000000Z")

        async def record(storage, shipment: Shipment) -> None:
            await storage.run(lambda tx: ledger.record_shipments(
                tx, [shipment], "2026-01-01T00:00:01.000000Z"))

        await asyncio.gather(*(record(storage, half(fo_id, n)) for fo_id in fo_ids
                               for n, storage in enumerate((first, second))),
                             # and one shipment delivered to both at once
                             record(first, half("fo_0", 9)), record(second, half("fo_0", 9)))
        for fo_id in fo_ids:
            view = await first.fulfillment_order_view(fo_id)
            assert view is not None and view.status == "fulfilled", fo_id
        changes = await storage_sql(
            first, "SELECT fo_id, from_status, to_status FROM timeline"
            " WHERE kind = 'status_changed' ORDER BY fo_id, id")
        assert sorted(changes) == sorted(
            (fo_id, *step) for fo_id in fo_ids for step in (
                ("unfulfilled", "partially_fulfilled"), ("partially_fulfilled", "fulfilled")))
        assert await storage_sql(first, "SELECT COUNT(*) FROM shipments") == [(25,)]
        assert await storage_sql(first, "SELECT SUM(quantity) FROM allocations") == [(24,)]
    finally:
        await first.close()
        await second.close()


async def test_rematch_moves_allocation_when_reference_appears(
        open_storage, tmp_path: Path) -> None:
    storage = await open_storage(tmp_path)
    try:
        s = Shipment(source="ss", external_id="1", order_refs=(OrderRef("order_number", "77-1"),),
                     lines=(ShipmentLine("A", 2),), status="shipped",
                     partner_updated_at="2026-01-01T00:00:00.000000Z")
        async with storage.transaction() as tx:
            out = await ledger.record_shipments(tx, [s], "t1")
        assert len(out.unmatched) == 1
        async with storage.transaction() as tx:
            created, out = await ledger.create_fulfillment_order(tx, new_fo("fo_77", 2, "77"))
        assert created and [(c.fo_id, c.new) for c in out.status_changes] == [("fo_77", "fulfilled")]
        async with storage.transaction() as tx:
            created, _ = await ledger.create_fulfillment_order(tx, new_fo("fo_77", 2, "77"))
        assert not created
    finally:
        await storage.close()


async def test_fo_created_later_finds_its_unmatched_shipments_by_index(
        open_storage, tmp_path: Path) -> None:
    storage = await open_storage(tmp_path)
    try:
        def shipment(ext: str, *refs: OrderRef) -> Shipment:
            return Shipment(source="ss", external_id=ext, order_refs=refs,
                            lines=(ShipmentLine("A", 1),), status="shipped",
                            partner_updated_at="2026-01-01T00:00:00.000000Z")

        noise = [shipment(f"n{i}", OrderRef("order_number", f"9{i}-1")) for i in range(50)]
        wanted = [shipment("s1", OrderRef("order_number", "500-1")),
                  shipment("s2", OrderRef("order_number", "500-2")),
                  shipment("s3", OrderRef("order_key", "fo_key"))]
        lookalike = shipment("s4", OrderRef("order_number", "5000-1"))
        async with storage.transaction() as tx:
            await ledger.record_shipments(tx, [*noise, *wanted, lookalike], "t1")
        async with storage.transaction() as tx:
            _, out = await ledger.create_fulfillment_order(tx, new_fo("fo_500", 2, "500"))
            _, out2 = await ledger.create_fulfillment_order(tx, new_fo("fo_key", 1))
        assert [(c.fo_id, c.new) for c in out.status_changes] == [("fo_500", "fulfilled")]
        assert [(c.fo_id, c.new) for c in out2.status_changes] == [("fo_key", "fulfilled")]
        view = await storage.fulfillment_order_view("fo_500")
        assert sorted(s.external_id for s in view.shipments) == ["s1", "s2"]
        unmatched = await storage.list_unmatched(None, 200)
        assert len(unmatched.items) == 51  # the noise and the look-alike 5000-1 still wait
    finally:
        await storage.close()


async def test_checkpoints_run_beside_the_writer(tmp_path: Path) -> None:
    import asyncio

    from storage import NewInboxEvent

    storage = await open_sqlite(tmp_path)
    db_file, wal = tmp_path / "db.sqlite3", tmp_path / "db.sqlite3-wal"
    try:
        await asyncio.sleep(0.7)  # the schema itself is checkpointed first
        before = db_file.stat().st_size
        for batch in range(20):
            await storage.store_webhooks([
                NewInboxEvent("c", f"k{batch}-{i}", "webhook", b'{"n": 1}') for i in range(100)])
        # Far below SQLite's own 1000-page threshold: only our checkpoints copy these pages.
        await asyncio.sleep(1.2)
        assert db_file.stat().st_size > before
    finally:
        await storage.close()
    assert not wal.exists() or wal.stat().st_size == 0  # close() truncates the WAL


async def test_an_fo_view_is_one_committed_state_when_a_commit_lands_inside_it(
        tmp_path: Path) -> None:
    """The view's statements run in one read transaction (in one trip to the connection's
    thread): a commit between two of them shows in neither, and in the next view whole."""
    storage = await open_sqlite(tmp_path)
    try:
        async with storage.transaction() as tx:
            await tx.create_fulfillment_order(new_fo("fo_1", 1, number="1001"))
        other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None,
                                check_same_thread=False)  # used in the views thread
        landed = []

        def between(statement: str) -> None:  # as the view's refs statement starts
            if "FROM fulfillment_order_refs" in statement and not landed:
                other.execute("BEGIN IMMEDIATE")
                other.execute("UPDATE fulfillment_orders SET status = 'cancelled'")
                other.execute("INSERT INTO fulfillment_order_refs (fo_id, kind, value)"
                              " VALUES ('fo_1', 'order_key', 'late')")
                other.execute("COMMIT")
                landed.append(statement)

        views = storage.views  # its sqlite3 connection is used only in its own thread
        await views._execute(lambda: views._conn.set_trace_callback(between))
        view = await storage.fulfillment_order_view("fo_1")
        assert landed
        assert view.status == "unfulfilled"
        assert [r.value for r in view.external_refs] == ["1001"]
        view = await storage.fulfillment_order_view("fo_1")
        assert view.status == "cancelled"
        assert sorted(r.value for r in view.external_refs) == ["1001", "late"]
        other.close()
    finally:
        await storage.close()


async def test_late_outcomes_never_overwrite_newer_ones(open_storage, tmp_path: Path) -> None:
    from storage import NewInboxEvent

    storage = await open_storage(tmp_path)
    try:
        assert await storage.store_webhooks([NewInboxEvent("c", "k1", "webhook", b"{}")]) == [True]
        # A repeat is not stored again, within one batch or after it.
        assert await storage.store_webhooks([NewInboxEvent("c", "k1", "webhook", b"{}"),
                                             NewInboxEvent("c", "k2", "webhook", b"{}"),
                                             NewInboxEvent("c", "k2", "webhook", b"{}")]) \
            == [False, True, False]
        await storage.close()
        storage = await open_storage(tmp_path)  # and after a restart
        assert await storage.store_webhooks([NewInboxEvent("c", "k2", "webhook", b"{}")]) == [False]
        async with storage.transaction() as tx:
            [k2] = [e for e in await storage.pending_inbox_events(10, "9999") if e.delivery_key == "k2"]
            await tx.mark_inbox_processed([k2.id], "2000-01-01T00:00:00.500000Z")
        [event] = await storage.pending_inbox_events(10, "9999")
        await storage.dead_letter_inbox_event(event.id, 1, "gave up", "2000-01-01T00:00:01.000000Z")
        # A second, stale worker outcome for the same claim: neither may revive it.
        await storage.retry_inbox_event(event.id, 1, "2000-01-01T00:00:02.000000Z", "late retry")
        async with storage.transaction() as tx:
            await tx.mark_inbox_processed([event.id], "2000-01-01T00:00:03.000000Z")
        [dead] = (await storage.list_dead_letters(None, 10)).items
        assert dead.error == "gave up"
        assert await storage.replay_dead_letter(f"inbox-{event.id}", "2000-01-01T00:00:04.000000Z")
        [again] = await storage.pending_inbox_events(10, "9999")
        assert again.attempts == 0
        await storage.retry_inbox_event(event.id, 1, "2000-01-01T00:00:05.000000Z", "first retry")
        await storage.retry_inbox_event(event.id, 1, "2000-01-01T00:00:06.000000Z", "same claim, reported twice")
        [retried] = await storage.pending_inbox_events(10, "9999")
        assert retried.attempts == 1
    finally:
        await storage.close()


async def test_purge_deletes_only_old_processed_events(open_storage, tmp_path: Path) -> None:
    from gateway.scheduler import purge_inbox
    from storage import NewInboxEvent

    storage = await open_storage(tmp_path)
    try:
        await storage.store_webhooks(
            [NewInboxEvent("c", f"k{i}", "webhook", b"{}") for i in range(5)])
        events = await storage.pending_inbox_events(10, "9999")
        async with storage.transaction() as tx:
            await tx.mark_inbox_processed([e.id for e in events[:3]], "2000-01-01T00:00:00Z")
        await storage.dead_letter_inbox_event(events[3].id, 1, "x", "2000-01-01T00:00:00Z")
        await storage_sql(  # age two processed events
            storage, "UPDATE inbox_events SET received_at = '2000-01-01T00:00:00.000000Z'"
            " WHERE id IN (?, ?, ?)", (events[0].id, events[1].id, events[3].id))
        assert await purge_inbox(storage, 30) == 2
        # Their delivery keys went with them: a repeat of k0 is new now, of k2 still not.
        again = [NewInboxEvent("c", k, "webhook", b"{}") for k in ("k0", "k1", "k2")]
        assert await storage.store_webhooks(again) == [True, True, False]
        await storage.close()
        storage = await open_storage(tmp_path)
        assert await storage.store_webhooks(again) == [False, False, False]
        left = await storage_sql(storage, "SELECT status, COUNT(*) FROM inbox_events"
                                          " GROUP BY status ORDER BY status")
        assert left == [("dead", 1), ("pending", 3), ("processed", 1)]
    finally:
        await storage.close()


def old_database(path: Path, version: int) -> sqlite3.Connection:
    """A database as an earlier version left it: the first `version` migrations applied."""
    from storage.sqlite.backend import _split_sql

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
               " applied_at TEXT NOT NULL)")
    for number, name, sql in migrations()[:version]:
        for statement in _split_sql(sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (?, ?, 'then')", (number, name))
    return db


async def test_migrations_carry_existing_shipment_lines(tmp_path: Path) -> None:
    """A database made by an earlier version keeps its shipments' lines through 0004."""
    path = tmp_path / "old.sqlite3"
    with old_database(path, 3) as db:
        db.execute(
            "INSERT INTO shipments (id, source, external_id, order_refs, lines, status,"
            " partner_updated_at, recorded_at, updated_at) VALUES ('shp_1', 'ss', '9', '[]',"
            " '[{\"sku\": \"A\", \"quantity\": 2, \"partner_line_id\": \"7\"},"
            " {\"sku\": \"B\", \"quantity\": 1, \"partner_line_id\": null}]', 'shipped',"
            " 't', 't', 't')")
    storage = SqliteStorage(path)
    await storage.open()
    try:
        assert await storage.migrate() == len(migrations()) - 3
        async with storage.transaction() as tx:
            [shipment] = await tx.get_shipments(["shp_1"])
        assert shipment.lines == (ShipmentLine("A", 2, "7"), ShipmentLine("B", 1, None))
    finally:
        await storage.close()


async def test_batches_larger_than_one_statement(open_storage, tmp_path: Path) -> None:
    from storage import NewInboxEvent
    from storage.sqlite.backend import _ROWS_PER_STATEMENT

    storage = await open_storage(tmp_path)
    try:
        n = _ROWS_PER_STATEMENT + 7
        polled = [NewInboxEvent("c", f"p{i}", "poll", b"{}") for i in range(n)]
        assert await storage.commit_poll("c", "f", "me", polled, "{}", {}, "t") == n
        assert await storage.commit_poll("c", "f", "me", polled[:10], "{}", {}, "t") == 0
        hooks = [NewInboxEvent("c", f"w{i}", "webhook", b"{}") for i in range(n)]
        assert sum(await storage.store_webhooks(hooks)) == n
        assert (await storage.inbox_stats())["depth"] == 2 * n
    finally:
        await storage.close()


def message(key: str, fo_id: str | None, not_before: str = "2000-01-01T00:00:00.000000Z",
            destination: str = "subscriber:erp") -> NewOutboxMessage:
    return NewOutboxMessage(key=key, destination=destination, kind="event",
                            payload={"id": key}, not_before=not_before, fo_id=fo_id,
                            sequence_key=fo_id)


async def test_outbox_sequences_idempotent_keys_and_late_outcomes(
        open_storage, tmp_path: Path) -> None:
    storage = await open_storage(tmp_path)
    t = "2000-01-01T00:00:0{}.000000Z".format
    try:
        async with storage.transaction() as tx:
            assert await tx.enqueue_outbox([message("a1", "A"), message("a2", "A"),
                                            message("b1", "B"), message("n1", None),
                                            message("a1", "A")], t(0)) == 4
            # Another destination's messages for A do not wait behind the subscriber's.
            await tx.enqueue_outbox([message("p1", "A", destination="connector:ss")], t(0))
        heads = await storage.due_outbox_messages(10, "9999")
        assert [m.key for m in heads] == ["a1", "b1", "n1", "p1"]
        a1 = heads[0]
        async with storage.transaction() as tx:
            assert await tx.retry_outbox_message(a1.id, 1, "9000", "unavailable: x", t(1))
            # The same outcome reported twice changes nothing the second time.
            assert not await tx.retry_outbox_message(a1.id, 1, "9001", "again", t(1))
        # a1 is waiting for its retry, so a2 waits too: one FO's messages stay in order.
        assert [m.key for m in await storage.due_outbox_messages(10, "8999")] == [
            "b1", "n1", "p1"]
        async with storage.transaction() as tx:
            assert await tx.dead_letter_outbox_message(a1.id, 2, "rejected: no", t(2))
            assert not await tx.mark_outbox_sent(a1.id, t(3), {})  # late: it is dead
        assert [m.key for m in await storage.due_outbox_messages(10, "8999")][0] == "a2"
        [dead] = (await storage.list_dead_letters(None, 10)).items
        assert dead.id == f"outbox-{a1.id}" and dead.error == "rejected: no"
        assert await storage.replay_dead_letter(dead.id, t(4))
        assert not await storage.replay_dead_letter(dead.id, t(4))
        assert (await storage.due_outbox_messages(1, "8999"))[0].attempts == 0
        async with storage.transaction() as tx:
            for m in await storage.due_outbox_messages(10, "9999"):
                await tx.mark_outbox_sent(m.id, t(5), {})
        assert await storage.purge_finished_outbox(t(6)) == 4
        assert (await storage.outbox_stats())["pending"] == 1  # a2, next in its sequence
    finally:
        await storage.close()


async def test_claims_leave_out_what_is_in_hand_and_still_fill_the_limit(
        open_storage, tmp_path: Path) -> None:
    from storage import NewInboxEvent

    storage = await open_storage(tmp_path)
    try:
        await storage.store_webhooks(
            [NewInboxEvent("c", f"k{i}", "webhook", b"{}") for i in range(6)])
        first = await storage.pending_inbox_events(2, "9999")
        held = {e.id for e in first}
        more = await storage.pending_inbox_events(3, "9999", held)
        assert len(more) == 3 and not held & {e.id for e in more}
        assert [e.delivery_key for e in more] == ["k2", "k3", "k4"]  # oldest first
        async with storage.transaction() as tx:
            await tx.enqueue_outbox([message(f"m{i}", f"FO{i}") for i in range(6)],
                                    "2000-01-01T00:00:00.000000Z")
        heads = await storage.due_outbox_messages(2, "9999")
        rest = await storage.due_outbox_messages(10, "9999", {m.id for m in heads})
        assert [m.key for m in heads] == ["m0", "m1"]
        assert [m.key for m in rest] == ["m2", "m3", "m4", "m5"]
        assert await storage.due_outbox_messages(10, "9999", {m.id for m in heads + rest}) == []
    finally:
        await storage.close()


async def test_claims_are_leased_to_one_owner_and_taken_over_when_they_expire(open_storage,
        tmp_path: Path) -> None:
    from storage import INBOX, OUTBOX, NewInboxEvent

    storage = await open_storage(tmp_path)
    try:
        await storage.store_webhooks([NewInboxEvent("c", f"k{i}", "webhook", b"{}")
                                      for i in range(3)])
        mine = await storage.claim_inbox_events("a", 2, lease_seconds=0.3)
        assert [e.delivery_key for e in mine] == ["k0", "k1"]
        theirs = await storage.claim_inbox_events("b", 10, lease_seconds=0.3)
        assert [e.delivery_key for e in theirs] == ["k2"]  # never what "a" holds
        assert await storage.claim_inbox_events("b", 10, lease_seconds=0.3) == []
        ids = {e.id for e in mine}
        assert await storage.extend_claims("b", INBOX, ids, 10) == set()  # not b's to extend
        assert await storage.extend_claims("a", INBOX, {mine[0].id}, 10) == {mine[0].id}
        await asyncio.sleep(0.4)  # mine[1]'s lease and "b"'s have run out; mine[0]'s not
        taken_over = await storage.claim_inbox_events("b", 10, lease_seconds=10)
        assert sorted(e.delivery_key for e in taken_over) == ["k1", "k2"]
        await storage.release_claims("a", INBOX, {mine[0].id})
        assert [e.delivery_key for e in await storage.claim_inbox_events("b", 10, 10)] == ["k0"]

        async with storage.transaction() as tx:
            await tx.enqueue_outbox([message("m1", "FO1"), message("m2", "FO2")],
                                    "2000-01-01T00:00:00.000000Z")
        [first] = await storage.claim_outbox_messages("a", 1, lease_seconds=10)
        [second] = await storage.claim_outbox_messages("b", 5, lease_seconds=10)
        assert first.key != second.key
        assert await storage.claim_outbox_messages("c", 5, lease_seconds=10) == []
        await storage.release_claims("b", OUTBOX, {second.id})
        assert [m.key for m in await storage.claim_outbox_messages("c", 5, 10)] == [second.key]
    finally:
        await storage.close()


async def test_a_rate_budget_in_storage_is_shared_by_every_process(
        open_storage, tmp_path: Path) -> None:
    """Two processes' budgets (two storage connections to one file) together never exceed
    the partner's limit in any window, and a 429 seen by one pauses the other."""
    import time

    from gateway.ratelimit import RateBudget

    first, second = await open_storage(tmp_path), await open_storage(tmp_path)
    try:
        budgets = [RateBudget(20, 1.0, key="connector:partner", reserve=s.reserve_rate,
                              pause_shared=s.pause_rate) for s in (first, second)]
        stamps: list[float] = []

        async def caller(budget: RateBudget, until: float) -> None:
            while time.monotonic() < until:
                await budget.acquire()
                stamps.append(time.monotonic())

        until = time.monotonic() + 2.5
        await asyncio.gather(*(caller(b, until) for b in budgets for _ in range(3)))
        stamps.sort()
        busiest = max(sum(1 for t in stamps[i:] if t < start + 1.0)
                      for i, start in enumerate(stamps))
        assert busiest <= 20, busiest
        assert len(stamps) >= 30  # and the budget is used, not starved
        budgets[0].pause(0.6)
        await asyncio.sleep(0.05)  # the pause reaches storage
        fresh = RateBudget(20, 1.0, key="connector:partner", reserve=second.reserve_rate)
        started = time.monotonic()
        await fresh.acquire()
        assert time.monotonic() - started >= 0.4
    finally:
        await second.close()
        await first.close()


async def test_migrations_carry_a_connectors_cursor_into_its_feed(tmp_path: Path) -> None:
    """Before feeds a connector had one cursor (poll_state); 0008 makes it the shipments
    feed's, so an upgrade re-polls from where it was, neither skipping nor starting over; and
    0007 reads the kind of an outbound message's last error out of its text."""
    path = tmp_path / "old.sqlite3"
    with old_database(path, 6) as db:
        db.execute("INSERT INTO poll_state (connector, cursor, last_poll_at, last_result)"
                   " VALUES ('shipstation', '{\"until\": \"x\"}', 't', '{\"new_events\": 2}')")
        db.execute("INSERT INTO outbox_messages (key, destination, kind, payload, status,"
                   " not_before, attempts, last_error, created_at, updated_at) VALUES ('k',"
                   " 'connector:ss', 'push_order', '{}', 'dead', 't', 1, 'rejected: no', 't', 't')")
    storage = SqliteStorage(path)
    await storage.open()
    try:
        assert await storage.migrate() == len(migrations()) - 6
        [state] = await storage.feed_states("shipstation")
        assert (state.feed, state.cursor, state.last_poll_at) == ("shipments", '{"until": "x"}', "t")
        assert dict(state.last_result) == {"new_events": 2}
    finally:
        await storage.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT error_kind FROM outbox_messages").fetchall() == [("rejected",)]


async def test_a_feed_run_is_leased_to_one_owner_and_its_cursor_moves_only_with_the_lease(open_storage,
        tmp_path: Path) -> None:
    from storage import NewInboxEvent

    def at(second: int) -> str:
        return f"2026-12-01T10:00:{second:02d}.000000Z"

    storage = await open_storage(tmp_path)
    try:
        run = await storage.claim_feed_run("c", "orders", "a", at(0), at(30))
        assert run is not None and run.cursor is None
        assert await storage.claim_feed_run("c", "orders", "b", at(1), at(31)) is None
        assert await storage.claim_feed_run("c", "other", "b", at(1), at(31)) is not None
        assert not await storage.extend_feed_lease("c", "orders", "b", at(40))
        assert await storage.extend_feed_lease("c", "orders", "a", at(40))
        events = [NewInboxEvent("c", "orders:0", "poll", b"{}")]
        assert await storage.commit_poll("c", "orders", "a", events, "cursor-1", {}, at(2)) == 1
        # Released: anyone may run it now, unless a scheduled run asks for one not started
        # since (once per interval however many processes there are).
        assert await storage.claim_feed_run("c", "orders", "b", at(3), at(33),
                                            started_before=at(0)) is None
        taken = await storage.claim_feed_run("c", "orders", "b", at(3), at(5))
        assert taken is not None and taken.cursor == "cursor-1"
        # b stalls past its lease; a takes the feed over, and b's late commit keeps its
        # records (unique anyway) but not its cursor.
        again = await storage.claim_feed_run("c", "orders", "a", at(6), at(36))
        assert again is not None
        late = [NewInboxEvent("c", "orders:1", "poll", b"{}")]
        assert await storage.commit_poll("c", "orders", "b", late, "stale", {}, at(7)) == 1
        await storage.record_poll_error("c", "orders", "b", "late error", at(7))
        await storage.commit_poll("c", "orders", "a", [], "cursor-2", {}, at(8))
        state = next(s for s in await storage.feed_states("c") if s.feed == "orders")
        assert (state.cursor, state.last_error, state.owner) == ("cursor-2", None, None)
    finally:
        await storage.close()


async def test_a_scheduled_purge_runs_once_per_interval_however_many_processes(
        open_storage, tmp_path: Path) -> None:
    from datetime import timedelta

    from gateway.scheduler import MAINTENANCE, once_per_interval

    first, second = await open_storage(tmp_path), await open_storage(tmp_path)
    runs: list[str] = []

    async def purge() -> int:
        runs.append("purge")
        return 7

    try:
        day = timedelta(hours=24)
        results = await asyncio.gather(
            once_per_interval(first, "replica-a", "inbox:purge", day, purge),
            once_per_interval(second, "replica-b", "inbox:purge", day, purge))
        assert sorted(results, key=str) == [7, None] and runs == ["purge"]
        assert await once_per_interval(first, "replica-a", "inbox:purge", day, purge) is None
        assert await once_per_interval(second, "replica-b", "outbox:purge", day, purge) == 7
        [state] = [s for s in await first.feed_states(MAINTENANCE) if s.feed == "inbox:purge"]
        assert state.last_result["result"] == 7 and state.owner is None
        # A job whose interval has passed runs again.
        assert await once_per_interval(second, "replica-b", "inbox:purge",
                                       timedelta(microseconds=1), purge) == 7
        assert runs == ["purge"] * 3
    finally:
        await first.close()
        await second.close()
