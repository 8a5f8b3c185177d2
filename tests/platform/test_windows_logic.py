"""The Windows branch's pure logic (flags, argv building), tested on every OS."""

from __future__ import annotations

import pytest

from linkpronto.errors import BinaryNotFound, ConfigInvalid
from linkpronto.platform import _windows


def fake_which(found: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda name: found.get(name)


def test_creation_flags_are_a_new_process_group_sharing_the_console() -> None:
    flags = _windows.creation_flags()
    assert flags & _windows.CREATE_NEW_PROCESS_GROUP
    assert not flags & 0x08000000  # CREATE_NO_WINDOW would make CTRL_BREAK impossible
    assert not flags & 0x00000008  # nor DETACHED_PROCESS


def test_the_tree_asks_for_those_flags() -> None:
    assert _windows.ProcessTree().popen_kwargs() == {"creationflags": _windows.CREATE_NEW_PROCESS_GROUP}


def test_npx_resolves_to_npx_cmd() -> None:
    which = fake_which({"npx": r"C:\Program Files\nodejs\npx.cmd"})
    assert _windows.build_argv(["npx", "next", "dev", "-p", "3001"], which) == [
        r"C:\Program Files\nodejs\npx.cmd", "next", "dev", "-p", "3001"]


@pytest.mark.parametrize("arg", ["a&b", "50%", "x|y", "<in", "out>", "say \"hi\"", "^", "wow!", "a\nb"])
def test_batch_files_refuse_arguments_cmd_would_interpret(arg: str) -> None:
    which = fake_which({"npm": r"C:\nodejs\npm.CMD"})
    with pytest.raises(ConfigInvalid) as caught:
        _windows.build_argv(["npm", "run", arg], which)
    assert "cmd.exe" in caught.value.text.en


def test_real_executables_take_any_argument() -> None:
    which = fake_which({"node": r"C:\nodejs\node.exe"})
    assert _windows.build_argv(["node", "-e", "console.log('a&b|c')"], which)[2] == "console.log('a&b|c')"


def test_missing_program_is_binary_not_found() -> None:
    with pytest.raises(BinaryNotFound):
        _windows.build_argv(["livekit-server"], fake_which({}))
    with pytest.raises(ConfigInvalid):
        _windows.build_argv([], fake_which({}))


def test_is_batch() -> None:
    assert _windows.is_batch(r"C:\x\npx.cmd") and _windows.is_batch("run.BAT")
    assert not _windows.is_batch("node.exe") and not _windows.is_batch("cmd")


def test_win32_calls_are_inert_elsewhere() -> None:
    tree = _windows.ProcessTree()
    tree.terminate()  # no pid yet: nothing to do
    assert not tree.alive()
    assert _windows.set_parent_death_signal() is False
