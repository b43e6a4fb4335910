"""Hypothesis through the real outbox storage (a real SQLite file): whatever mix of sends,
retries and dead letters a dispatcher records, one FO's messages to one destination leave in
the order they were written, never two at once, and every message ends sent or dead."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from storage import NewOutboxMessage
from storage.sqlite import SqliteStorage

PAST, FUTURE = "2000-01-01T00:00:00.000000Z", "9999-01-01T00:00:00.000000Z"

# Each message: (destination index, FO index or None for "no sequence").
messages = st.lists(st.tuples(st.integers(0, 1), st.one_of(st.none(), st.integers(0, 2))),
                    min_size=1, max_size=12)
# What the "partner" answers, in turn: sent, retry (due at once), dead.
outcomes = st.lists(st.sampled_from(["sent", "retry", "dead"]), min_size=1, max_size=40)


async def dispatch(plan: list[tuple[int, int | None]], answers: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        storage = SqliteStorage(Path(tmp) / "db.sqlite3")
        await storage.open()
        try:
            await storage.migrate()
            async with storage.transaction() as tx:
                written = [NewOutboxMessage(
                    key=f"m{i}", destination=f"d{dest}", kind="event", payload={"i": i},
                    not_before=PAST, fo_id=None if fo is None else f"fo{fo}",
                    sequence_key=None if fo is None else f"fo{fo}")
                    for i, (dest, fo) in enumerate(plan)]
                # Enqueueing twice stores each once.
                assert await tx.enqueue_outbox(written + written, PAST) == len(plan)
            order = {m.key: i for i, m in enumerate(written)}
            left = {m.key: m for m in written}
            sent_order: dict[tuple[str, str], list[int]] = {}
            answer_at = 0
            for _ in range(len(answers) + len(plan) + 5):
                heads = await storage.due_outbox_messages(100, FUTURE)
                if not heads:
                    break
                sequences = [(m.destination, m.fo_id) for m in heads if m.fo_id]
                assert len(sequences) == len(set(sequences)), "two of one sequence at once"
                async with storage.transaction() as tx:
                    for head in heads:
                        # Nothing earlier of its sequence is still waiting.
                        assert not any(
                            order[k] < order[head.key] and m.destination == head.destination
                            and m.fo_id is not None and m.fo_id == head.fo_id
                            for k, m in left.items())
                        answer = answers[answer_at] if answer_at < len(answers) else "sent"
                        answer_at += 1
                        if answer == "sent":
                            assert await tx.mark_outbox_sent(head.id, PAST, {})
                            sent_order.setdefault((head.destination, head.fo_id or head.key),
                                                  []).append(order[head.key])
                            del left[head.key]
                        elif answer == "dead":
                            assert await tx.dead_letter_outbox_message(
                                head.id, head.attempts + 1, "rejected: no", PAST)
                            del left[head.key]
                        else:
                            assert await tx.retry_outbox_message(
                                head.id, head.attempts + 1, PAST, "unavailable: x", PAST)
            assert not left, "every message ends sent or dead"
            for sequence in sent_order.values():
                assert sequence == sorted(sequence)
            stats = await storage.outbox_stats()
            assert stats["pending"] == 0
            assert stats["dead"] == answers[:answer_at].count("dead")
        finally:
            await storage.close()


@settings(max_examples=40, deadline=None)
@given(messages, outcomes)
def test_sequences_hold_whatever_the_outcomes(plan, answers) -> None:
    asyncio.run(dispatch(plan, answers))
