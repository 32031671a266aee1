"""The test Docker engine leaves no bridge interface on the host.

A bridge network is an interface in the host's namespace. dockerd stopped with the network
still defined leaves it there, and once docker's address pools all overlap such leftovers it
refuses every new network: after about fifteen sessions on one machine, the nself test failed
in setup with "could not find an available, non-overlapping IPv4 address pool". Real dockerd
processes, real interfaces (`ip -j link`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess

import pytest

from drkit.infra.wait import wait_for
from tests.integration.docker_engine import (
    ADDRESS_POOL,
    DockerEngine,
    remove_orphan_bridges,
    start_daemon,
    stop_engine,
)

pytestmark = pytest.mark.integration


def bridges() -> dict[str, list[str]]:
    """Bridge interfaces and their IPv4 addresses (`ip -j -4` gives {} for the others)."""
    argv = ["ip", "-j", "-4", "addr", "show", "type", "bridge"]
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    links = [link for link in json.loads(shown.stdout or "[]") if "ifname" in link]
    return {link["ifname"]: [a["local"] for a in link.get("addr_info", [])] for link in links}


def new_network(engine: DockerEngine, name: str) -> str:
    network_id = engine.docker("network", "create", "--driver", "bridge", name).stdout.strip()
    bridge = f"br-{network_id[:12]}"
    addresses = bridges()[bridge]
    assert addresses and all(ipaddress.ip_address(a) in ADDRESS_POOL for a in addresses), addresses
    return bridge


def test_a_stopped_engine_removes_its_networks_bridges() -> None:
    engine = start_daemon()
    try:
        bridge = new_network(engine, "cleanup_network")
    finally:
        stop_engine(engine)
    assert bridge not in bridges()


def test_a_killed_engines_bridge_is_removed_and_a_live_engines_is_kept() -> None:
    killed = start_daemon()
    try:
        orphan = new_network(killed, "orphan_network")
    finally:
        assert killed.proc is not None
        os.killpg(killed.proc.pid, signal.SIGKILL)
        killed.proc.wait(timeout=60)
        stop_engine(killed)  # its dockerd is gone: nothing answers, the directory goes
    assert orphan in bridges(), "the premise: a killed dockerd leaves its bridge"
    live = start_daemon()
    try:
        kept = new_network(live, "live_network")
        remove_orphan_bridges()
        wait_for(lambda: orphan not in bridges(), timeout=30, what=f"{orphan} to be removed")
        assert kept in bridges()
    finally:
        stop_engine(live)
    assert kept not in bridges()
