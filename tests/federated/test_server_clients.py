"""A real deployment on this machine: a server and 3 site processes over Flower's gRPC on
127.0.0.1, and a site whose settings differ from the server's refused with a clear error."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("flwr", reason="flwr not installed: pip install -e '.[federated]'")

from braintumor.models import load_bundle  # noqa: E402
from tests.conftest import make_dataset  # noqa: E402

COMMON = ["--image-size", "32", "--batch-size", "8", "--num-threads", "1", "--seed", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "braintumor", "federated", *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_server_and_three_clients_complete_two_rounds(tmp_path, cache_root):
    sites = [make_dataset(tmp_path / f"site-{i}", n_per_class=6, size=48,
                          splits=("Training",), seed=i + 1) for i in range(3)]
    val = make_dataset(tmp_path / "server-val", n_per_class=3, size=48, splits=("Training",),
                       seed=7)
    address = f"127.0.0.1:{_free_port()}"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        with (logs / "server.txt").open("w") as log:
            server = _start(["server", "--address", address, "--rounds", "2",
                             "--min-fit-clients", "3", "--local-epochs", "1",
                             "--val-data", str(val), "--out", str(tmp_path / "run"),
                             "--round-timeout", "120", *COMMON], log)
        procs.append(server)
        for i, site in enumerate(sites):
            with (logs / f"client-{i}.txt").open("w") as log:
                procs.append(_start(["client", "--data", str(site), "--address", address,
                                     "--name", f"hospital-{i}", "--val-fraction", "0.25",
                                     *COMMON], log))
        rc = server.wait(timeout=240)
        client_rcs = [p.wait(timeout=60) for p in procs[1:]]
    finally:
        _stop(procs)
    output = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.iterdir()))
    assert rc == 0, output
    assert client_rcs == [0, 0, 0], output
    rounds = json.loads((tmp_path / "run" / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1, 2]
    for r in rounds[1:]:
        assert r["sites_ok"] == 3 and r["failures"] == 0, r
        assert sorted(s["site"] for s in r["sites"]) == ["hospital-0", "hospital-1",
                                                         "hospital-2"]
        assert r["bytes_total"] > 0 and 0 <= r["val_accuracy"] <= 1
        assert all("val_accuracy" in s for s in r["sites"])  # each site's own validation
    bundle = load_bundle(tmp_path / "run" / "bundle")
    fed = bundle.card["federated"]
    assert fed["sites"] == ["hospital-0", "hospital-1", "hospital-2"] and fed["rounds"] == 2
    assert bundle.card["metrics"]["validation"]["images"] == 12


def test_a_client_with_another_image_size_is_refused_clearly(tmp_path, cache_root):
    site = make_dataset(tmp_path / "site", n_per_class=4, size=48, splits=("Training",))
    address = f"127.0.0.1:{_free_port()}"
    procs = []
    try:
        with (tmp_path / "server.txt").open("w") as log:
            procs.append(_start(["server", "--address", address, "--rounds", "1",
                                 "--min-fit-clients", "1", "--out", str(tmp_path / "run"),
                                 *COMMON], log))
        client = subprocess.run(
            [sys.executable, "-m", "braintumor", "federated", "client", "--data", str(site),
             "--address", address, "--image-size", "48", "--batch-size", "8",
             "--val-fraction", "0.25", "--num-threads", "1"],
            capture_output=True, text=True, timeout=180)
    finally:
        _stop(procs)
    assert client.returncode == 3, client.stderr[-3000:]
    assert "image size: server 32 px, site 48 px" in client.stderr


def test_server_refuses_a_public_address_without_tls():
    from braintumor.federated.server import check_address

    with pytest.raises(ValueError, match="clear text"):
        check_address("0.0.0.0:9092", tls=False)
    check_address("0.0.0.0:9092", tls=True)
    check_address("127.0.0.1:9092", tls=False)
    check_address("[::1]:9092", tls=False)
