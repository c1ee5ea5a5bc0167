"""``braintumor serve`` wiring: flags and environment reach the app uvicorn is given."""

from __future__ import annotations

import argparse

import pytest
from fastapi.testclient import TestClient

from braintumor.cli import build_parser
from braintumor.serve import command as command_module
from braintumor.serve.settings import API_KEY_ENV


@pytest.fixture
def captured_run(monkeypatch):
    """Replace uvicorn.run: record what it was asked to serve instead of blocking."""
    import uvicorn

    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    return calls


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """serve_command exports settings for --workers; make sure they are undone afterwards
    (monkeypatch only restores variables it has seen, so set them before deleting)."""
    for name in (API_KEY_ENV, command_module.SERVE_CONFIG_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_serve_defaults_to_loopback_and_passes_settings(serve_bundle, captured_run, monkeypatch,
                                                        capsys, scan_png):
    monkeypatch.setenv(API_KEY_ENV, "env-key")
    args = _parse("--model", str(serve_bundle), "--max-upload-mb", "0.5",
                  "--cors-origin", "http://viewer.local")
    assert command_module.serve_command(args) == 0
    (positional, kwargs), = captured_run
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8000
    assert kwargs["server_header"] is False
    app = positional[0]
    with TestClient(app) as client:
        health = client.get("/health").json()
        assert health["api_key_required"] is True
        assert health["max_upload_bytes"] == 512 * 1024
        assert client.post("/v1/predict", files={"file": ("s.png", scan_png)}).status_code == 401
        ok = client.post("/v1/predict", files={"file": ("s.png", scan_png)},
                         headers={"X-API-Key": "env-key", "Origin": "http://viewer.local"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://viewer.local"
    err = capsys.readouterr().err
    assert "Research use only" in err and "http://127.0.0.1:8000/" in err


def test_serve_warns_when_exposed_without_a_key(serve_bundle, captured_run, capsys):
    assert command_module.serve_command(_parse("--model", str(serve_bundle),
                                           "--host", "0.0.0.0")) == 0
    assert "without an API key" in capsys.readouterr().err


def test_serve_with_workers_uses_the_env_factory(serve_bundle, captured_run, scan_png):
    args = _parse("--model", str(serve_bundle), "--workers", "3", "--api-key", "k")
    assert command_module.serve_command(args) == 0
    (positional, kwargs), = captured_run
    assert positional == ("braintumor.serve.command:app_from_env",)
    assert kwargs["factory"] is True and kwargs["workers"] == 3
    # what each worker process would build:
    with TestClient(command_module.app_from_env()) as client:
        r = client.post("/v1/predict", files={"file": ("s.png", scan_png)},
                        headers={"X-API-Key": "k"})
        assert r.status_code == 200 and r.json()["model"] == "braintumor-net"


def test_serve_rejects_a_non_positive_upload_limit(captured_run, capsys):
    assert command_module.serve_command(_parse("--max-upload-mb", "0")) == 2
    assert captured_run == []
    assert "must be positive" in capsys.readouterr().err
