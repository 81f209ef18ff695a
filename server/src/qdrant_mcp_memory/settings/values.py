"""The values settings are read from and checked with: list settings, secrets in files, URLs and bind
addresses, the default folders, and the source of the empty values that mean something."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def _split_list(value: object) -> object:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def default_local_path() -> Path:
    """Where embedded Qdrant keeps its data when neither URL nor path is set."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "qdrant-mcp" / "qdrant"


def default_model_cache() -> Path:
    """Where fastembed keeps downloaded models when FASTEMBED_CACHE_PATH is unset: a user cache
    that survives reboots (fastembed's own default is in the temp folder)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qdrant-mcp-memory" / "fastembed"


# Settings whose empty value means something (the unnamed vector; a payload without a metadata
# object), where every other empty setting counts as unset.
EMPTY_MEANS_SOMETHING = ("QDRANT_VECTOR_NAME", "QDRANT_METADATA_KEY")


class EmptyValues(PydanticBaseSettingsSource):
    """The empty values of EMPTY_MEANS_SOMETHING, which env_ignore_empty drops: the environment's,
    or the env file's when the environment does not set the variable at all."""

    def __init__(self, settings_cls: type[BaseSettings], env_file: object) -> None:
        super().__init__(settings_cls)
        self.env_file = env_file if isinstance(env_file, str | Path) and Path(env_file).is_file() else None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[object, str, bool]:
        return None, field_name, False  # unused: __call__ reads the few names itself

    def __call__(self) -> dict[str, object]:
        file = dotenv_values(self.env_file) if self.env_file is not None else {}
        found: dict[str, object] = {}
        for name in EMPTY_MEANS_SOMETHING:
            value = os.environ[name] if name in os.environ else file.get(name)
            if value == "":
                found[name] = ""
        return found


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable from this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _check_url(name: str, url: str, *, https_unless_loopback: bool, query: bool) -> None:
    """An absolute http(s) URL without a fragment; https unless it names this machine (RFC 8414 §2, 9728 §2)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}={url!r} must be an absolute http(s) URL")
    if parts.fragment or (parts.query and not query):
        raise ValueError(f"{name}={url!r} must not have a {'fragment' if parts.fragment else 'query'}")
    if https_unless_loopback and parts.scheme != "https" and not is_loopback(parts.hostname):
        raise ValueError(f"{name}={url!r} must use https (plain http is accepted for localhost only)")


def _secret_from_file(value: SecretStr | None, path: Path | None, name: str) -> SecretStr | None:
    if path is None:
        return value
    if value is not None:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"{name}_FILE: {path} is empty")
    return SecretStr(text)
