"""Typed, validated environment for Lumina: every variable is declared once here.

Django settings read this object; a bad value stops start-up with a message
naming the variable (see ``load_env``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from django.core.exceptions import ImproperlyConfigured

from config.envschema import (
    AnyUrl,
    EnvSettings,
    Field,
    NoDecode,
    ValidationError,
    field_validator,
    model_validator,
)

BASE_DIR = Path(__file__).resolve().parent.parent


LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class EventTransport(StrEnum):
    INPROCESS = "inprocess"
    CELERY = "celery"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class EmailBackend(StrEnum):
    CONSOLE = "console"
    SMTP = "smtp"


class SandboxMode(StrEnum):
    BWRAP = "bwrap"  # namespaces + seccomp + rlimits (lumina.tools.sandbox)
    RLIMITS_ONLY = "rlimits_only"  # weaker: rlimits and another user only; operator opt-in


class LocalEmbeddings(StrEnum):
    INT8 = "int8"
    FP32 = "fp32"


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class LuminaEnv(EnvSettings):
    """Process environment. Field names are the variable names (case-insensitive)."""

    env_file = BASE_DIR / ".env"  # the environment wins over it

    lumina_env: Environment = Environment.DEVELOPMENT
    debug: bool = False
    secret_key: str | None = Field(default=None, min_length=32)
    allowed_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1", "localhost", "[::1]"]
    csrf_trusted_origins: Annotated[list[str], NoDecode] = []

    database_url: str | None = None
    lumina_data_dir: Path = BASE_DIR / "var"
    redis_url: AnyUrl | None = None
    celery_broker_url: str | None = None

    lumina_event_transport: EventTransport = EventTransport.INPROCESS
    lumina_event_max_attempts: int = Field(default=10, ge=1, le=100)
    lumina_outbox_relay_interval: float = Field(default=5.0, gt=0, le=3600)

    lumina_host: str = "127.0.0.1"
    lumina_port: int = Field(default=8000, ge=1, le=65535)
    lumina_admin_email: str = "admin@localhost"
    lumina_admin_password: str | None = None

    lumina_log_level: str = "INFO"
    # Unset: console lines in development when stderr is a terminal, JSON otherwise.
    lumina_log_format: LogFormat | None = None
    lumina_metrics_token: str | None = Field(default=None, min_length=16)
    lumina_max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    # "1:<base64 of 32 bytes>,2:<…>": key-encryption keys by version; the highest wraps.
    lumina_master_keys: str | None = None
    lumina_require_staff_mfa: bool | None = None  # default: on in production
    lumina_login_max_failures: int = Field(default=5, ge=1, le=100)
    lumina_login_lockout_seconds: int = Field(default=900, ge=1)
    # The audit chain's signed head: where it is appended (default <data dir>/audit-heads.jsonl;
    # put it on another system) and how often (seconds; 0 exports only on demand).
    lumina_audit_head_file: Path | None = None
    lumina_audit_head_interval: float = Field(default=300.0, ge=0, le=86400)
    # Sessions end after this many seconds without a request, or after the maximum age
    # from sign-in, whichever comes first (NIST SP 800-63B AAL2: 30 min idle, 12 h).
    lumina_session_idle_timeout: int = Field(default=1800, ge=60, le=7 * 86400)
    lumina_session_max_age: int = Field(default=12 * 3600, ge=300, le=30 * 86400)
    # Password reset links: how long one stays valid (seconds), and the address in them.
    lumina_password_reset_timeout: int = Field(default=3600, ge=300, le=7 * 86400)
    lumina_public_url: AnyUrl | None = None

    # Email (password reset links): console in development, smtp in production by default.
    lumina_email_backend: EmailBackend | None = None
    email_host: str = "127.0.0.1"
    email_port: int = Field(default=25, ge=1, le=65535)
    email_host_user: str = ""
    email_host_password: str | None = None
    email_use_tls: bool = False
    email_use_ssl: bool = False
    default_from_email: str = "Lumina <lumina@localhost>"

    # Providers: resilience of calls to AI providers.
    lumina_breaker_failures: int = Field(default=5, ge=1, le=1000)
    lumina_breaker_cooldown: float = Field(default=30.0, gt=0, le=3600)
    lumina_bulkhead_wait: float = Field(default=0.5, ge=0, le=60)
    lumina_provider_retries: int = Field(default=2, ge=0, le=10)
    lumina_provider_retry_backoff: float = Field(default=0.25, gt=0, le=60)
    lumina_provider_retry_max_wait: float = Field(default=5.0, gt=0, le=300)
    lumina_latency_alpha: float = Field(default=0.2, gt=0, le=1)
    # The local provider's all-MiniLM-L6-v2: int8 ONNX, or fp32 (needs requirements-fp32.txt).
    lumina_local_embeddings: LocalEmbeddings = LocalEmbeddings.INT8
    # Non-public addresses/networks Lumina may connect to for provider and identity provider
    # URLs (lumina.kernel.outbound). Unset: loopback in development and test, none in production.
    lumina_outbound_allow: Annotated[list[str] | None, NoDecode] = None

    # Tools: the sandbox for python tools. rlimits_only is weaker (no namespaces, no seccomp)
    # and only ever used when set here; it is logged and shown in /health/ready.
    lumina_sandbox_mode: SandboxMode = SandboxMode.BWRAP
    lumina_sandbox_pool_size: int = Field(default=4, ge=0, le=64)
    lumina_sandbox_python: Path | None = None  # default: this server's base interpreter
    lumina_sandbox_uid: int = Field(default=65534, ge=1)  # used when the server runs as root
    lumina_sandbox_gid: int = Field(default=65534, ge=1)
    # Tools: the programs (absolute paths) an Admin may register as stdio MCP servers. Such a
    # server runs on this host as this server's user, so the operator names them. Unset: none.
    lumina_mcp_stdio_commands: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Tools: runs whose timeout exceeds this answer 202 and run in the background; threads
    # for those runs in the web process (in-process transport); the chat model that
    # summarises results (POST /tools/results/{id}/process), none by default.
    lumina_tools_sync_seconds: float = Field(default=30.0, gt=0, le=3600)
    lumina_tools_async_workers: int = Field(default=4, ge=1, le=256)
    lumina_tools_summary_model: str = Field(default="", max_length=200)

    # UI: realtime document sync (/ws/documents/{id}/). The largest Yjs update or sync
    # message one client may send (bytes), messages per second per connection (a burst of
    # twice that is allowed), clients per document in one server process, and how many
    # appended updates make the room fold them into a snapshot.
    lumina_documents_max_update_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024**2)
    lumina_documents_max_messages_per_second: float = Field(default=100.0, gt=0, le=100_000)
    lumina_documents_max_clients: int = Field(default=200, ge=1, le=100_000)
    lumina_documents_compact_every: int = Field(default=500, ge=10, le=1_000_000)

    _split = field_validator(
        "allowed_hosts",
        "csrf_trusted_origins",
        "lumina_outbound_allow",
        "lumina_mcp_stdio_commands",
        mode="before",
    )(_csv)

    @field_validator("lumina_outbound_allow")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=True)
            except ValueError as exc:
                raise ValueError(
                    f"{entry!r} is not an IP address or CIDR network ({exc}); host names are "
                    "not accepted, as what they resolve to can change"
                ) from None
        return value

    @field_validator("lumina_log_format", mode="before")
    @classmethod
    def _unset_format(cls, value: object) -> object:
        return value or None  # an empty LUMINA_LOG_FORMAT= in .env means "choose"

    @field_validator("lumina_log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator(
        "lumina_audit_head_file", "lumina_public_url", "lumina_email_backend", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgres:// or postgresql:// URL (Lumina needs PostgreSQL)")
        return value or None

    @field_validator("lumina_master_keys")
    @classmethod
    def _keyring(cls, value: str | None) -> str | None:
        if not value:
            return None
        parse_master_keys(value)
        return value

    @model_validator(mode="after")
    def _one_mail_encryption(self) -> LuminaEnv:
        if self.email_use_tls and self.email_use_ssl:
            raise ValueError("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on")
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> LuminaEnv:
        if self.lumina_env is Environment.PRODUCTION:
            if self.debug:
                raise ValueError("DEBUG must be off when LUMINA_ENV=production")
            if not self.secret_key:
                raise ValueError("SECRET_KEY is required when LUMINA_ENV=production")
            if not self.lumina_master_keys:
                raise ValueError("LUMINA_MASTER_KEYS is required when LUMINA_ENV=production")
        return self

    @property
    def is_production(self) -> bool:
        return self.lumina_env is Environment.PRODUCTION

    @property
    def outbound_allow(self) -> tuple[str, ...]:
        """The outbound allow-list in force: as set, else loopback outside production, so
        that `make run` reaches an Ollama or vLLM on the same machine."""
        if self.lumina_outbound_allow is not None:
            return tuple(self.lumina_outbound_allow)
        return () if self.is_production else LOOPBACK_NETWORKS


def parse_master_keys(value: str) -> dict[int, bytes]:
    """``"1:<base64>,2:<base64>"`` to ``{1: key, 2: key}``; each key is 32 bytes (AES-256)."""
    keys: dict[int, bytes] = {}
    for item in value.split(","):
        version, sep, encoded = item.strip().partition(":")
        if not sep or not version.isdigit() or int(version) < 1:
            raise ValueError("entries must look like <version>:<base64 key>, versions from 1")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"key version {version} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"key version {version} must be 32 bytes (AES-256), not {len(key)}")
        if int(version) in keys:
            raise ValueError(f"key version {version} appears twice")
        keys[int(version)] = key
    return keys


def development_master_keys(data_dir: Path) -> str:
    """A per-checkout keyring for development, generated once into the data directory."""
    path = data_dir / "master_keys"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    keyring = "1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    path.touch(mode=0o600)
    path.write_text(keyring)
    return keyring


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{name or 'LUMINA_ENV'}: {message}" for name, message in error.problems)


def load_env() -> LuminaEnv:
    try:
        return LuminaEnv()
    except ValidationError as error:
        raise ImproperlyConfigured(f"Invalid configuration: {_describe(error)}") from None


def development_secret_key(data_dir: Path) -> str:
    """A stable per-checkout key for development, generated once into the data directory."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
