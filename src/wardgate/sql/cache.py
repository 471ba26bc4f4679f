"""A bounded LRU of classifications, so a repeated statement costs a dict lookup.

Owns ``ClassificationCache``. One instance wraps one dialect's classifier
(``classify_postgres`` or ``classify_mysql``), so its key -- the exact SQL text -- is in
effect (dialect, text). Classifications are immutable, so a hit returns the very object
the classifier made; nothing is normalised before the lookup, because two texts that
differ only in a literal can differ in class (``WHERE 1 = 0`` / ``WHERE 1 = 1``). Sharing
across literals is the wrapped classifier's business: ``wardgate.sql.pg_shapes`` does it
for PostgreSQL and ``wardgate.sql.mysql_shapes`` for MySQL, only where the classification
provably does not read them.

Bounds: at most ``max_entries`` entries, texts longer than ``max_text_bytes`` are
classified every time and never stored, and the stored texts together stay under
``max_total_bytes`` -- a client sending unique statements cannot grow it without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from wardgate.sql.classes import Classification


class ClassificationCache:
    """``classify(sql)`` with memory: thread-compatible (each operation is GIL-atomic and a
    lost race only costs a re-classification)."""

    __slots__ = (
        "_classify",
        "_entries",
        "_max_entries",
        "_max_text_bytes",
        "_max_total_bytes",
        "_total_bytes",
        "hits",
        "misses",
    )

    def __init__(
        self,
        classify: Callable[[str], Classification],
        max_entries: int = 10_000,
        max_text_bytes: int = 64_000,
        *,
        max_total_bytes: int = 32_000_000,
    ) -> None:
        if max_entries < 1 or max_text_bytes < 0 or max_total_bytes < 0:
            raise ValueError(
                "ClassificationCache: max_entries must be >= 1 and the byte limits >= 0 "
                f"(got {max_entries}, {max_text_bytes}, {max_total_bytes})"
            )
        self._classify = classify
        self._entries: OrderedDict[str, tuple[Classification, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_text_bytes = max_text_bytes
        self._max_total_bytes = max_total_bytes
        self._total_bytes = 0
        self.hits = 0
        self.misses = 0

    def classify(self, sql: str) -> Classification:
        entries = self._entries
        found = entries.get(sql)
        if found is not None:
            self.hits += 1
            try:  # noqa: SIM105 -- contextlib.suppress costs more than the lookup itself
                entries.move_to_end(sql)
            except KeyError:  # evicted by another thread in between: still a valid answer
                pass
            return found[0]
        self.misses += 1
        result = self._classify(sql)
        size = self._size(sql)
        if size is not None:
            self._store(sql, result, size)
        return result

    def _size(self, sql: str) -> int | None:
        """UTF-8 size of ``sql`` when it may be stored, else None (cheap for short text)."""
        limit = self._max_text_bytes
        n = len(sql)
        if n > limit:
            return None
        if n * 4 <= limit:  # at most 4 bytes per character
            return n
        size = len(sql.encode("utf-8", "surrogatepass"))
        return size if size <= limit else None

    def _store(self, sql: str, result: Classification, size: int) -> None:
        entries = self._entries
        old = entries.pop(sql, None)
        if old is not None:
            self._total_bytes -= old[1]
        entries[sql] = (result, size)
        self._total_bytes += size
        while entries and (
            len(entries) > self._max_entries or self._total_bytes > self._max_total_bytes
        ):
            try:
                _, (_, evicted) = entries.popitem(last=False)
            except KeyError:
                break
            self._total_bytes -= evicted

    def clear(self) -> None:
        self._entries.clear()
        self._total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, sql: object) -> bool:
        return sql in self._entries
