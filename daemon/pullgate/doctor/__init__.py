"""``pullgate doctor``: every known way enforcement on this node is silently bypassed or broken.

Reads containerd's ``config.toml`` (schema ``version = 2`` for 1.6/1.7, ``version = 3`` or ``4`` for
2.x),
the kubelet's ``config.yaml`` and flag files, and the verifier ``bin_dir``, and reports each problem
as a :class:`Finding` carrying the exact line to change. The facts are those of
docs/containerd.md: §2.1-2.3 (image verifiers: which pulls run them, ``bin_dir`` rules),
§3.3 (kubelet ``imageServiceEndpoint``), §4 (CRI registry ``config_path``, the 2.1+ list bug).
Nothing here raises for a bad file: an unreadable or unparsable file is itself a finding.

Layout: :mod:`.findings` (severities, codes, :class:`Finding`, :class:`DoctorPaths`, rendering),
:mod:`.containerd` (``config.toml``, version, registry checks), :mod:`.bindir` (the verifier
``bin_dir``), :mod:`.kubelet`, :mod:`.runtime_gate` (the container-start gate's wiring),
:mod:`.endpoints` (kubelet endpoints compared as the kubelet dials them), :mod:`.own_config`
(pullgate's own config: its sockets, ``[runtime]``) and :mod:`.sockets`; :func:`run_doctor` and
the ``pullgate doctor`` command are here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from pullgate.config import DEFAULT_CONFIG_PATH
from pullgate.doctor.bindir import BINDIR_PLUGIN, DEFAULT_BIN_DIR, SHIM_NAME, bindir_checks
from pullgate.doctor.containerd import (
    CERTS_D,
    detect_containerd_version,
    load_containerd,
    parse_version,
    registry_checks,
)
from pullgate.doctor.endpoints import same_socket
from pullgate.doctor.findings import Code, DoctorPaths, Finding, Severity, render_findings
from pullgate.doctor.kubelet import kubelet_checks
from pullgate.doctor.nri import nri_checks
from pullgate.doctor.own_config import read_own_config
from pullgate.doctor.runtime_gate import kubelet_runtime_endpoint, runtime_gate_checks
from pullgate.doctor.sockets import socket_checks

DOCTOR_SUMMARY = "Report every way signature enforcement is bypassed on this node."

__all__ = [
    "BINDIR_PLUGIN",
    "CERTS_D",
    "DEFAULT_BIN_DIR",
    "DOCTOR_SUMMARY",
    "SHIM_NAME",
    "Code",
    "DoctorPaths",
    "Finding",
    "Severity",
    "add_doctor_arguments",
    "detect_containerd_version",
    "main_doctor",
    "parse_version",
    "render_findings",
    "run_doctor",
    "run_doctor_command",
]


def run_doctor(paths: DoctorPaths, extra: Sequence[Finding] = ()) -> list[Finding]:
    """Every finding for this node, and ``extra`` ones, errors first."""
    cd, findings = load_containerd(paths)
    findings += extra
    verifiers_enforce = False
    if cd is not None:
        registry_findings, transfer = registry_checks(cd)
        findings += registry_findings
        bindir = bindir_checks(cd, transfer)
        findings += bindir
        verifiers_enforce = transfer and not any(f.severity is Severity.ERROR for f in bindir)
        if paths.nri_plugin is not None:
            findings += nri_checks(cd, paths.nri_plugin, paths.nri_p99)
    runtime = kubelet_runtime_endpoint(paths)
    gated = same_socket(runtime.value, paths.runtime_socket)
    # The gate's socket serves ImageService too (PullImage decided as on the CRI socket): a
    # kubelet without imageServiceEndpoint pulls through it.
    findings += kubelet_checks(paths, verifiers_enforce, runtime_gated=gated)
    findings += runtime_gate_checks(paths, runtime)
    if paths.check_sockets:
        findings += socket_checks(paths)
    order = list(Severity)
    return sorted(findings, key=lambda f: order.index(f.severity))


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pullgate doctor``, on ``parser`` (the CLI's ``doctor`` subparser)."""
    d = DoctorPaths()
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help="pullgate's config: its sockets and [runtime] (default: %(default)s)",
    )
    parser.add_argument("--containerd-config", type=Path, default=d.containerd_config)
    parser.add_argument("--kubelet-config", type=Path, default=d.kubelet_config)
    parser.add_argument("--kubelet-flags", type=Path, action="append", help="repeatable")
    for option in ("--api-socket", "--cri-socket", "--runtime-socket"):
        parser.add_argument(option, type=Path, help="default: from --config, else pullgate's")
    parser.add_argument("--containerd-version", help="X.Y (default: ask containerd --version)")
    parser.add_argument("--no-socket-check", action="store_true")
    parser.add_argument("--nri", metavar="NAME", help="check containerd's NRI requires plugin NAME")
    parser.add_argument("--nri-p99", type=float, metavar="SECONDS", help="measured NRI answer p99")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")


def run_doctor_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run ``pullgate doctor`` for parsed ``args``: 0 when no finding is an error, 1 otherwise."""
    d = DoctorPaths()
    version = parse_version(f"x {args.containerd_version}") if args.containerd_version else None
    if args.containerd_version and version is None:
        parser.error(f"--containerd-version {args.containerd_version!r} is not X.Y")
    own, own_findings = read_own_config(args.config)
    paths = DoctorPaths(
        containerd_config=args.containerd_config,
        kubelet_config=args.kubelet_config,
        kubelet_flags=tuple(args.kubelet_flags) if args.kubelet_flags else d.kubelet_flags,
        api_socket=args.api_socket or own.api_socket,
        cri_socket=args.cri_socket or own.cri_socket,
        runtime_socket=args.runtime_socket or own.runtime_socket,
        runtime_gate=own.runtime_gate,
        runtime_upstream=own.runtime_upstream,
        containerd_version=version or detect_containerd_version(),
        nri_plugin=args.nri,
        nri_p99=args.nri_p99,
        check_sockets=not args.no_socket_check,
    )
    findings = run_doctor(paths, own_findings)
    if args.output == "json":
        docs = [{**asdict(f), "file": str(f.file) if f.file else None} for f in findings]
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
    else:
        sys.stdout.write(render_findings(findings))
    return 1 if any(f.severity is Severity.ERROR for f in findings) else 0


def main_doctor(argv: Sequence[str] | None = None) -> int:
    """``pullgate doctor`` on its own: 0 when no finding is an error, 1 otherwise (2: usage)."""
    parser = argparse.ArgumentParser(prog="pullgate doctor", description=DOCTOR_SUMMARY)
    add_doctor_arguments(parser)
    return run_doctor_command(parser.parse_args(argv), parser)
