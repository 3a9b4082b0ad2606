"""Private PostgreSQL and Redis servers for fault tests that stop, restart or starve them.

The machine's own PostgreSQL and Redis are shared with every other test, so outages (F4, F6, F7)
and a lowered ``max_connections`` (F5) happen on servers started here, on free loopback ports,
in a temporary folder: a PostgreSQL cluster made with ``initdb`` (run as the ``postgres`` user
when the tests run as root, since PostgreSQL refuses to run as root) and a ``redis-server``
with an append-only file, so that a restart keeps queued and unacknowledged messages. Both run
as children of the test process and die with it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import (
    ManagedProcess,
    die_with_parent,
    free_port,
    start_process,
    wait_until,
)


def _postgres_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if versions:
        return versions[0].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_postgres() -> None:
    """``preexec_fn``: PostgreSQL refuses to run as root; become ``postgres``, then ask for a
    fast shutdown (SIGINT) when the test process dies (set after the user change, which clears
    it)."""
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    die_with_parent(signal.SIGINT)


@dataclass
class PrivatePostgres:
    """A throwaway PostgreSQL cluster: ``start``/``stop`` (the outage), ``url``, ``connections``."""

    root: Path
    port: int
    max_connections: int
    bin_dir: Path
    log: Path = field(init=False)
    process: ManagedProcess | None = None

    def __post_init__(self) -> None:
        self.log = self.root / "postgres.log"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {result.stderr}\n{tail}")

    @classmethod
    def create(cls, max_connections: int = 100) -> PrivatePostgres:
        bin_dir = _postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, postgres) are not installed")
        root = Path(tempfile.mkdtemp(prefix="dp-private-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        server = cls(root, free_port(), max_connections, bin_dir)
        server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        server.start()
        return server

    def start(self) -> None:
        """Start the server (a child process, so it dies with the tests) and wait for it."""
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-k", str(self.root), "-c", "listen_addresses=127.0.0.1"]
        argv += ["-c", f"max_connections={self.max_connections}", "-c", "fsync=off"]
        argv += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.process = start_process(
            "postgres",
            argv,
            env=dict(os.environ),
            log_dir=self.root,
            cwd=self.root,
            preexec_fn=_as_postgres,
        )
        wait_until(self.accepting, process=self.process, what=f"private PostgreSQL on {self.port}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, new connections refused (an
        outage); returns once the server has exited."""
        if self.process is not None and self.process.alive():
            self.process.popen.send_signal(signal.SIGINT)
            self.process.popen.wait(60)
        self.process = None

    def accepting(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return result.returncode == 0

    def connections(self) -> int:
        """Client backends connected now (all databases)."""
        return sum(self.connections_by_application().values())

    def connections_by_application(self, conn=None) -> dict[str, int]:
        """Client backends by ``application_name`` (``dagster`` for Dagster's storage), not
        counting the connection that asks (pass ``conn`` to reuse one while sampling)."""
        import sqlalchemy as sa

        query = sa.text(
            "SELECT coalesce(nullif(application_name, ''), '(unnamed)') AS app, count(*) "
            "FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() GROUP BY 1"
        )
        if conn is not None:
            return dict(conn.execute(query).all())
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as own:
                return dict(own.execute(query).all())
        finally:
            engine.dispose()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def destroy(self) -> None:
        if self.process is not None:
            self.process.stop(grace_seconds=10)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """A throwaway ``redis-server`` with an append-only file; ``stop``/``start`` keep its data."""

    root: Path
    port: int
    process: ManagedProcess | None = None

    @classmethod
    def create(cls) -> PrivateRedis:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        server = cls(Path(tempfile.mkdtemp(prefix="dp-private-redis-")), free_port())
        server.start()
        return server

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.root), "--appendonly", "yes", "--save", ""]
        self.process = start_process(f"redis-{self.port}", argv, env=dict(os.environ), log_dir=self.root, cwd=self.root)
        wait_until(self.answering, process=self.process, what=f"private Redis on {self.port}")

    def answering(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url(), socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits (a clean restart keeps data)."""
        if self.process is not None and self.process.alive():
            self.process.popen.send_signal(signal.SIGTERM)
            self.process.popen.wait(30)
        self.process = None

    def restart(self, down_seconds: float = 0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def destroy(self) -> None:
        if self.process is not None:
            self.process.stop(grace_seconds=5)
        shutil.rmtree(self.root, ignore_errors=True)


#: Redis databases of the stack tests (flushed before and after each stack): broker, results.
STACK_REDIS_DBS = (13, 14)


@contextlib.contextmanager
def flushed_redis(redis_url: str, dbs: tuple[int, ...] = STACK_REDIS_DBS) -> Iterator[list[str]]:
    """URLs of Redis databases ``dbs``, emptied before and after."""
    import redis

    base = redis_url.rsplit("/", 1)[0]
    urls = [f"{base}/{db}" for db in dbs]
    clients = [redis.Redis.from_url(url) for url in urls]
    try:
        for client in clients:
            client.flushdb()
        yield urls
    finally:
        for client in clients:
            client.flushdb()
            client.close()
