"""A throwaway PostgreSQL server for tests and benchmarks: its own data directory in a fresh
temporary directory, loopback only, on a free port, trust authentication for one role, and
removed when it stops. Needs PostgreSQL's `initdb` and `pg_ctl` (on PATH or in /usr/lib/postgresql/*/bin). PostgreSQL
refuses to run as root: as root, the server runs as the `postgres` user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROLE = "gateway"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    """A PostgreSQL program: on PATH, or where Debian's packages put it."""
    found = shutil.which(name) or next(iter(sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} not found (PATH, /usr/lib/postgresql/*/bin): install"
                           " PostgreSQL 15 (apt-get install postgresql)")
    return found


class PgServer:
    def __init__(self, *, durable: bool = False) -> None:
        """`durable=False` turns fsync off: fine for tests, never for a benchmark's figures."""
        self.durable = durable
        self.port = 0
        self.root: Path | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [_tool(args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")

    def start(self) -> PgServer:
        for tool in ("initdb", "pg_ctl"):
            _tool(tool)
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        self.port = _free_port()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
                   f" -c max_connections=200 -c fsync={'on' if self.durable else 'off'}"
                   f" -c synchronous_commit={'on' if self.durable else 'off'}")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "-o", options, "start")
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
