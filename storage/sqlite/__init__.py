"""The SQLite backend (the embedded default): one file, WAL, synchronous=FULL, its own
numbered migrations in migrations/."""

from storage.sqlite.backend import SqliteStorage, migrations

__all__ = ["SqliteStorage", "migrations"]
