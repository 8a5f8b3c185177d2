"""``linkpronto serve``: production settings, the deployment's shared secrets, the admin API's hosts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from helpers.inproc import InProcessDouble
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for
from linkpronto import keys
from linkpronto.config import defaults
from linkpronto.deployment import shared_secrets
from linkpronto.errors import ConfigInvalid
from linkpronto.links.store import LinkStore, sqlite_url
from linkpronto.production import production_settings, split_bind


def _prod(tmp_path: Path, **sections: dict[str, object]) -> object:
    base: dict[str, dict[str, object]] = {
        "tunnel": {"provider": "static", "static_url": "https://consultas.example"},
        "livekit": {"mode": "external", "url": "http://lk:7880", "api_key": TEST_KEY, "api_secret": TEST_SECRET},
    }
    for k, v in sections.items():
        base.setdefault(k, {}).update(v)
    return defaults(tmp_path, **base)


def test_production_settings_refuse_what_serve_cannot_do(tmp_path: Path) -> None:
    ok = production_settings(_prod(tmp_path))  # type: ignore[arg-type]
    assert ok.stack.install is False and ok.stack.mode == "always-on"
    with pytest.raises(ConfigInvalid) as bad:
        production_settings(
            _prod(tmp_path, tunnel={"provider": "auto", "static_url": ""}, livekit={"mode": "local"},
                  app={"command": "npm run dev"})  # type: ignore[arg-type]
        )
    assert bad.value.context["keys"] == ["tunnel.static_url", "livekit.mode", "app.command"]
    assert "--public-url" in bad.value.message("en") and bad.value.fix("en")
    with pytest.raises(ConfigInvalid) as keyless:
        production_settings(_prod(tmp_path, livekit={"api_key": "", "api_secret": ""}))  # type: ignore[arg-type]
    assert keyless.value.context["keys"] == ["livekit.api_key"]


def test_split_bind() -> None:
    assert split_bind("0.0.0.0:7800", "admin-bind") == ("0.0.0.0", 7800)
    assert split_bind("10.0.0.5", "admin-bind") == ("10.0.0.5", None)
    assert split_bind("[::]:7801", "public-bind") == ("::", 7801)
    assert split_bind(None, "admin-bind") == (None, None)
    for bad in ("host:port", "h:70000"):
        with pytest.raises(ConfigInvalid):
            split_bind(bad, "admin-bind")


def test_instances_share_the_deployment_secrets_through_the_store(tmp_path: Path, database_url: str) -> None:
    url = database_url or sqlite_url(tmp_path / "shared")
    (tmp_path / "shared").mkdir()
    # Instance 1 ran `linkpronto up` on this machine before: its link key is adopted, so its links
    # keep their URLs after the move to `serve`.
    local = keys.load_or_create(tmp_path / "one")
    token_enc = local.encrypt_token("tok-from-up")
    a_store, b_store = LinkStore(url), LinkStore(url)
    try:
        a = shared_secrets(a_store, production_settings(_prod(tmp_path / "one")))  # type: ignore[arg-type]
        b = shared_secrets(b_store, production_settings(_prod(tmp_path / "two")))  # type: ignore[arg-type]
        assert a.instance_id == b.instance_id and a.instance_id.startswith("dep_")
        assert a.probe_mac("n") == b.probe_mac("n") == local.probe_mac("n")
        assert b.decrypt_token(token_enc) == "tok-from-up"
        assert a.admin_token == b.admin_token
        assert (tmp_path / "two" / "admin-token").read_text("ascii") == b.admin_token
        assert (a.livekit_api_key, a.livekit_api_secret) == (TEST_KEY, TEST_SECRET)
        # An instance-specific admin token replaces the shared one for that instance only.
        c = shared_secrets(
            b_store, production_settings(_prod(tmp_path / "three", server={"admin_token": "x" * 40}))  # type: ignore[arg-type]
        )
        assert c.admin_token == "x" * 40 and c.probe_mac("n") == a.probe_mac("n")
    finally:
        a_store.close()
        b_store.close()
    assert json.loads((tmp_path / "one" / "secrets.json").read_text())["link_key"]  # untouched


async def test_admin_api_accepts_the_configured_hosts_only_with_the_token(
    tmp_path: Path, livekit_inproc: InProcessDouble
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    port = settings.server.admin_port
    settings.server.admin_hosts = [f"linkpronto-1:{port}"]
    async with run_lp(settings) as lp:
        async with httpx.AsyncClient(base_url=lp.running.admin_url) as c:
            host = {"Host": f"linkpronto-1:{port}"}
            res = await c.get("/api/status", headers={**host, "Authorization": f"Bearer {lp.secrets.admin_token}"})
            assert res.status_code == 200
            assert (await c.get("/api/status", headers=host)).status_code == 401
            assert (await c.get("/api/status", headers={"Host": f"linkpronto-2:{port}"})).status_code == 403


def test_serve_command_refuses_a_setup_it_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from linkpronto.cli import main

    for name in list(os.environ):
        if name.startswith(("LINKPRONTO_", "LIVEKIT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LINKPRONTO_LANG", "en")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ended:
        main(["serve", "--livekit", "local"])
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert "error[CONFIG_INVALID]" in err and "--public-url" in err and "fix:" in err
    with pytest.raises(SystemExit) as usage:
        main(["serve", "--admin-bind", "0.0.0.0:notaport"])
    assert usage.value.code == 1 and "error[CONFIG_INVALID]" in capsys.readouterr().err


def test_secrets_key_seals_the_shared_secrets_in_the_database(tmp_path: Path) -> None:
    from sqlalchemy import text

    url = sqlite_url(tmp_path)
    store = LinkStore(url)
    try:
        key = {"secrets_key": "k" * 40}
        a = shared_secrets(store, production_settings(_prod(tmp_path / "a", server=key)))  # type: ignore[arg-type]
        with store.engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT name, value FROM linkpronto_secrets")).all())
        assert set(stored) == {"deployment_id", "instance_secret", "link_key", "admin_token"}
        assert all(v.startswith("sealed:") for v in stored.values())
        assert a.link_key.decode() not in str(stored) and a.admin_token not in str(stored)
        b = shared_secrets(store, production_settings(_prod(tmp_path / "b", server=key)))  # type: ignore[arg-type]
        assert b.probe_mac("n") == a.probe_mac("n") and b.link_key == a.link_key
        with pytest.raises(ConfigInvalid) as wrong:
            shared_secrets(store, production_settings(_prod(tmp_path / "c", server={"secrets_key": "x" * 40})))  # type: ignore[arg-type]
        assert wrong.value.context["keys"] == ["server.secrets_key"]
        with pytest.raises(ConfigInvalid) as missing:
            shared_secrets(store, production_settings(_prod(tmp_path / "d")))  # type: ignore[arg-type]
        assert "LINKPRONTO_SERVER_SECRETS_KEY" in (missing.value.fix("en") or "")
    finally:
        store.close()
