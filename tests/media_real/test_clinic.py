"""The clinic topology itself (fixtures/clinic.py): who reaches whom, the VPS's sshd, the Chromium
guard, and nothing left behind. The media tests build on these facts, so they are checked first."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fixtures.clinic import Clinic
from fixtures.netns import Host, leftover_namespaces

pytestmark = pytest.mark.real_livekit

CONNECT = ("import socket,sys\n"
           "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
           "except OSError as e:\n print(e); sys.exit(1)\n")


def reaches(host: Host, ip: str, port: int) -> bool:
    return host.run([sys.executable, "-c", CONNECT, ip, str(port)], timeout=20).returncode == 0


def test_the_4g_phone_reaches_the_vps_and_nothing_else(clinic: Clinic) -> None:
    sshd = clinic.sshd
    assert sshd is not None and sshd.running
    assert reaches(clinic.phone_4g, clinic.vps_carrier_ip, sshd.port)
    assert reaches(clinic.wifi_phone, clinic.vps_carrier_ip, sshd.port)  # through the router
    assert reaches(clinic.laptop, clinic.vps_wan_ip, sshd.port)  # where the laptop's ssh -R goes
    # The vps does not forward: the laptop's LAN (here: its ICE/TCP port's address) is out of reach.
    assert not reaches(clinic.phone_4g, clinic.laptop_ip, 22)
    assert not reaches(clinic.phone_4g, clinic.lan_prefix + ".1", 22)
    for name, host in clinic.hosts.items():
        routes = host.run(["ip", "-4", "route", "show", "default"]).stdout
        assert (name == "router") == (not routes.strip()), (name, routes)


def test_chromium_is_never_run_in_a_namespace_without_a_default_route(clinic: Clinic, tmp_path: Path) -> None:
    assert clinic.chromium(clinic.wifi_phone, tmp_path).is_file()
    with pytest.raises(RuntimeError, match="no default route"):
        clinic.chromium(clinic.router, tmp_path)


def test_a_clinic_leaves_nothing_behind(tmp_path: Path) -> None:
    with Clinic("lv", workdir=tmp_path) as other:
        names = [h.ns for h in other.hosts.values()]
        sshd = other.sshd
        assert sshd is not None and sshd.running
        pid = sshd.pid
    import psutil

    assert not set(names) & set(leftover_namespaces())
    assert pid is not None and not psutil.pid_exists(pid)
