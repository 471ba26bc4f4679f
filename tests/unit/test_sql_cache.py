"""ClassificationCache: a repeated statement costs a dict lookup; memory stays bounded."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from wardgate.sql import ClassificationCache, StatementClass, classify_mysql, classify_postgres
from wardgate.sql.classes import Classification


class CountingClassifier:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, sql: str) -> Classification:
        self.calls.append(sql)
        return classify_postgres(sql)


def test_hit_returns_the_same_object_without_classifying_again() -> None:
    inner = CountingClassifier()
    cache = ClassificationCache(inner)
    first = cache.classify("SELECT 1")
    second = cache.classify("SELECT 1")
    assert first is second
    assert inner.calls == ["SELECT 1"]
    assert (cache.hits, cache.misses) == (1, 1)


def test_key_is_the_exact_text_not_the_fingerprint() -> None:
    # Same literal-insensitive shape, different classes: must not share an entry.
    cache = ClassificationCache(classify_postgres)
    bounded = cache.classify("DELETE FROM t WHERE id = 5 OR 1 = 0")
    unbounded = cache.classify("DELETE FROM t WHERE id = 5 OR 1 = 1")
    assert StatementClass.WRITE_UNBOUNDED not in bounded.classes
    assert StatementClass.WRITE_UNBOUNDED in unbounded.classes


def test_least_recently_used_is_evicted_first() -> None:
    inner = CountingClassifier()
    cache = ClassificationCache(inner, max_entries=2)
    cache.classify("SELECT 1")
    cache.classify("SELECT 2")
    cache.classify("SELECT 1")  # now SELECT 2 is the oldest
    cache.classify("SELECT 3")
    assert "SELECT 1" in cache
    assert "SELECT 2" not in cache
    assert len(cache) == 2


def test_long_text_is_classified_but_not_stored() -> None:
    inner = CountingClassifier()
    cache = ClassificationCache(inner, max_text_bytes=20)
    long_sql = "SELECT 1 FROM some_table"
    cache.classify(long_sql)
    cache.classify(long_sql)
    assert inner.calls == [long_sql, long_sql]
    assert len(cache) == 0


def test_text_limit_counts_utf8_bytes() -> None:
    cache = ClassificationCache(classify_postgres, max_text_bytes=16)
    cache.classify("SELECT 'ééééé'")  # 14 characters, 19 bytes
    assert len(cache) == 0
    cache.classify("SELECT 'abcde'")  # 14 bytes
    assert len(cache) == 1


def test_total_stored_text_is_bounded() -> None:
    cache = ClassificationCache(classify_postgres, max_total_bytes=30)
    for i in range(10):
        cache.classify(f"SELECT {i} AS abc")  # 15 bytes each
    assert len(cache) == 2


def test_clear() -> None:
    cache = ClassificationCache(classify_postgres)
    cache.classify("SELECT 1")
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(
    "bad", [{"max_entries": 0}, {"max_text_bytes": -1}, {"max_total_bytes": -1}]
)
def test_invalid_limits_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="ClassificationCache"):
        ClassificationCache(classify_postgres, **bad)


def test_errors_are_cached_too() -> None:
    inner = CountingClassifier()
    cache = ClassificationCache(inner)
    assert cache.classify("DR/**/OP TABLE t").unclassified
    assert cache.classify("DR/**/OP TABLE t").unclassified
    assert len(inner.calls) == 1


@pytest.mark.parametrize(
    ("classify", "sql"),
    [
        (classify_postgres, "SELECT abalance FROM pgbench_accounts WHERE aid = $1"),
        (classify_mysql, "SELECT abalance FROM pgbench_accounts WHERE aid = ?"),
    ],
    ids=["postgres", "mysql"],
)
def test_cached_classification_costs_about_a_dict_lookup(
    classify: Callable[[str], Classification], sql: str
) -> None:
    cache = ClassificationCache(classify)
    cache.classify(sql)
    n = 20_000
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            cache.classify(sql)
        best = min(best, (time.perf_counter() - start) / n)
    # ~0.3 µs on an idle machine; the bound leaves room for a loaded CI box.
    assert best < 10e-6, f"cached classify took {best * 1e6:.2f} µs"
