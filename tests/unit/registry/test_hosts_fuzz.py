"""Property tests: any bytes in hosts.toml give a HostsConfig (problems recorded), never a crash.

Two shapes of hostile input: arbitrary bytes, and a valid hosts.toml mutated by inserting,
deleting or replacing a few characters. Whatever happens, ``load_hosts`` returns a config whose
last endpoint is the server; a file tomllib cannot parse is always reported as a problem.
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pullgate.registry.hosts import filter_endpoints, load_hosts, request_url
from pullgate.registry.hosts.report import hosts_json, render_hosts
from pullgate.registry.model import Capability, HostsConfig
from pullgate.registry.reference import parse_reference

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SEED = """server = "https://up.example:5000/prefix"
capabilities = ["pull", "resolve"]
ca = ["ca.pem", "../x.pem"]
client = [["c.cert", "c.key"], "both.pem"]
skip_verify = false
dial_timeout = "1s"
[header]
  authorization = ["a", "b"]
[host."http://127.0.0.1:5050"]
  capabilities = ["pull", "resolve", "referrers"]
  override_path = true
  [host."http://127.0.0.1:5050".header]
    x-a = "1"
[host.'https://m.example/v2/x']
  client = "c.pem"
"""

TOKENS = st.sampled_from(
    [
        '"',
        "'",
        "[",
        "]",
        "{",
        "}",
        "=",
        ",",
        ".",
        "\n",
        "#",
        "\\",
        '"""',
        "host",
        "5",
        "true",
        "ca",
        "http",
        ":",
        "/",
        "\x00",
        "\u00e9",
        "[[",
        "]]",
        "ms",
    ]
)


def _load(data: bytes) -> HostsConfig:
    root = Path(tempfile.mkdtemp(prefix="pullgate-fuzz-"))
    try:
        (root / "docker.io").mkdir()
        (root / "docker.io" / "hosts.toml").write_bytes(data)
        config = load_hosts("docker.io", [root])
        # Everything downstream of the config must cope too.
        hosts_json(config)
        render_hosts(config)
        ref = parse_reference("nginx")
        for cap in Capability:
            for endpoint in filter_endpoints(config, cap):
                request_url(endpoint, ref, "manifests", "latest", {"artifactType": "x"})
        return config
    finally:
        shutil.rmtree(root)


def _parses(data: bytes) -> bool:
    try:
        tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return False
    return True


def _check(data: bytes, config: HostsConfig) -> None:
    assert config.endpoints
    assert config.endpoints[-1].is_server
    assert not any(e.is_server for e in config.endpoints[:-1])
    if data and not _parses(data):
        assert config.source == "docker-style"
        assert config.problems


def test_seed_is_valid() -> None:
    config = _load(SEED.encode())
    assert config.source == "hosts.toml"
    assert [e.url for e in config.endpoints] == [
        "http://127.0.0.1:5050",
        "https://m.example/v2/x/v2",
        "https://up.example:5000/prefix/v2",
    ]


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data, _load(data))


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(SEED)), st.integers(0, 3), TOKENS), min_size=1, max_size=4
    )
)
def test_mutated_toml(edits: list[tuple[int, int, str]]) -> None:
    text = SEED
    for position, delete, token in edits:
        text = text[:position] + token + text[position + delete :]
    data = text.encode("utf-8", "surrogatepass")
    _check(data, _load(data))


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text_in_values(value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for template in (
        'server = "{}"\n',
        '[host."{}"]\n',
        'dial_timeout = "{}"\n',
        '[host."https://m"]\n  capabilities = ["{}"]\n',
        'ca = "{}"\n',
    ):
        data = template.format(escaped).encode("utf-8", "surrogatepass")
        _check(data, _load(data))
