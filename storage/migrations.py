"""Numbered migrations, as each backend keeps them: `migrations/NNNN_what_it_does.sql` inside
the backend's package, applied in order, each once."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from importlib import resources

from storage import StorageUnavailable

_MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def numbered_migrations(package: str) -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every migration of a backend package, in order."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.fullmatch(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def refuse_newer(applied: Collection[int], known: Sequence[tuple[int, str, str]],
                 where: str) -> None:
    """A database a newer version of the gateway has migrated is not one this version
    knows: it stops rather than run on tables it does not understand."""
    latest = max((number for number, _, _ in known), default=0)
    found = max(applied, default=0)
    if found > latest:
        raise StorageUnavailable(
            f"{where}: the database is at schema version {found}, newer than this version of"
            f" the gateway knows ({latest}); run the newer version, or restore the backup"
            " taken before the upgrade")
