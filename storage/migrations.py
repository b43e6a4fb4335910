"""Numbered migrations, as each backend keeps them: `migrations/NNNN_what_it_does.sql` inside
the backend's package, applied in order, each once."""

from __future__ import annotations

import re
from importlib import resources

_MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def numbered_migrations(package: str) -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every migration of a backend package, in order."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.fullmatch(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text()))
    return sorted(found)
