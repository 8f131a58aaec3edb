"""Store URLs (SQLAlchemy style) → the eventsourcing environment that selects the store.

sqlite:///relative.db            a file relative to the working directory
sqlite:////absolute/path.db      an absolute path
sqlite:///x.db?synchronous=full  the event log's sync mode: normal (the default), full or extra
postgresql://user:pw@host:5432/db, postgresql://user@/db?host=/run/socket/dir
memory://                        in-process (tests)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

SQLITE_SYNC_MODES = ("normal", "full", "extra")
"""The event log's `PRAGMA synchronous` choices (WAL mode). `normal`: a commit is written to the
WAL, which survives any crash of the process and is synced at checkpoints; a power loss or an OS
crash may lose the last commits, never the file's consistency (SQLite's documented WAL guarantee).
`full`: every commit also waits for an fsync of the WAL (durable against power loss). `off` is not
offered: it risks corruption."""


class StoreUrlError(ValueError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"invalid store URL {url!r}: {reason}")


@dataclass(frozen=True)
class StoreConfig:
    url: str
    kind: str  # "sqlite" | "postgresql" | "memory"
    env: dict[str, str]
    sqlite_path: Path | None = None
    postgres_dsn: str | None = None

    def read_model_url(self) -> str:
        """Where the read model lives: a sibling SQLite file, or the same PostgreSQL database."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            return f"sqlite:///{self.sqlite_path.with_name(self.sqlite_path.stem + '-readmodel.db')}"
        if self.kind == "memory":
            return "sqlite-memory://"
        return self.url


def parse_store_url(url: str) -> StoreConfig:
    parts = urlsplit(url)
    if parts.scheme == "sqlite-memory":
        return StoreConfig(url, "sqlite", {}, sqlite_path=None)
    if parts.scheme == "memory":
        return StoreConfig(url, "memory", {"PERSISTENCE_MODULE": "adapters.store.memory:Factory"})
    if parts.scheme == "sqlite":
        raw = unquote(parts.path)
        if parts.netloc or not raw.startswith("/") or len(raw) < 2:
            raise StoreUrlError(url, "expected sqlite:///relative.db or sqlite:////absolute/path.db")
        path = Path(raw[1:]).resolve()
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = sorted(set(query) - {"synchronous"})
        if unknown:
            raise StoreUrlError(url, f"unknown option {unknown[0]!r}; known: synchronous")
        synchronous = query.get("synchronous", "normal").lower()
        if synchronous not in SQLITE_SYNC_MODES:
            raise StoreUrlError(url, f"synchronous must be one of {', '.join(SQLITE_SYNC_MODES)}")
        env = {
            "PERSISTENCE_MODULE": "adapters.store.sqlite:Factory",
            "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30",
            "SQLITE_SYNCHRONOUS": synchronous,
        }
        return StoreConfig(url, "sqlite", env, sqlite_path=path)
    if parts.scheme in ("postgresql", "postgres"):
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        host = query.get("host") or parts.hostname or "localhost"
        dbname = parts.path.lstrip("/")
        if not dbname:
            raise StoreUrlError(url, "the database name is missing")
        env = {
            "PERSISTENCE_MODULE": "adapters.store.postgres:Factory",
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": host,
            "POSTGRES_PORT": str(parts.port or int(query.get("port", 5432))),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": query.get("pool_size", "5"),
        }
        return StoreConfig(url, "postgresql", env, postgres_dsn=_dsn(env))
    raise StoreUrlError(url, "scheme must be sqlite, postgresql or memory")


def _dsn(env: dict[str, str]) -> str:
    fields = {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": env["POSTGRES_PORT"],
        "user": env["POSTGRES_USER"],
    }
    if env["POSTGRES_PASSWORD"]:
        fields["password"] = env["POSTGRES_PASSWORD"]
    return " ".join(f"{k}={v}" for k, v in fields.items())
