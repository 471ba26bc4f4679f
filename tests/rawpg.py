"""A deliberately dumb PostgreSQL frontend over a plain socket, for byte-level tests."""

from __future__ import annotations

import socket
import struct


class RawPg:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.received = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        self.received += out
        return bytes(out)

    def read_message(self) -> tuple[bytes, bytes]:
        hdr = self.recv_exact(5)
        (length,) = struct.unpack("!i", hdr[1:])
        return hdr[:1], self.recv_exact(length - 4)

    def read_until(self, kind: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        while True:
            k, p = self.read_message()
            out.append((k, p))
            if k == kind or (k == b"E" and b"FATAL" in p):
                return out

    def startup(self, user: str, database: str, password: str) -> list[tuple[bytes, bytes]]:
        params = b"user\x00" + user.encode() + b"\x00database\x00" + database.encode() + b"\x00\x00"
        body = struct.pack("!i", 196608) + params
        self.send(struct.pack("!i", len(body) + 4) + body)
        k, p = self.read_message()
        if k != b"R":
            return [(k, p)]
        pw = password.encode() + b"\x00"
        self.send(b"p" + struct.pack("!i", len(pw) + 4) + pw)
        return self.read_until(b"Z")

    def query(self, sql: str) -> list[tuple[bytes, bytes]]:
        q = sql.encode() + b"\x00"
        self.send(b"Q" + struct.pack("!i", len(q) + 4) + q)
        return self.read_until(b"Z")

    def closed_by_peer(self) -> bool:
        try:
            self.sock.settimeout(5)
            data = self.sock.recv(1)
        except ConnectionResetError:
            return True
        return data == b""

    def close(self) -> None:
        self.sock.close()


def error_fields(payload: bytes) -> dict[str, str]:
    out = {}
    for part in payload.split(b"\x00"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out
