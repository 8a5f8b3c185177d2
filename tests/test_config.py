"""Configuration: precedence flags > LINKPRONTO_* env > ecosystem env > linkpronto.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkpronto.config import load_settings, parse_duration
from linkpronto.errors import ConfigInvalid

ENV_NAMES = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "NGROK_AUTHTOKEN",
    "CLOUDFLARED_TOKEN",
    "TUNNEL_TOKEN",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LINKPRONTO_") or name in ENV_NAMES:
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "linkpronto.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_match_the_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    s = load_settings(cwd=tmp_path / "proj")
    assert (s.server.admin_port, s.server.public_port) == (7800, 7801)
    # 0.3.0: outside the project (issue 16), one folder per project path.
    assert s.server.data_dir.parent == tmp_path / "xdg" / "linkpronto" / "projects"
    assert (s.livekit.mode, s.livekit.port) == ("local", 7880)
    assert s.tunnel.provider == "auto"
    assert s.app.link_path == "/c/{token}" and s.app.restart_on_url_change is True
    assert (s.links.default_ttl, s.links.max_uses, s.links.join_token_ttl) == (86400, 0, 60)
    assert (s.verify.max_age, s.verify.interval) == (10, 7)


@pytest.mark.parametrize("interval", ["10s", "30s"])
def test_verify_interval_must_be_shorter_than_max_age(tmp_path: Path, interval: str) -> None:
    # The proof is re-run before it ages out, so the re-run period must be below max_age.
    write(tmp_path, f'[verify]\nmax_age = "10s"\ninterval = "{interval}"\n')
    with pytest.raises(ConfigInvalid) as e:
        load_settings(cwd=tmp_path)
    assert "verify.interval" in e.value.message("en") and "verify.max_age" in e.value.message("en")
    assert "verify.interval" in e.value.message("pt-BR")


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        '[server]\nadmin_port = 7900\npublic_port = 7901\n[livekit]\nmode = "external"\nurl = "ws://file:7880"\n'
        '[links]\ndefault_ttl = "2h"\n',
    )
    s = load_settings(cwd=tmp_path)
    assert (s.server.admin_port, s.server.public_port, s.livekit.mode, s.links.default_ttl) == (
        7900,
        7901,
        "external",
        7200,
    )
    monkeypatch.setenv("LINKPRONTO_SERVER_PUBLIC_PORT", "8001")
    monkeypatch.setenv("LINKPRONTO_LIVEKIT_MODE", "cloud")
    s = load_settings(cwd=tmp_path)
    assert (s.server.admin_port, s.server.public_port, s.livekit.mode) == (7900, 8001, "cloud")
    s = load_settings(cwd=tmp_path, overrides={"livekit": {"mode": "local"}, "server": {"public_port": None}})
    assert s.livekit.mode == "local"  # the flag wins
    assert s.server.public_port == 8001  # an absent flag (None) does not hide env
    assert s.livekit.url == "ws://file:7880"  # other keys of the section still come from the file


def test_ecosystem_env_names_are_honoured_below_linkpronto_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[livekit]\napi_key = "from-file"\n')
    monkeypatch.setenv("LIVEKIT_URL", "wss://demo.livekit.cloud")
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIeco")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "eco-secret")
    monkeypatch.setenv("NGROK_AUTHTOKEN", "ngrok-token")
    s = load_settings(cwd=tmp_path)
    assert s.livekit.url == "wss://demo.livekit.cloud"
    assert s.livekit.api_key == "APIeco"  # env over file
    assert s.livekit.api_secret.get_secret_value() == "eco-secret"
    assert s.tunnel.ngrok_authtoken.get_secret_value() == "ngrok-token"
    monkeypatch.setenv("LINKPRONTO_LIVEKIT_API_KEY", "APIown")
    assert load_settings(cwd=tmp_path).livekit.api_key == "APIown"


def test_explicit_config_file(tmp_path: Path) -> None:
    other = tmp_path / "conf" / "x.toml"
    other.parent.mkdir()
    other.write_text("[server]\nadmin_port = 7111\n")
    assert load_settings(other, cwd=tmp_path).server.admin_port == 7111
    with pytest.raises(ConfigInvalid) as e:
        load_settings(tmp_path / "missing.toml", cwd=tmp_path)
    assert "missing.toml" in e.value.message("en")


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ('[livekit]\nmode = "docker"', "livekit.mode", "'local', 'external' or 'cloud'"),
        ('[tunnel]\nprovider = "localtunnel"', "tunnel.provider", "'auto'"),
        ("[server]\nadmin_port = 70000", "server.admin_port", "less than or equal to 65535"),
        ('[server]\npublic_port = "abc"', "server.public_port", "integer"),
        ('[links]\ndefault_ttl = "soon"', "links.default_ttl", "duration such as 30s"),
        ('[links]\njoin_token_ttl = "-5m"', "links.join_token_ttl", "duration"),
        ("[links]\nmax_uses = -1", "links.max_uses", "greater than or equal to 0"),
        ('[verify]\nmax_age = "0s"', "verify.max_age", "greater than zero"),
        ('[app]\nlink_path = "/c/"', "app.link_path", "{token}"),
        ('[tunnel]\nstatic_url = "consultas.example.com"', "tunnel.static_url", "https://"),
        ('[tunnel]\nssh_target = "user@host:port:x"', "tunnel.ssh_target", "user@host"),
        ('[livekit]\nurl = "localhost:7880"', "livekit.url", "ws://"),
        ('[stack]\nmode = "sometimes"', "stack.mode", "always-on"),
        ("[server]\nunknown_key = 1", "server.unknown_key", "unknown key"),
    ],
)
def test_every_invalid_value_names_key_value_and_allowed(tmp_path: Path, toml: str, key: str, allowed: str) -> None:
    write(tmp_path, toml)
    with pytest.raises(ConfigInvalid) as e:
        load_settings(cwd=tmp_path)
    err = e.value
    assert err.code == "CONFIG_INVALID"
    assert key in err.message("en") and key in err.message("pt-BR")
    assert allowed in err.message("en")
    assert err.fix("en") and key in (err.fix("en") or "")


def test_invalid_env_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKPRONTO_VERIFY_INTERVAL", "often")
    with pytest.raises(ConfigInvalid) as e:
        load_settings(cwd=tmp_path)
    assert "verify.interval" in e.value.message("en")
    assert "'often'" in e.value.message("en")
    assert "LINKPRONTO_VERIFY_INTERVAL" in (e.value.fix("en") or "")


def test_invalid_toml_syntax_and_unknown_section(tmp_path: Path) -> None:
    write(tmp_path, "[server\nadmin_port = 1")
    with pytest.raises(ConfigInvalid) as e:
        load_settings(cwd=tmp_path)
    assert "TOML" in e.value.message("en")
    write(tmp_path, "[servers]\nadmin_port = 1")
    with pytest.raises(ConfigInvalid) as e:
        load_settings(cwd=tmp_path)
    assert "servers" in e.value.message("en")


def test_same_admin_and_public_port_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "[server]\nadmin_port = 7000\npublic_port = 7000")
    with pytest.raises(ConfigInvalid):
        load_settings(cwd=tmp_path)


def test_secrets_never_appear_in_repr_dump_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "super-secret-value-1234567890"
    monkeypatch.setenv("LIVEKIT_API_SECRET", secret)
    monkeypatch.setenv("NGROK_AUTHTOKEN", secret + "-ngrok")
    s = load_settings(cwd=tmp_path)
    assert secret not in repr(s) and secret not in str(s)
    assert secret not in str(s.redacted())
    # An invalid secret-typed value is reported without its value.
    monkeypatch.setenv("LINKPRONTO_SERVER_DATABASE_URL", secret)
    monkeypatch.setenv("LINKPRONTO_LIVEKIT_MODE", "bad")
    with pytest.raises(ConfigInvalid) as e:
        load_settings(cwd=tmp_path)
    assert secret not in str(e.value.to_problem()) and secret not in repr(e.value)


def test_durations() -> None:
    assert parse_duration("24h") == 86400
    assert parse_duration("15m") == 900
    assert parse_duration("250ms") == 0.25
    assert parse_duration(30) == 30
    for bad in ("", "1y", True, "h"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_app_command_is_split_into_argv_never_a_shell_string(tmp_path: Path) -> None:
    s = load_settings(cwd=tmp_path, overrides={"app": {"command": 'npx next dev -p 3001 --hostname "0.0.0.0"'}})
    assert s.app.argv() == ["npx", "next", "dev", "-p", "3001", "--hostname", "0.0.0.0"]


def test_ssh_options_from_env_is_a_shell_like_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKPRONTO_TUNNEL_SSH_OPTIONS", '-o "UserKnownHostsFile=/tmp/a b" -o IdentitiesOnly=yes')
    s = load_settings(cwd=tmp_path)
    assert s.tunnel.ssh_options == ["-o", "UserKnownHostsFile=/tmp/a b", "-o", "IdentitiesOnly=yes"]
    write(tmp_path, '[tunnel]\nssh_options = ["-o", "Port=2222"]')
    monkeypatch.delenv("LINKPRONTO_TUNNEL_SSH_OPTIONS")
    assert load_settings(cwd=tmp_path).tunnel.ssh_options == ["-o", "Port=2222"]
