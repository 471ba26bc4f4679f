"""Prometheus metrics, one registry per gateway process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

SESSIONS_TOTAL = Counter(
    "wardgate_sessions_total",
    "Client sessions by protocol and outcome",
    ["protocol", "outcome"],
    registry=REGISTRY,
)
SESSIONS_ACTIVE = Gauge(
    "wardgate_sessions_active", "Sessions currently connected", ["protocol"], registry=REGISTRY
)
AUTH_FAILURES = Counter(
    "wardgate_auth_failures_total", "Failed client authentications", ["protocol"], registry=REGISTRY
)
BYTES = Counter(
    "wardgate_bytes_total", "Bytes relayed", ["protocol", "direction"], registry=REGISTRY
)
STATEMENTS = Counter(
    "wardgate_statements_total",
    "Statements seen by verdict",
    ["protocol", "verdict"],
    registry=REGISTRY,
)
