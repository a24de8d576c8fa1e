"""The daemon config file: every key, every bad value, all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.config import (
    ApiConfig,
    DaemonConfig,
    InconclusiveAction,
    Mode,
    Requirement,
    StatementSettings,
    VerifierPlatforms,
    load_config,
    parse_config,
)
from pullgate.errors import ConfigError, Reason

SOURCE = Path("/etc/pullgate/config.toml")

FULL = b"""
trust_dir = "/etc/pullgate/trust"
hosts_dir = "/etc/containerd/certs.d:/etc/docker/certs.d"
platform = "linux/arm/v7"
reload_debounce = 0.5

[api]
socket = "/run/pg/api.sock"
socket_mode = 0o600

[cri]
socket = "/run/pg/cri.sock"
socket_mode = "0660"
upstream = "unix:///run/containerd/containerd.sock"

[metrics]
address = "[::1]:9000"

[cache]
max_entries = 50
max_ttl = 60
negative_ttl = 2.5
resolve_ttl = 1.5

[registry]
config_json = "/root/.docker/config.json"
connect_timeout = 1
read_timeout = 2.0
max_manifest_bytes = 1024
max_envelope_bytes = 2048

[verification]
max_signatures = 7
timeout = 9.5
crl_cache_dir = "/var/cache/pg"
allow_symlinks = false

[statements."prod-images"]
require = "index"
on_inconclusive = "allow"
mode = "audit"

[statements.dev]
require = "either"
"""


def _problems(data: bytes, source: Path = SOURCE) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source)
    assert info.value.reason is Reason.CONFIG
    assert all(problem.startswith(f"{source}: ") for problem in info.value.problems)
    return info.value.problems


def _keys(problems: tuple[str, ...], source: Path = SOURCE) -> list[str]:
    """The key each problem names (the text between the file name and the next ': ')."""
    return [p.removeprefix(f"{source}: ").split(": ", 1)[0] for p in problems]


def test_empty_document_gives_defaults() -> None:
    config = parse_config(b"", SOURCE)
    assert config == DaemonConfig(source=SOURCE)
    assert config.cri is None


def test_every_key_is_read() -> None:
    config = parse_config(FULL, SOURCE)
    assert config.source == SOURCE
    assert config.trust_dir == Path("/etc/pullgate/trust")
    assert config.hosts_dirs == (Path("/etc/containerd/certs.d"), Path("/etc/docker/certs.d"))
    assert config.platform == "linux/arm/v7"
    assert config.reload_debounce == 0.5
    assert config.api == ApiConfig(socket=Path("/run/pg/api.sock"), socket_mode=0o600)
    assert config.cri is not None
    assert config.cri.socket == Path("/run/pg/cri.sock")
    assert config.cri.socket_mode == 0o660
    assert config.cri.upstream == "unix:///run/containerd/containerd.sock"
    assert config.metrics.address == "[::1]:9000"
    assert not config.metrics.allow_non_loopback
    assert (config.cache.max_entries, config.cache.max_ttl, config.cache.negative_ttl) == (
        50,
        60.0,
        2.5,
    )
    assert config.cache.resolve_ttl == 1.5
    assert config.registry.config_json == Path("/root/.docker/config.json")
    assert config.registry.connect_timeout == 1.0
    assert config.registry.read_timeout == 2.0
    assert config.registry.max_manifest_bytes == 1024
    assert config.registry.max_envelope_bytes == 2048
    assert config.verification.max_signatures == 7
    assert config.verification.timeout == 9.5
    assert config.verification.crl_cache_dir == Path("/var/cache/pg")
    assert config.verification.allow_symlinks is False
    assert config.statements["prod-images"] == StatementSettings(
        require=Requirement.INDEX, on_inconclusive=InconclusiveAction.ALLOW, mode=Mode.AUDIT
    )
    assert config.settings_for("dev").require is Requirement.EITHER
    assert config.settings_for("dev").mode is Mode.ENFORCE
    assert config.settings_for("other") == StatementSettings()


def test_relative_paths_resolve_against_the_config_directory() -> None:
    config = parse_config(
        b'trust_dir = "trust"\nhosts_dir = "certs.d:../more"\n'
        b'[registry]\nconfig_json = "docker.json"\n[verification]\ncrl_cache_dir = "crl"\n',
        Path("/srv/pg/config.toml"),
    )
    assert config.trust_dir == Path("/srv/pg/trust")
    assert config.hosts_dirs == (Path("/srv/pg/certs.d"), Path("/srv/pg/../more"))
    assert config.registry.config_json == Path("/srv/pg/docker.json")
    assert config.verification.crl_cache_dir == Path("/srv/pg/crl")


def test_relative_config_path_is_made_absolute_without_resolving_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "..2026_11_23"
    real.mkdir()
    (real / "config.toml").write_bytes(b'trust_dir = "trust"\n')
    (tmp_path / "config.toml").symlink_to("..2026_11_23/config.toml")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("config.toml"))
    assert config.trust_dir == tmp_path / "trust"


def test_image_verifier_platforms() -> None:
    assert DaemonConfig().image_verifier.platforms is VerifierPlatforms.ALL
    config = parse_config(b'[image_verifier]\nplatforms = "node"', SOURCE)
    assert config.image_verifier.platforms is VerifierPlatforms.NODE


def test_resolve_ttl_zero_turns_the_resolve_memo_off() -> None:
    assert parse_config(b"[cache]\nresolve_ttl = 0", SOURCE).cache.resolve_ttl == 0.0
    assert parse_config(b"", SOURCE).cache.resolve_ttl > 0


def test_empty_hosts_dir_means_no_roots() -> None:
    assert parse_config(b'hosts_dir = ""', SOURCE).hosts_dirs == ()


def test_metrics_empty_address_turns_metrics_off() -> None:
    assert parse_config(b'[metrics]\naddress = ""', SOURCE).metrics.address == ""


@pytest.mark.parametrize("address", ["127.0.0.1:9464", "127.9.9.9:1", "localhost:80", "[::1]:9"])
def test_metrics_loopback_addresses(address: str) -> None:
    config = parse_config(f'[metrics]\naddress = "{address}"'.encode(), SOURCE)
    assert config.metrics.address == address


def test_metrics_non_loopback_needs_explicit_opt_in() -> None:
    assert _keys(_problems(b'[metrics]\naddress = "0.0.0.0:9464"')) == ["metrics.address"]
    config = parse_config(b'[metrics]\naddress = "0.0.0.0:9464"\nallow_non_loopback = true', SOURCE)
    assert config.metrics.address == "0.0.0.0:9464"
    assert config.metrics.allow_non_loopback


def test_socket_mode_as_octal_string() -> None:
    assert parse_config(b'[api]\nsocket_mode = "0640"', SOURCE).api.socket_mode == 0o640


@pytest.mark.parametrize(
    ("document", "key"),
    [
        (b"trust_dir = 5", "trust_dir"),
        (b'trust_dir = ""', "trust_dir"),
        (b"hosts_dir = ['/a']", "hosts_dir"),
        (b'hosts_dir = "/a::/b"', "hosts_dir"),
        (b'platform = "linux"', "platform"),
        (b'platform = "Linux/AMD64"', "platform"),
        (b'platform = "linux/arm/v7/x"', "platform"),
        (b"reload_debounce = 0", "reload_debounce"),
        (b"reload_debounce = -1.0", "reload_debounce"),
        (b"reload_debounce = nan", "reload_debounce"),
        (b"reload_debounce = inf", "reload_debounce"),
        (b"reload_debounce = true", "reload_debounce"),
        (b'reload_debounce = "1"', "reload_debounce"),
        (b"api = 1", "api"),
        (b'[api]\nsocket = "run/pg.sock"', "api.socket"),
        (b"[api]\nsocket = 3", "api.socket"),
        (b"[api]\nsocket_mode = 0", "api.socket_mode"),
        (b"[api]\nsocket_mode = 0o1777", "api.socket_mode"),
        (b'[api]\nsocket_mode = "rw"', "api.socket_mode"),
        (b"[api]\nsocket_mode = true", "api.socket_mode"),
        (b'[cri]\nsocket = "cri.sock"', "cri.socket"),
        (b'[cri]\nsocket_mode = "0999"', "cri.socket_mode"),
        (b'[cri]\nupstream = "tcp://1.2.3.4:1"', "cri.upstream"),
        (b'[cri]\nupstream = "unix://run/containerd.sock"', "cri.upstream"),
        (b"[cri]\nupstream = 1", "cri.upstream"),
        (b'[metrics]\naddress = "9464"', "metrics.address"),
        (b'[metrics]\naddress = "127.0.0.1:"', "metrics.address"),
        (b'[metrics]\naddress = ":9464"', "metrics.address"),
        (b'[metrics]\naddress = "127.0.0.1:0"', "metrics.address"),
        (b'[metrics]\naddress = "127.0.0.1:65536"', "metrics.address"),
        (b'[metrics]\naddress = "127.0.0.1:http"', "metrics.address"),
        ('[metrics]\naddress = "127.0.0.1:\u0663"'.encode(), "metrics.address"),
        (b'[metrics]\naddress = "::1:9464"', "metrics.address"),
        (b'[metrics]\naddress = "[::1]9464"', "metrics.address"),
        (b'[metrics]\naddress = "example.com:9464"', "metrics.address"),
        (b'[metrics]\naddress = "10.0.0.1:9464"', "metrics.address"),
        (b'[metrics]\nallow_non_loopback = "yes"', "metrics.allow_non_loopback"),
        (b"[cache]\nmax_entries = 0", "cache.max_entries"),
        (b"[cache]\nmax_entries = 1.5", "cache.max_entries"),
        (b"[cache]\nmax_ttl = -3", "cache.max_ttl"),
        (b"[cache]\nmax_ttl = 1e12", "cache.max_ttl"),
        (b"[registry]\nread_timeout = 1e10", "registry.read_timeout"),
        (b"[cache]\nnegative_ttl = 0.0", "cache.negative_ttl"),
        (b"[cache]\nresolve_ttl = -1", "cache.resolve_ttl"),
        (b'[cache]\nresolve_ttl = "5s"', "cache.resolve_ttl"),
        (b"[cache]\nresolve_ttl = true", "cache.resolve_ttl"),
        (b"[cache]\nresolve_ttl = inf", "cache.resolve_ttl"),
        (b"[registry]\nconfig_json = 1", "registry.config_json"),
        (b'[registry]\nconfig_json = ""', "registry.config_json"),
        (b"[registry]\nconnect_timeout = 0", "registry.connect_timeout"),
        (b"[registry]\nread_timeout = false", "registry.read_timeout"),
        (b"[registry]\nmax_manifest_bytes = -1", "registry.max_manifest_bytes"),
        (b'[registry]\nmax_envelope_bytes = "1"', "registry.max_envelope_bytes"),
        (b"[registry]\nmax_inflight_bytes = 1048576", "registry.max_inflight_bytes"),
        (b"[registry]\ninflight_wait = 0", "registry.inflight_wait"),
        (b"[registry]\nfallback_timeout = -1", "registry.fallback_timeout"),
        (b'[registry]\nendpoint_backoff = "30s"', "registry.endpoint_backoff"),
        (b"[verification]\nmax_signatures = 0", "verification.max_signatures"),
        (b"[verification]\ntimeout = 0", "verification.timeout"),
        (b"[verification]\ncrl_cache_dir = []", "verification.crl_cache_dir"),
        (b"[verification]\nallow_symlinks = 1", "verification.allow_symlinks"),
        (b"statements = 1", "statements"),
        (b"[statements]\nprod = 1", "statements.prod"),
        (b'[statements.prod]\nrequire = "all"', "statements.prod.require"),
        (b"[statements.prod]\nrequire = 1", "statements.prod.require"),
        (b'[statements.prod]\non_inconclusive = "retry"', "statements.prod.on_inconclusive"),
        (b'[statements.prod]\nmode = "warn"', "statements.prod.mode"),
        (b'[statements.""]\nmode = "audit"', 'statements.""'),
        (b"trust_dirs = '/x'", "trust_dirs"),
        (b"[api]\npath = '/x'", "api.path"),
        (b"[cri]\nendpoint = 'x'", "cri.endpoint"),
        (b"[metrics]\nport = 1", "metrics.port"),
        (b"[cache]\nsize = 1", "cache.size"),
        (b"[registry]\ntimeout = 1", "registry.timeout"),
        (b"[verification]\nlevel = 'strict'", "verification.level"),
        (b"[statements.prod]\nrequired = 'both'", "statements.prod.required"),
        (b'[statements."a b"]\nmodes = "audit"', 'statements."a b".modes'),
        (b"[tls]\nca = 'x'", "tls"),
        (b'[image_verifier]\nplatforms = "arm64"', "image_verifier.platforms"),
        (b"[image_verifier]\nplatform = 'node'", "image_verifier.platform"),
        (b"image_verifier = 1", "image_verifier"),
    ],
)
def test_bad_value_names_its_key(document: bytes, key: str) -> None:
    assert _keys(_problems(document)) == [key]


def test_every_problem_is_reported_at_once() -> None:
    document = b"""
trust_dir = 1
colour = "blue"
reload_debounce = 0
[api]
socket = "relative.sock"
[metrics]
address = "0.0.0.0:1"
[cache]
max_entries = -5
[statements.prod]
require = "all"
mode = "loud"
"""
    problems = _problems(document)
    assert sorted(_keys(problems)) == sorted(
        [
            "trust_dir",
            "colour",
            "reload_debounce",
            "api.socket",
            "metrics.address",
            "cache.max_entries",
            "statements.prod.require",
            "statements.prod.mode",
        ]
    )


@pytest.mark.parametrize("document", [b"trust_dir = ", b"[api\n", b'a = "x"\na = "y"', b"\xff"])
def test_unparseable_document_is_one_config_error(document: bytes) -> None:
    assert len(_problems(document)) == 1


def test_load_config_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.reason is Reason.CONFIG
    assert info.value.problems[0].startswith(str(missing))


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[statements."s"]\nmode = "audit"\n')
    config = load_config(path)
    assert config.source == path
    assert config.settings_for("s").mode is Mode.AUDIT
    assert config.trust_dir == Path("/etc/pullgate/trust")


def test_cri_critical_images(tmp_path: Path) -> None:
    src = tmp_path / "config.toml"
    ok = parse_config(
        b'[cri]\ncritical_images = ["registry.k8s.io/pause:*", "sha256:' + b"a" * 64 + b'"]\n',
        src,
    )
    assert ok.cri is not None
    assert ok.cri.critical_images[0] == "registry.k8s.io/pause:*"
    for bad in (b'[cri]\ncritical_images = "x"\n', b'[cri]\ncritical_images = ["sha256:abc"]\n'):
        with pytest.raises(ConfigError) as excinfo:
            parse_config(bad, src)
        assert any("cri.critical_images" in p for p in excinfo.value.problems)


def test_the_cri_socket_is_for_root_alone_by_default() -> None:
    config = parse_config(b"[cri]\n", SOURCE)
    assert config.cri is not None
    assert config.cri.socket_mode == 0o600
