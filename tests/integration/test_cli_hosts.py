"""``pullgate hosts``: the endpoint list containerd would use, as a user runs it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from pullgate.cli.main import main


def _hosts(*argv: str) -> tuple[int, dict[str, Any]]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["hosts", "--output", "json", *argv])
    return code, json.loads(buf.getvalue())


def _urls(doc: dict[str, Any]) -> list[str]:
    return [e["url"] for e in doc["endpoints"]]


def test_image_name_means_docker_hub(tmp_path: Path) -> None:
    code, doc = _hosts("--hosts-dir", str(tmp_path), "nginx")
    assert code == 0
    assert _urls(doc) == ["https://registry-1.docker.io/v2"]


def test_mirror_then_server_with_tls_material(tmp_path: Path) -> None:
    host = tmp_path / "reg.example:5000"
    host.mkdir()
    (host / "ca.crt").write_text("placeholder")
    (host / "hosts.toml").write_text(
        'server = "https://reg.example:5000"\n'
        'ca = "ca.crt"\n'
        '[host."https://mirror.example"]\n'
        '  capabilities = ["pull"]\n'
    )
    code, doc = _hosts("--hosts-dir", str(tmp_path), "reg.example:5000/team/app:v1")
    assert code == 0
    assert _urls(doc) == ["https://mirror.example/v2", "https://reg.example:5000/v2"]
    assert doc["endpoints"][1]["ca"] == [str(host / "ca.crt")]


def test_problems_exit_2(tmp_path: Path) -> None:
    host = tmp_path / "reg.example"
    host.mkdir()
    (host / "hosts.toml").write_text('server = "https://reg.example"\ncapabilities = ["fly"]\n')
    code, doc = _hosts("--hosts-dir", str(tmp_path), "reg.example")
    assert code == 2
    assert doc["problems"]
    # containerd ignores the broken file and pulls from the upstream: so do we (and say so).
    assert _urls(doc) == ["https://reg.example/v2"]


def test_several_roots_like_cri_config_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "_default").mkdir(parents=True)
    (second / "reg.example").mkdir(parents=True)
    (second / "reg.example" / "hosts.toml").write_text('[host."https://only-in-second.example"]\n')
    code, doc = _hosts("--hosts-dir", f"{first}:{second}", "reg.example")
    assert code == 0
    # _default in the earlier root shadows the host directory of the later root.
    assert _urls(doc) == ["https://reg.example/v2"]
