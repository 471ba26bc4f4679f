"""Where the target credential comes from, fetched at connect time and never logged.

``static`` lives in the config, ``env`` in the gateway's environment, ``file`` in a file
(a mounted Kubernetes secret, a Vault agent sink). Fetching at connect time means a
rotated secret is picked up by the next session without a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wardgate.config import CredentialConfig
from wardgate.core.errors import TargetUnavailableError


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str | None

    def __repr__(self) -> str:  # never print the secret, even by accident
        state = "set" if self.password else "none"
        return f"Credential(username={self.username!r}, password=<{state}>)"


def resolve_credential(target: str, cfg: CredentialConfig) -> Credential:
    if cfg.source == "static":
        return Credential(cfg.username, cfg.password)
    if cfg.source == "env":
        assert cfg.password_env is not None
        value = os.environ.get(cfg.password_env)
        if value is None:
            raise TargetUnavailableError(
                f"credential for target {target!r} is missing: environment variable "
                f"{cfg.password_env} is not set on the gateway"
            )
        return Credential(cfg.username, value)
    assert cfg.password_file is not None
    try:
        value = cfg.password_file.read_text().rstrip("\r\n")
    except OSError as e:
        raise TargetUnavailableError(
            f"credential for target {target!r} is unreadable: {cfg.password_file}: {e.strerror}"
        ) from e
    return Credential(cfg.username, value)
