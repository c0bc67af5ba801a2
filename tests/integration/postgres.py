"""A private PostgreSQL for the tests, as they start their own redis-server.

``BACKFILL_TEST_DATABASE_URL`` names one to use instead. Otherwise the installed server's
``initdb`` and ``pg_ctl`` (Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH)
make a throwaway cluster on a free port, in a temporary folder; as root they run as the
``postgres`` user, since PostgreSQL refuses to run as root. Nothing here is skipped: with no
server installed the tests fail, saying so.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from worker.store.embedded import free_port


def _tool(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql); "
                           "or set BACKFILL_TEST_DATABASE_URL")
    return found


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free port; it can be crashed (``-m immediate``) and started again."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="backfill-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            self.base.chmod(0o755)
            shutil.chown(self.base, "postgres", "postgres")
        self.data, self.log = self.base / "data", self.base / "server.log"
        subprocess.run([*self.as_user, _tool("initdb"), "-D", str(self.data), "-U", "backfill", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        self.port = free_port()
        self.url = f"postgresql://backfill@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off")
        subprocess.run([*self.as_user, _tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                        "-w", "start"], check=True, capture_output=True)

    def crash(self) -> None:
        """Stop at once, as a crash would (``pg_ctl -m immediate``): recovery replays the WAL at the next start."""
        subprocess.run([*self.as_user, _tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)

    def destroy(self) -> None:
        self.crash()
        shutil.rmtree(self.base, ignore_errors=True)


def start_postgres() -> tuple[str, Callable[[], None]]:
    """(a URL of an empty database, a function that stops the server)."""
    given = os.environ.get("BACKFILL_TEST_DATABASE_URL")
    if given:
        return given, lambda: None
    server = PrivatePostgres()
    server.start()
    return server.url, server.destroy
