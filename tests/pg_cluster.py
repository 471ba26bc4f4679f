"""A throwaway real PostgreSQL cluster with password auth and TLS, for upstream-auth tests.

The machine's main server trusts loopback, so it cannot show SCRAM, MD5, cleartext or
verify-full. This starts a second real server (the same Debian binaries) on a free
port, as the ``postgres`` OS user because the server refuses to run as root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway_harness import free_port


def _bin() -> Path:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists():
            return d
    raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca_and_server_cert(
    directory: Path, hostname: str = "localhost"
) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wardgate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return ca_path, cert_path, key_path


@dataclass
class Cluster:
    port: int
    ca_file: Path
    datadir: Path


@contextlib.contextmanager
def password_cluster() -> Iterator[Cluster]:
    pg = pwd.getpwnam("postgres")
    root = Path(tempfile.mkdtemp(prefix="wg-pgauth-"))
    os.chown(root, pg.pw_uid, pg.pw_gid)
    data = root / "data"
    port = free_port()

    def as_pg(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )

    b = _bin()
    as_pg(str(b / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    ca, cert, key = make_ca_and_server_cert(root)
    for p in (cert, key, ca):
        shutil.copy(p, data / p.name)
        os.chown(data / p.name, pg.pw_uid, pg.pw_gid)
        os.chmod(data / p.name, 0o600)
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all scram_user 127.0.0.1/32 scram-sha-256\n"
        "hostssl all scram_tls_user 127.0.0.1/32 scram-sha-256\n"
        "host all md5_user 127.0.0.1/32 md5\n"
        "host all clear_user 127.0.0.1/32 password\n"
        "host all postgres 127.0.0.1/32 trust\n"
    )
    with (data / "postgresql.conf").open("a") as f:
        f.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n"
        )
    as_pg(str(b / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start")
    try:
        sql = (
            "SET password_encryption = 'scram-sha-256';"
            "CREATE ROLE scram_user LOGIN PASSWORD 'scram-pw';"
            "CREATE ROLE scram_tls_user LOGIN PASSWORD 'scram-tls-pw';"
            "CREATE ROLE clear_user LOGIN PASSWORD 'clear-pw';"
            "SET password_encryption = 'md5';"
            "CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw';"
        )
        as_pg(
            str(b.parent / "bin" / "psql") if (b / "psql").exists() else "psql",
            "-h",
            str(root),
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        )
        yield Cluster(port=port, ca_file=ca, datadir=data)
    finally:
        with contextlib.suppress(Exception):
            as_pg(str(b / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)
