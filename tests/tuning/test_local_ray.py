"""The local Ray that `gender tune` starts without --address: what listens, and where.

The README lists every kind of Ray process that opens a port on a local run and says they
listen on 127.0.0.1 only; this test starts Ray exactly as `gender tune` does, lists the
sockets every one of its processes listens on, and holds each to that."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import ray

from tuning.cluster import start_ray

README = Path(__file__).parents[2] / "README.md"


def _kind(p: psutil.Process, me: int) -> str:
    """The README's name for a Ray process."""
    if p.pid == me:
        return "driver"
    binary = {"gcs_server": "GCS", "raylet": "raylet"}.get(p.name())
    if binary:
        return binary
    title = " ".join(p.cmdline())  # Ray's Python processes retitle themselves ray::...
    for key, kind in (("DashboardAgent", "dashboard agent"),
                      ("dashboard/agent.py", "dashboard agent"),
                      ("RuntimeEnvAgent", "runtime-env agent"),
                      ("runtime_env/agent", "runtime-env agent"),
                      ("log_monitor", "log monitor"),
                      ("autoscaler/_private/monitor.py", "autoscaler monitor"),
                      ("dashboard/dashboard.py", "dashboard")):
        if key in title:
            return kind
    return "worker" if title.startswith("ray::") else p.name()


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _ray_processes(session: str) -> list[psutil.Process]:
    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    for p in psutil.process_iter(["cmdline"]):  # daemonised ones name the session folder
        if session in " ".join(p.info["cmdline"] or []):
            found[p.pid] = p
    return [me, *found.values()]


def _listening(procs: list[psutil.Process]) -> list[tuple[str, str, int]]:
    """(kind, address, port) of every TCP socket listening and UDP socket bound."""
    me, out = psutil.Process().pid, []
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == 2 and c.laddr):
                    out.append((_kind(p, me), c.laddr.ip, c.laddr.port))
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture
def local_ray():
    assert not ray.is_initialized()
    before = {(c.laddr.ip, c.laddr.port) for c in psutil.Process().net_connections("inet")
              if c.status == psutil.CONN_LISTEN}
    start_ray(None, quiet=True)
    try:
        session = ray._private.worker._global_node.get_session_dir_path()
        # Two tasks make Ray start workers, which listen too.
        ray.get([ray.remote(lambda: 1).remote() for _ in range(2)])
        yield session, before
    finally:
        ray.shutdown()


def test_every_port_of_a_local_run_listens_on_loopback_only(local_ray):
    session, before = local_ray
    procs = _ray_processes(session)
    def listening():
        return [s for s in _listening(procs) if (s[1], s[2]) not in before or s[0] != "driver"]

    deadline = time.time() + 60
    while time.time() < deadline:  # agents open their ports a little after Ray starts
        if {"GCS", "raylet", "dashboard agent", "runtime-env agent", "worker"} <= \
                {k for k, _, _ in listening()}:
            break
        time.sleep(1)
    time.sleep(3)  # and the metrics servers a little later still
    sockets = listening()
    exposed = [s for s in sockets if not _loopback(s[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"
    kinds = {k for k, _, _ in sockets}
    assert {"GCS", "raylet", "driver", "worker"} <= kinds, sockets
    # The README names every kind of process found listening, and says where.
    text = README.read_text()
    section = text[text.index("What listens on a local run"):][:3000]
    for kind in kinds:
        assert re.search(rf"\b{re.escape(kind)}\b", section, re.I), f"README omits {kind}"
    assert "127.0.0.1" in section


def test_a_run_without_address_starts_its_own_ray_beside_a_dead_head(monkeypatch):
    # A `ray start` head that died (SIGKILL, a reboot) leaves Ray's "current cluster" file
    # naming it; plain ray.init() would join it and retry for many minutes.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    root = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))  # short: Ray's socket paths
    (root / "ray").mkdir()
    (root / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{dead}")
    monkeypatch.setenv("RAY_TMPDIR", str(root))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    t0 = time.time()
    try:
        start_ray(None, quiet=True)
        node = ray._private.worker._global_node
        assert node.is_head() and node.node_ip_address == "127.0.0.1"
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    assert time.time() - t0 < 120
