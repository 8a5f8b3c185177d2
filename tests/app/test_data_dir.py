"""Issue 16 point 6: the default data folder is outside the project (platform user data folder, one per
project path); an existing ``./.linkpronto/`` is moved there once, every link surviving; an explicit
``server.data_dir`` is honoured."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from helpers.inproc import InProcessDouble
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for
from linkpronto.config import load_settings
from linkpronto.data_dir import project_data_dir


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LINKPRONTO_SERVER_DATA_DIR", raising=False)
    return tmp_path / "xdg"


def test_default_data_dir_is_outside_the_project_and_one_per_project(tmp_path: Path, xdg: Path) -> None:
    a, b = tmp_path / "clinic-app", tmp_path / "other" / "clinic-app"
    a.mkdir()
    b.mkdir(parents=True)
    da, db = load_settings(cwd=a).data_dir, load_settings(cwd=b).data_dir
    assert da != db and da.name.startswith("clinic-app-") and db.name.startswith("clinic-app-")
    for project, data in ((a, da), (b, db)):
        assert not data.is_relative_to(project)
        assert data.is_relative_to(xdg)
    assert load_settings(cwd=a).data_dir == da  # stable
    assert not (a / ".linkpronto").exists()


def test_explicit_data_dir_is_honoured(tmp_path: Path, xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "linkpronto.toml").write_text('[server]\ndata_dir = ".linkpronto"\n')
    (tmp_path / ".linkpronto").mkdir()
    assert load_settings(cwd=tmp_path).data_dir == (tmp_path / ".linkpronto").resolve()
    assert (tmp_path / ".linkpronto").is_dir()  # not moved: the user asked for it
    monkeypatch.setenv("LINKPRONTO_SERVER_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings(cwd=tmp_path).data_dir == (tmp_path / "elsewhere")


async def test_an_existing_project_folder_is_moved_once_and_every_link_survives(
    tmp_path: Path, xdg: Path, livekit_inproc: InProcessDouble, capsys: pytest.CaptureFixture[str],
) -> None:
    project = tmp_path / "app"
    project.mkdir()
    legacy = project / ".linkpronto"
    settings = settings_for(legacy, livekit_url=livekit_inproc.url)  # 0.2.x: the folder in the project
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        made = [(await lp.admin.post("/api/generate-consultation-token", json={"professionalId": f"p{i}"})).json()
                for i in range(3)]
        assert all(m["success"] for m in made)

    env = {"LINKPRONTO_LIVEKIT_MODE": "external", "LINKPRONTO_LIVEKIT_URL": livekit_inproc.url,
           "LIVEKIT_API_KEY": TEST_KEY, "LIVEKIT_API_SECRET": TEST_SECRET}
    for k, v in env.items():
        os.environ[k] = v
    try:
        loaded = load_settings(cwd=project)
    finally:
        for k in env:
            os.environ.pop(k, None)
    new = project_data_dir(project)
    assert loaded.data_dir == new and not legacy.exists() and (new / "links.db").is_file()
    err = capsys.readouterr().err
    assert str(new) in err and str(legacy) in err  # one console line saying so
    if sys.platform != "win32":
        assert stat.S_IMODE(new.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in new.rglob("*") if f.is_file()
                   and not os.access(f, os.X_OK))
    assert load_settings(cwd=project).data_dir == new and capsys.readouterr().err == ""  # once

    moved = settings_for(new, livekit_url=livekit_inproc.url, public_port=settings.server.public_port)
    async with run_lp(moved) as lp:
        await lp.wait_state("ready", timeout=30)
        for m in made:
            grant = await lp.public.post("/_linkpronto/api/join", json={"token": m["token"]})
            assert grant.status_code == 200 and grant.json()["room"] == m["room"], grant.text


def test_a_folder_that_cannot_be_moved_stays_in_use_with_a_warning(
    tmp_path: Path, xdg: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    project = tmp_path / "app"
    (project / ".linkpronto").mkdir(parents=True)
    xdg.mkdir()
    xdg.chmod(0o500)  # the user data folder is not writable
    try:
        if os.access(xdg, os.W_OK):  # root ignores modes: use a file where the folder must go
            xdg.chmod(0o700)
            (xdg / "linkpronto").write_text("not a folder")
        assert load_settings(cwd=project).data_dir == (project / ".linkpronto")
    finally:
        xdg.chmod(0o700)
    err = capsys.readouterr().err
    assert "could not be moved" in err or "não pôde ser movida" in err, err
