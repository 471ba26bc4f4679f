"""The one YAML configuration file, validated with pydantic.

Errors name the bad key and the line it is on, because an operator reading
``targets.demo.port: Input should be a valid integer (line 14)`` fixes it in seconds.
Relative paths in the file resolve against the file's own directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wardgate.authn.oidc_config import OidcIssuerConfig
from wardgate.core.errors import ConfigError
from wardgate.masking.config import MaskingConfig
from wardgate.policy.config import PolicyConfig
from wardgate.recording.config import RecordingConfig

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str | int | float) -> float:
    """Seconds from ``90s``, ``15m``, ``1h``, ``90d`` or a bare number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h, 90d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


class ListenConfig(_Strict):
    postgres: str | None = "127.0.0.1:15432"
    mysql: str | None = "127.0.0.1:13306"
    api: str | None = "127.0.0.1:8080"

    @field_validator("postgres", "mysql", "api")
    @classmethod
    def _hostport(cls, v: str | None) -> str | None:
        if v is not None:
            _split_hostport(v)
        return v

    def address(self, name: Literal["postgres", "mysql", "api"]) -> tuple[str, int] | None:
        v = getattr(self, name)
        return None if v is None else _split_hostport(v)


class ClientTlsConfig(_Strict):
    """TLS the gateway offers to clients. No files: a self-signed pair is made on first start."""

    cert_file: Path | None = None
    key_file: Path | None = None
    require: bool = False  # refuse clients that do not ask for TLS


class UpstreamTlsConfig(_Strict):
    """Mirrors libpq's sslmode so operators can reason about it the same way."""

    mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None


class CredentialConfig(_Strict):
    """The credential the gateway holds for a target; clients never see it."""

    source: Literal["static", "env", "file"] = "static"
    username: str
    password: str | None = None  # source=static
    password_env: str | None = None  # source=env
    password_file: Path | None = None  # source=file

    @model_validator(mode="after")
    def _source_fields(self) -> CredentialConfig:
        if self.source == "env" and not self.password_env:
            raise ValueError("credential.source 'env' needs password_env")
        if self.source == "file" and not self.password_file:
            raise ValueError("credential.source 'file' needs password_file")
        return self


class TargetConfig(_Strict):
    kind: Literal["postgres", "mysql"] = "postgres"
    host: str = "127.0.0.1"
    port: int | None = None
    database: str  # the database name on the target server
    credential: CredentialConfig
    tls: UpstreamTlsConfig = Field(default_factory=UpstreamTlsConfig)
    connect_timeout: float = 10.0
    description: str = ""

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 5432 if self.kind == "postgres" else 3306


class TokenConfig(_Strict):
    default_ttl: str = "1h"
    max_ttl: str = "30d"

    @field_validator("default_ttl", "max_ttl")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class IdentityConfig(_Strict):
    tokens: TokenConfig = Field(default_factory=TokenConfig)
    oidc: list[OidcIssuerConfig] = Field(default_factory=list)


class StateConfig(_Strict):
    url: str = "sqlite:///wardgate-state.db"
    directory: Path = Path(".wardgate")  # keys, generated certificates


class LimitsConfig(_Strict):
    max_message_bytes: int = 64 * 1024 * 1024
    max_statement_bytes: int = 16 * 1024 * 1024
    startup_timeout: float = 15.0


class SessionsConfig(_Strict):
    """Limits that end sessions which outlive their scope."""

    max_duration: str | None = "12h"
    idle_timeout: str | None = None
    check_interval: str = "1s"
    # End a session when the token/JWT it was opened with expires (Teleport ends
    # sessions at certificate expiry for the same reason: access must not outlive it).
    end_on_credential_expiry: bool = True

    @field_validator("max_duration", "idle_timeout", "check_interval")
    @classmethod
    def _dur(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class MySqlConfig(_Strict):
    """The MySQL/MariaDB listener (docs/mysql.md).

    Tokens reach the gateway as ``mysql_clear_password``: without TLS they cross the
    network readable by anyone on the path, so a plaintext login needs an explicit yes.
    """

    allow_cleartext_without_tls: bool = False
    # When plaintext logins are allowed: only from loopback clients (127.0.0.0/8, ::1).
    cleartext_loopback_only: bool = True
    # LOAD DATA LOCAL INFILE lets the *server* ask the client for a file of its choosing.
    # Off: such statements are refused with ERROR 1148 and never reach the target.
    allow_local_infile: bool = False


class ApiConfig(_Strict):
    admin_groups: list[str] = Field(default_factory=lambda: ["wardgate-admins"])


class GatewayConfig(_Strict):
    listen: ListenConfig = Field(default_factory=ListenConfig)
    tls: ClientTlsConfig = Field(default_factory=ClientTlsConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    mysql: MySqlConfig = Field(default_factory=MySqlConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    source_path: Path | None = Field(default=None, exclude=True)

    def resolve_paths(self, base: Path) -> None:
        """Relative paths in the file mean relative to the file, not to the caller's cwd."""

        def fix(p: Path | None) -> Path | None:
            if p is None or p.is_absolute():
                return p
            return (base / p).resolve()

        self.state.directory = fix(self.state.directory) or self.state.directory
        self.tls.cert_file = fix(self.tls.cert_file)
        self.tls.key_file = fix(self.tls.key_file)
        if self.state.url.startswith("sqlite:///") and not self.state.url.startswith("sqlite:////"):
            rel = self.state.url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                self.state.url = f"sqlite:///{(base / rel).resolve()}"
        for t in self.targets.values():
            t.tls.ca_file = fix(t.tls.ca_file)
            t.tls.cert_file = fix(t.tls.cert_file)
            t.tls.key_file = fix(t.tls.key_file)
            t.credential.password_file = fix(t.credential.password_file)


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers on which line each mapping key was written."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _strip_lines(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_lines(v) for k, v in obj.items() if k != "__lines__"}
    if isinstance(obj, list):
        return [_strip_lines(v) for v in obj]
    return obj


def _line_of(raw: Any, loc: tuple[int | str, ...]) -> int | None:
    line = None
    node = raw
    for part in loc:
        if isinstance(node, dict):
            lines = node.get("__lines__", {})
            if part in lines:
                line = lines[part]
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return line


def _expand_env(text: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` in the file, so secrets can stay out of it."""

    def sub(m: re.Match[str]) -> str:
        name, _, default = m.group(1).partition(":-")
        return os.environ.get(name, default)

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?)\}", sub, text)


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    try:
        raw = yaml.load(_expand_env(text), Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        cfg = GatewayConfig.model_validate(_strip_lines(raw))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_of(raw, loc)
            where = f" (line {line})" if line else ""
            problems.append(f"  {key}{where}: {err['msg']}")
        raise ConfigError(f"{path}: invalid configuration:\n" + "\n".join(problems)) from None
    cfg.source_path = path.resolve()
    cfg.resolve_paths(path.resolve().parent)
    return cfg
