"""The PostgreSQL backend (several gateway processes on one database), in progress: its
schema and numbered migrations, applied by one process at a time. The storage interface's
operations are not implemented yet, so `[storage]` cannot select it; see the README."""

from storage.postgres.backend import PostgresStorage, migrations

__all__ = ["PostgresStorage", "migrations"]
