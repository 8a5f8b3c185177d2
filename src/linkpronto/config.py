"""Settings: flags > ``LINKPRONTO_<SECTION>_<KEY>`` env > ecosystem env > ``linkpronto.toml`` > defaults.

All of it is decided in :func:`load_settings`; nothing else reads the environment for settings.
The ecosystem's own variable names (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``,
``NGROK_AUTHTOKEN``, ``CLOUDFLARED_TOKEN``) count as env, below linkpronto's own names.
Secrets are :class:`pydantic.SecretStr`: their ``repr`` is ``'**********'`` and no error prints them.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text

CONFIG_FILE_NAME = "linkpronto.toml"
ENV_PREFIX = "LINKPRONTO_"

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``"24h"`` → 86400.0; numbers are seconds. Raises ``ValueError`` with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 24h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        unit = m.group(2).lower() if m.group(2) else None
        seconds = float(m.group(1)) * _UNIT_S[unit]
    else:
        raise ValueError("expected a duration such as 30s, 15m, 24h or 7d")
    if seconds <= 0:
        raise ValueError("expected a duration greater than zero, such as 30s, 15m, 24h or 7d")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
PortOrZero = Annotated[int, Field(ge=0, le=65535)]

TunnelProviderName = Literal["auto", "ngrok", "ngrok-agent", "cloudflared", "ssh", "static", "lan"]
LivekitMode = Literal["local", "external", "cloud"]
StackMode = Literal["always-on", "on-demand"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(_Section):
    admin_port: Port = 7800
    public_port: Port = 7801
    data_dir: Path = Path(".linkpronto")
    # Where the public listener binds. Empty: 0.0.0.0 for the `lan` provider (phones connect to it
    # directly), 127.0.0.1 otherwise (only the tunnel reaches it).
    public_bind: str = ""
    # Empty: SQLite in data_dir. Any SQLAlchemy URL (e.g. postgresql+psycopg://...) for several instances.
    database_url: SecretStr = SecretStr("")
    # Where failed-join counters live: "memory://" for one instance, "redis://host:6379" for several.
    rate_limit_storage: str = "memory://"
    # Failed joins one client address may make before it gets 429.
    join_failures_per_minute: Annotated[int, Field(ge=1)] = 10
    # Where the admin API listens. Keep 127.0.0.1 unless the admin API must be reached from other
    # machines (``linkpronto serve --admin-bind``); it always requires the admin token.
    admin_bind: str = "127.0.0.1"
    # Host headers the admin API accepts besides 127.0.0.1:<port> and localhost:<port>
    # (e.g. "linkpronto-1:7800" inside a container network); in env, comma-separated.
    admin_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # `serve`: the admin token of this instance instead of the one shared through the store.
    admin_token: SecretStr = SecretStr("")
    # `serve`: a key kept outside the database (env) that seals the deployment's shared secrets in
    # it, so the database alone never reveals a link token. Same value on every instance.
    secrets_key: SecretStr = SecretStr("")

    @field_validator("admin_hosts", mode="before")
    @classmethod
    def _admin_hosts(cls, v: object) -> object:
        if isinstance(v, str):
            return [h.strip() for h in v.split(",") if h.strip()]
        return v


class LivekitSettings(_Section):
    mode: LivekitMode = "local"
    binary: str = ""
    version: str = "1.13.9"
    port: Port = 7880
    tcp_port: Port = 7881
    udp_port: Port = 7882
    url: str = ""
    api_key: str = ""
    api_secret: SecretStr = SecretStr("")
    node_ip: str = ""
    turn_url: str = ""
    # rtc.stun_servers for the config linkpronto renders ("host:port" each). Empty: LiveKit's own
    # default (Google's public STUN servers). Clinics with their own STUN/TURN, and the tests, set it.
    stun_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("stun_servers", mode="before")
    @classmethod
    def _stun_servers(cls, v: object) -> object:
        if isinstance(v, str):
            v = [part.strip() for part in v.split(",") if part.strip()]
        if isinstance(v, list):
            for item in v:
                if not isinstance(item, str) or not re.match(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$", item):
                    raise ValueError(f"expected host:port, got {item!r}")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^(wss?|https?)://", v):
            raise ValueError("expected a URL starting with ws://, wss://, http:// or https://")
        return v.rstrip("/")


class TunnelSettings(_Section):
    provider: TunnelProviderName = "auto"
    ngrok_authtoken: SecretStr = SecretStr("")
    ngrok_domain: str = ""
    ngrok_agent_api: str = "http://127.0.0.1:4040"
    ngrok_binary: str = ""
    static_url: str = ""
    cloudflared_token: SecretStr = SecretStr("")
    cloudflared_hostname: str = ""
    cloudflared_binary: str = ""
    ssh_target: str = ""
    ssh_identity: str = ""
    ssh_remote_port: PortOrZero = 0
    ssh_remote_bind: str = ""
    ssh_public_url: str = ""
    ssh_forward_media: bool = False
    # Extra ssh options; in env, one shell-like string: "-o StrictHostKeyChecking=yes -o Port=2222".
    ssh_options: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("ssh_options", mode="before")
    @classmethod
    def _ssh_options(cls, v: object) -> object:
        if isinstance(v, str):
            return shlex.split(v, posix=sys.platform != "win32")
        return v

    @field_validator("static_url")
    @classmethod
    def _static_url(cls, v: str) -> str:
        if v and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected a URL such as https://consultas.example.com")
        return v.rstrip("/")

    @field_validator("ssh_target")
    @classmethod
    def _ssh_target(cls, v: str) -> str:
        if v and not re.match(r"^([^@\s]+@)?[^@:\s]+(:\d{1,5})?$", v):
            raise ValueError("expected user@host or user@host:port")
        return v


class AppSettings(_Section):
    command: str = ""
    port: PortOrZero = 0
    link_path: str = "/c/{token}"
    restart_on_url_change: bool = True
    health_path: str = "/"
    # Where the app runs (your Next.js project); empty = the directory `linkpronto up` runs in.
    cwd: Path | None = None
    # Presence events (patient waiting / in call / ended) are POSTed here, signed (linkpronto.events).
    events_url: str = ""
    # HMAC key of those callbacks; empty = one generated per install (<data_dir>/events-secret).
    events_secret: SecretStr = SecretStr("")
    # App routes (path prefixes or globs) a public request reaches only from a browser that opened a
    # live link's page through the gateway (linkpronto.gateway.guard). Empty: nothing is guarded.
    protected_routes: list[str] = []

    @field_validator("events_url")
    @classmethod
    def _events_url(cls, v: str) -> str:
        if v and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected a URL such as http://127.0.0.1:3000/api/linkpronto-events")
        return v

    @field_validator("protected_routes")
    @classmethod
    def _protected_routes(cls, v: list[str]) -> list[str]:
        own = ("/_linkpronto", "/.well-known/linkpronto")
        bad = [p for p in v if not p.startswith("/") or p.lower().startswith(own)]
        if bad:
            raise ValueError(f"expected app paths such as /api/livekit/token (not under /_linkpronto/): {bad}")
        return v

    @field_validator("link_path")
    @classmethod
    def _link_path(cls, v: str) -> str:
        if not v.startswith("/") or v.count("{token}") != 1:
            raise ValueError("expected a path starting with / containing {token} once, e.g. /c/{token}")
        return v

    def argv(self) -> list[str]:
        """The app command as an argv list (split once, here; never run through a shell)."""
        return shlex.split(self.command, posix=sys.platform != "win32")


class LinksSettings(_Section):
    default_ttl: Duration = 24 * 3600.0
    max_uses: Annotated[int, Field(ge=0)] = 0
    # Short: a revoked link's token must stop working soon (LiveKit refreshes the token of a
    # participant who is connected; this one is only needed to connect).
    join_token_ttl: Duration = 60.0
    # Expired, revoked and used-up links (with their device checks) are deleted this long after
    # they ended (LGPD: keep health-related data no longer than needed).
    retention: Duration = 30 * 86400.0
    # How often a running linkpronto purges what is past retention.
    purge_interval: Duration = 3600.0
    # The app's own WhatsApp wording for shortMessage/whatsappDeepLink ({url} required; {name} = the
    # professional id, {type} = the consultation type). Empty: linkpronto's sentence.
    message_template: str = Field(default="", max_length=1000, pattern=r"^$|\{url\}")


def _duration_or_off(value: object) -> float:
    if value in (0, "0", "off", "false", False):
        return 0.0
    return parse_duration(value)


class VerifySettings(_Section):
    """``max_age``: a passed ladder counts as proof this long. ``interval``: while the stack is up the
    ladder is re-run when the proof is this old — shorter than ``max_age``, so a proof is always there
    and a link on a ready stack never waits for a timer."""

    max_age: Duration = 10.0
    interval: Duration = 7.0
    #: The media rung's own cadence (media/rung.py); "0" or "off" turns the rung off (the configuration's
    #: judgement, ``measured: false``, as before the rung).
    media_interval: Annotated[float, BeforeValidator(_duration_or_off)] = 60.0
    # The page rung (linkpronto.pagecheck): a headless Chromium opens the app's link page as a phone
    # would. "auto": find one (chromium, google-chrome; Chrome/Edge on Windows); a path; "off".
    page_browser: str = "auto"
    # How often the page rung runs while it passes (a failing page is retried sooner).
    page_interval: Duration = 120.0

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float, info: ValidationInfo) -> float:
        max_age = info.data.get("max_age")
        if max_age is not None and v >= max_age:
            raise ValueError(
                f"a duration shorter than verify.max_age ({max_age:g} s), so the proof is renewed before it ages out"
            )
        return v


class StackSettings(_Section):
    mode: StackMode = "always-on"
    idle_timeout: Duration = 30 * 60.0
    install: bool = True
    # Base URL that replaces https://github.com for binary downloads (a company mirror, or tests).
    download_mirror: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    livekit: LivekitSettings = Field(default_factory=LivekitSettings)
    tunnel: TunnelSettings = Field(default_factory=TunnelSettings)
    app: AppSettings = Field(default_factory=AppSettings)
    links: LinksSettings = Field(default_factory=LinksSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    stack: StackSettings = Field(default_factory=StackSettings)

    # The TOML document, set on a subclass by load_settings (a class-level input, not a setting).
    toml_source_data: ClassVar[dict[str, Any]] = {}

    # Set by load_settings: where the file came from (for messages), not a setting itself.
    config_path: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_data = cls.toml_source_data
        return (
            init_settings,
            env_settings,
            _EcosystemEnvSource(settings_cls),
            _DictSource(settings_cls, toml_data),
        )

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def redacted(self) -> dict[str, Any]:
        """The settings as JSON-able data with every secret shown as ``**********``."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data


class _DictSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


ECOSYSTEM_ENV: dict[str, tuple[str, str]] = {
    "LIVEKIT_URL": ("livekit", "url"),
    "LIVEKIT_API_KEY": ("livekit", "api_key"),
    "LIVEKIT_API_SECRET": ("livekit", "api_secret"),
    "NGROK_AUTHTOKEN": ("tunnel", "ngrok_authtoken"),
    "CLOUDFLARED_TOKEN": ("tunnel", "cloudflared_token"),
    "TUNNEL_TOKEN": ("tunnel", "cloudflared_token"),
}


class _EcosystemEnvSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, dict[str, Any]] = {}
        for env_name, (section, key) in ECOSYSTEM_ENV.items():
            value = os.environ.get(env_name)
            if value:
                out.setdefault(section, {}).setdefault(key, value)
        return out


SECRET_KEYS = frozenset(
    {
        "livekit.api_secret",
        "tunnel.ngrok_authtoken",
        "tunnel.cloudflared_token",
        "server.database_url",
        "server.admin_token",
        "server.secrets_key",
    }
)


def _allowed_for(loc: tuple[Any, ...], err: Any) -> str:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    msg = str(err.get("msg", ""))
    return msg.removeprefix("Value error, ")


def _invalid(exc: ValidationError, source_hint: str) -> ConfigInvalid:
    parts_pt: list[str] = []
    parts_en: list[str] = []
    keys: list[str] = []
    for err in exc.errors():
        loc = tuple(str(x) for x in err["loc"])
        key = ".".join(loc)
        keys.append(key)
        if err["type"] == "extra_forbidden":
            parts_pt.append(f"chave desconhecida '{key}'")
            parts_en.append(f"unknown key '{key}'")
            continue
        value = "**********" if key in SECRET_KEYS else repr(err.get("input"))
        allowed = _allowed_for(loc, err)
        parts_pt.append(f"'{key}' = {value} não é válido (permitido: {allowed})")
        parts_en.append(f"'{key}' = {value} is not valid (allowed: {allowed})")
    env_names = ", ".join(f"{ENV_PREFIX}{k.replace('.', '_').upper()}" for k in keys)
    return ConfigInvalid(
        Text(
            "Configuração inválida: " + "; ".join(parts_pt), "Invalid configuration: " + "; ".join(parts_en)
        ),
        fix=Text(
            f"Corrija {', '.join(keys)} em {source_hint}, na variável {env_names} ou na opção correspondente.",
            f"Correct {', '.join(keys)} in {source_hint}, the variable {env_names} or the matching option.",
        ),
        keys=keys,
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(
            Text(f"O arquivo {path} não é TOML válido: {exc}", f"The file {path} is not valid TOML: {exc}"),
            fix=Text(
                "Corrija a sintaxe do arquivo (veja o README).", "Fix the file's syntax (see the README)."
            ),
        ) from exc
    except OSError as exc:
        raise ConfigInvalid(
            Text(f"Não consegui ler {path}: {exc.strerror}", f"Could not read {path}: {exc.strerror}"),
            fix=Text("Confira o caminho passado em --config.", "Check the path given to --config."),
        ) from exc


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build the settings once. ``overrides`` are the CLI flags as ``{section: {key: value}}``."""
    base = cwd or Path.cwd()
    path: Path | None
    if config_file is not None:
        path = config_file if config_file.is_absolute() else base / config_file
        if not path.is_file():
            raise ConfigInvalid(
                Text(
                    f"O arquivo de configuração {path} não existe.", f"The config file {path} does not exist."
                ),
                fix=Text("Confira o caminho passado em --config.", "Check the path given to --config."),
            )
    else:
        candidate = base / CONFIG_FILE_NAME
        path = candidate if candidate.is_file() else None
    toml_data = read_toml(path) if path else {}
    unknown = sorted(set(toml_data) - set(Settings.model_fields) - {"config_path"})
    if unknown:
        raise ConfigInvalid(
            Text(
                f"Seção desconhecida em {path}: {', '.join(unknown)}",
                f"Unknown section in {path}: {', '.join(unknown)}",
            ),
            fix=Text(
                "Use apenas as seções server, livekit, tunnel, app, links, verify e stack.",
                "Use only the sections server, livekit, tunnel, app, links, verify and stack.",
            ),
        )
    init: dict[str, Any] = {}
    for section, values in (overrides or {}).items():
        clean = {k: v for k, v in values.items() if v is not None}
        if clean:
            init[section] = clean
    hint = str(path) if path else CONFIG_FILE_NAME
    try:
        settings = _with_file(toml_data)(**init)
    except ValidationError as exc:
        raise _invalid(exc, hint) from exc
    if "data_dir" not in settings.server.model_fields_set:
        # Not configured: the platform's user data folder for this project, outside it (data_dir.py).
        from linkpronto.data_dir import default_data_dir

        settings.server.data_dir = default_data_dir(base)
    elif not settings.server.data_dir.is_absolute():
        settings.server.data_dir = (base / settings.server.data_dir).resolve()
    settings.config_path = path
    if settings.server.admin_port == settings.server.public_port:
        raise ConfigInvalid(
            Text(
                f"server.admin_port e server.public_port não podem ser iguais ({settings.server.admin_port}).",
                f"server.admin_port and server.public_port cannot be the same ({settings.server.admin_port}).",
            ),
            fix=Text("Escolha duas portas diferentes.", "Choose two different ports."),
        )
    return settings


def _with_file(toml_data: dict[str, Any]) -> type[Settings]:
    """A Settings class whose lowest source (above defaults) is this TOML document."""
    return type("Settings", (Settings,), {"toml_source_data": toml_data})


class _ExplicitSettings(Settings):
    """Settings from explicit values only: no env, no file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _validate(data: dict[str, Any]) -> Settings:
    return _ExplicitSettings(**data)


def defaults(data_dir: Path | None = None, **sections: dict[str, Any]) -> Settings:
    """Settings from explicit values only (no env, no file): for tests and embedding."""
    data: dict[str, Any] = {k: dict(v) for k, v in sections.items()}
    if data_dir is not None:
        data.setdefault("server", {})["data_dir"] = data_dir
    try:
        return _validate(data)
    except ValidationError as exc:
        raise _invalid(exc, "defaults()") from exc
