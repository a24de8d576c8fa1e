"""Declared dependencies agree with the generated code and with the pinned development set.

The generated gRPC modules refuse to import under a grpcio older than the grpcio-tools that wrote
them, and the protobuf modules under an older protobuf runtime; a package whose lower bounds allow
those versions installs fine and then fails at start. ``constraints.txt`` pins the development
set that CI installs: every declared dependency must be pinned there, within its declared range.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "daemon" / "pullgate"


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found: dict[str, Requirement] = {}
    extras = [line for group in project["optional-dependencies"].values() for line in group]
    for line in [*project["dependencies"], *extras]:
        req = Requirement(line)
        found[canonicalize_name(req.name)] = req
    return found


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {raw!r} is not an exact pin"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def _lower_bound(spec: SpecifierSet) -> Version:
    bounds = [Version(s.version) for s in spec if s.operator in (">=", "==", "~=")]
    assert bounds, f"no lower bound in {spec}"
    return max(bounds)


def _generated_versions(pattern: str, regex: str) -> dict[Path, Version]:
    found: dict[Path, Version] = {}
    for path in sorted(GENERATED.rglob(pattern)):
        match = re.search(regex, path.read_text(), re.MULTILINE)
        assert match is not None, f"{path}: no version stamp"
        found[path] = Version(match.group(1))
    assert found, f"no generated {pattern} under {GENERATED}"
    return found


def test_grpcio_lower_bound_admits_no_runtime_the_generated_code_refuses() -> None:
    reqs = _requirements()
    stamped = _generated_versions("*_pb2_grpc.py", r"^GRPC_GENERATED_VERSION = '([^']+)'")
    for name in ("grpcio", "grpcio-health-checking", "grpcio-reflection"):
        bound = _lower_bound(reqs[name].specifier)
        for path, version in stamped.items():
            assert bound >= version, f"{name}>={bound} but {path.name} needs {version}"


def test_protobuf_lower_bound_admits_no_runtime_the_generated_code_refuses() -> None:
    reqs = _requirements()
    stamped = _generated_versions("*_pb2.py", r"^# Protobuf Python Version: (\S+)$")
    bound = _lower_bound(reqs["protobuf"].specifier)
    for path, version in stamped.items():
        assert bound >= version, f"protobuf>={bound} but {path.name} needs {version}"
        assert bound.major == version.major, f"{path.name} is protobuf {version.major}.x code"


def test_the_pinned_grpcio_tools_is_the_one_that_wrote_the_generated_code() -> None:
    pinned = _pins()["grpcio-tools"]
    stamped = _generated_versions("*_pb2_grpc.py", r"^GRPC_GENERATED_VERSION = '([^']+)'")
    assert set(stamped.values()) == {pinned}


@pytest.mark.parametrize("name", sorted(_requirements()))
def test_every_declared_dependency_is_pinned_within_its_range(name: str) -> None:
    pins = _pins()
    assert name in pins, f"{name} is declared in pyproject.toml but not pinned in constraints.txt"
    assert pins[name] in _requirements()[name].specifier
