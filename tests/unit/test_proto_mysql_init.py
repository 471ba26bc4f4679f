"""The package's public surface: everything in __all__ exists and nothing private leaks."""

from __future__ import annotations

import wardgate.proto.mysql as mysql


def test_all_names_resolve_and_are_public() -> None:
    assert mysql.__all__ == sorted(mysql.__all__, key=lambda n: (not n.isupper(), n))
    for name in mysql.__all__:
        assert not name.startswith("_")
        assert getattr(mysql, name) is not None


def test_the_proxy_facing_names_are_exported() -> None:
    for name in ("PacketFramer", "Packet", "DownstreamLogin", "UpstreamLogin",
                 "ResultSetTracker", "ResponseKind", "StmtExecute", "parse_binary_row",
                 "parse_text_row", "error_packet_for", "GATEWAY_CAPABILITIES"):
        assert name in mysql.__all__
