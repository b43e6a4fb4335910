"""The PostgreSQL backend: any number of gateway processes on one database (asyncpg), its
own numbered migrations applied by one process at a time. See backend.py."""

from storage.postgres.backend import PostgresStorage, migrations

__all__ = ["PostgresStorage", "migrations"]
