#!/usr/bin/env python3
"""Set-up and entry points for a fresh clone; needs only Python 3.11+ with pip and venv.

    python3 dev.py demo     create .venv if needed, install, run the demo
    python3 dev.py test     create .venv if needed, install, run the whole test suite
    python3 dev.py bench [intake|outbox|pipeline|pg_drivers|shapes|poll|stores|console]   the benchmarks
                                                    (all by default)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = "requirements-test.lock"  # pip-compile --generate-hashes --extra test (README)
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except (OSError, subprocess.CalledProcessError):
            # Some distributions ship python3 without ensurepip: make the venv bare and let
            # this interpreter's pip put pip into it.
            venv.create(VENV, with_pip=False, clear=True)
            subprocess.run([sys.executable, "-m", "pip", "--python", str(PYTHON), "install",
                            "--quiet", "pip"], check=True)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()
                            + (ROOT / LOCK).read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    if not stamp.exists():
        print("Installing the gateway and its test tools into .venv ...", flush=True)
        pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # Exactly the locked versions, each checked against its hash (the Dockerfile installs
        # requirements.lock, the runtime subset, the same way); then the project itself.
        subprocess.run([*pip, "--require-hashes", "-r", str(ROOT / LOCK)], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()


BENCHMARKS = ("intake", "outbox", "pipeline", "pg_drivers", "shapes", "poll", "stores",
              "console")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if command == "demo":
        args = [str(PYTHON), "-m", "gateway.cli", "demo", *rest]
    elif command == "test":
        args = [str(PYTHON), "-m", "pytest", "-q", *rest]
    else:
        names = [n for n in rest if n in BENCHMARKS] or list(BENCHMARKS)
        options = [a for a in rest if a not in BENCHMARKS]
        try:
            for name in names:
                code = subprocess.call([str(PYTHON), f"bench/{name}.py", *options])
                if code:
                    return code
            return 0
        except KeyboardInterrupt:
            return 130
    try:
        return subprocess.call(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
