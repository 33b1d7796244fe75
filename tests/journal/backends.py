"""The journal's storage backends as the journal tests see them.

``Backend.target(tmp_path)`` names a fresh journal (a file or a PostgreSQL URL);
the other methods damage a stored journal the way a fault would, through the
backend's own driver (never through the library).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from allocator.journal import _pgstore


class Backend:
    name = ""

    def target(self, tmp_path: Path) -> Any:
        raise NotImplementedError

    def execute(self, target: Any, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def flip_batch(self, target: Any, seq: int) -> None:
        """Flip one bit in the middle of batch ``seq``'s events."""
        raise NotImplementedError

    def delete_batch(self, target: Any, seq: int) -> None:
        """What a lost commit does: the batch row silently gone."""
        self.execute(target, "DELETE FROM {s}batches WHERE seq = ?", (seq,))

    def flip_snapshot(self, target: Any) -> None:
        raise NotImplementedError

    def set_meta(self, target: Any, key: str, value: bytes) -> None:
        self.execute(target, "UPDATE {s}meta SET value = ? WHERE key = ?", (value, key))

    def snapshots_with_data(self, target: Any) -> list[int]:
        rows = self.execute(
            target, "SELECT seq FROM {s}snapshots WHERE length(data) > 0 ORDER BY seq"
        )
        return [int(r[0]) for r in rows]

    def count(self, target: Any, table: str) -> int:
        return int(self.execute(target, f"SELECT count(*) FROM {{s}}{table}")[0][0])


class SqliteBackend(Backend):
    name = "sqlite"

    def target(self, tmp_path: Path) -> Any:
        return tmp_path / "ledger.db"

    def execute(self, target: Any, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        conn = sqlite3.connect(target)
        try:
            rows = conn.execute(sql.replace("{s}", ""), args).fetchall()
            conn.commit()
        finally:
            conn.close()
        return rows

    def flip_batch(self, target: Any, seq: int) -> None:
        blob = self.execute(target, "SELECT events FROM batches WHERE seq = ?", (seq,))[0][0]
        data = bytearray(Path(target).read_bytes())
        at = data.find(blob)
        assert at > 0 and data.find(blob, at + 1) < 0
        data[at + len(blob) // 2] ^= 0x10
        Path(target).write_bytes(bytes(data))

    def flip_snapshot(self, target: Any) -> None:
        data = bytearray(self.execute(target, "SELECT data FROM snapshots")[0][0])
        data[len(data) // 2] ^= 0xFF
        self.execute(target, "UPDATE snapshots SET data = ?", (bytes(data),))


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url

    def target(self, tmp_path: Path) -> Any:
        return self.url

    def execute(self, target: Any, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        conninfo, schema, _ = _pgstore.parse_url(target)
        conn = _pgstore.connect(conninfo)
        try:
            query = sql.replace("{s}", f"{schema}.")
            # without arguments the query is sent as it is (a LIKE pattern may hold %)
            cur = conn.execute(query.replace("?", "%s"), args) if args else conn.execute(query)
            return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def flip_batch(self, target: Any, seq: int) -> None:
        self.execute(
            target,
            "UPDATE {s}batches SET events = set_byte(events, length(events) / 2,"
            " get_byte(events, length(events) / 2) # 16) WHERE seq = ?",
            (seq,),
        )

    def flip_snapshot(self, target: Any) -> None:
        self.execute(
            target,
            "UPDATE {s}snapshots SET data = set_byte(data, length(data) / 2,"
            " get_byte(data, length(data) / 2) # 255) WHERE length(data) > 0",
        )
