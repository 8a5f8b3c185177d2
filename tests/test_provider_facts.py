"""One module per provider owns its facts, and the rest of the code asks it (issue 17, point 4)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from linkpronto import doctor, platform, verify
from linkpronto.config import defaults
from linkpronto.livekit import local, remote
from linkpronto.supervise import env
from linkpronto.tunnels import cloudflared, ngrok, ssh, static


def test_children_never_inherit_any_provider_s_credentials() -> None:
    names = env.secret_names()
    assert {*ngrok.CREDENTIAL_ENV, *cloudflared.CREDENTIAL_ENV, *remote.CREDENTIAL_ENV} <= names
    base = {name: "x" for name in names} | {"PATH": "/bin", "LINKPRONTO_ADMIN_TOKEN": "t"}
    assert env.child_environment(base=base) == {"PATH": "/bin"}


@pytest.mark.parametrize(
    ("tunnel", "name", "words"),
    [({"provider": "ngrok"}, "tunnel.ngrok", "authtoken"),
     ({"provider": "ssh"}, "tunnel.ssh", "ssh_target"),
     ({"provider": "static"}, "tunnel.static", "static_url")],
)
def test_doctor_reports_what_the_provider_module_says_it_needs(
    tmp_path: Path, tunnel: dict[str, str], name: str, words: str
) -> None:
    settings = defaults(data_dir=tmp_path, tunnel=tunnel)
    errors = [f for f in doctor.check_tunnel(settings) if f.level == "error"]
    assert errors and errors[0].name == name and words in errors[0].message.en and errors[0].fix
    module = {"ngrok": ngrok, "ssh": ssh, "static": static}[tunnel["provider"]]
    assert [e.text for e in module.unmet_requirements(settings.tunnel)][:1] == [errors[0].message]


def test_satisfied_requirements_report_nothing(tmp_path: Path) -> None:
    settings = defaults(data_dir=tmp_path, tunnel={"provider": "ngrok", "ngrok_authtoken": "tok"})
    assert ngrok.unmet_requirements(settings.tunnel) == []
    assert ssh.unmet_requirements(defaults(data_dir=tmp_path, tunnel={"ssh_target": "me@vps"}).tunnel,
                                  which=lambda _n: "/usr/bin/ssh") == []


def test_remote_livekit_needs_its_url_and_keys(tmp_path: Path) -> None:
    lk = defaults(data_dir=tmp_path, livekit={"mode": "cloud", "url": ""}).livekit
    (err,) = remote.unmet_requirements(lk)
    assert all(n in err.text.en for n in (remote.URL_ENV, remote.API_KEY_ENV, remote.API_SECRET_ENV))


@pytest.mark.parametrize(("name", "os_name", "expected"), [
    ("livekit-server", "windows", "livekit-server.exe"), ("cloudflared", "linux", "cloudflared"),
    ("cloudflared.EXE", "windows", "cloudflared.EXE"), ("cloudflared", "darwin", "cloudflared"),
])
def test_one_exe_rule(name: str, os_name: str, expected: str) -> None:
    assert platform.executable_name(name, os_name) == expected
    assert cloudflared.exe_name() == platform.executable_name("cloudflared")


def test_the_ladder_asks_ngrok_and_cloudflared_for_their_warning_pages() -> None:
    assert set(verify.WARNING_MARKERS) == {*ngrok.WARNING_PAGE_MARKERS, *cloudflared.WARNING_PAGE_MARKERS}
    assert verify.SKIP_WARNING == ngrok.SKIP_WARNING_HEADER


async def test_one_livekit_health_check_for_the_supervisor_and_the_remote_modes() -> None:
    answers = {"/": httpx.Response(200, text="OK"), "/rtc/validate": httpx.Response(401, text="invalid token")}
    transport = httpx.MockTransport(lambda r: answers[r.url.path])
    async with httpx.AsyncClient(transport=transport) as client:
        supervised = await local.livekit_health(client, "http://127.0.0.1:7880", "k", "s" * 32)
        ok, detail = await remote.check_livekit(client, "http://127.0.0.1:7880", "k", "s" * 32)
    assert not supervised.ok and not ok
    assert supervised.detail == detail.en == "LiveKit refused our API key/secret (401)"
