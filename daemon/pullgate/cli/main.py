"""The ``pullgate`` command line. The only place that chooses exit codes.

Exit codes: 0 allowed, 1 denied, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pullgate import __version__
from pullgate.cli.report import decision_json, decision_text
from pullgate.cli.signatures import inspect_signatures, render_tree
from pullgate.common.clock import SystemClock
from pullgate.config import (
    DEFAULT_CONFIG_PATH,
    DaemonConfig,
    RegistryConfig,
    Requirement,
    VerificationConfig,
)
from pullgate.decision.context import SnapshotLike
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.decision.platform import parse_platform
from pullgate.decision.resolved import resolve
from pullgate.doctor import DOCTOR_SUMMARY, add_doctor_arguments, run_doctor_command
from pullgate.errors import ConfigError, MalformedInput, PullgateError, Reason
from pullgate.oci.layout import LayoutReference, open_layout
from pullgate.oci.layout_store import LayoutStore
from pullgate.registry.auth import CredentialStore, DockerConfigCredentials
from pullgate.registry.client import RegistryClient
from pullgate.registry.hosts import load_hosts
from pullgate.registry.hosts.report import hosts_json, render_hosts
from pullgate.registry.model import HostsConfig, ImageReference
from pullgate.registry.reference import parse_reference
from pullgate.registry.store import Store
from pullgate.trust.files import dead_scope_warnings, load_trust_config
from pullgate.trust.snapshot import Snapshot, build_snapshot
from pullgate.verification.policy import check_trust_dir
from pullgate.verification.verifier import DEFAULT_MAX_SIGNATURES

EXIT_ALLOW = 0
EXIT_DENY = 1
EXIT_USAGE = 2

DEFAULT_TRUST_DIR = Path("/etc/pullgate/trust")
DEFAULT_HOSTS_DIR = Path("/etc/containerd/certs.d")

HOSTS_HELP = "containerd certs.d root(s), ':'-separated like CRI config_path"

log = logging.getLogger("pullgate")

StoreOpener = Callable[[SnapshotLike, CredentialStore | None], Store]


class _UsageError(Exception):
    pass


def _metadata(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _UsageError(f"--user-metadata expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "pullgate"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pullgate", description="Notary Project signature enforcement at image-pull time."
    )
    p.add_argument("--version", action="version", version=f"pullgate {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verify", help="verify an image's signatures (exit 0 allow, 1 deny)")
    v.add_argument("reference", help="image reference; with --oci-layout PATH@DIGEST or PATH:TAG")
    v.add_argument("--trust-dir", type=Path, default=DEFAULT_TRUST_DIR)
    v.add_argument("--hosts-dir", default=str(DEFAULT_HOSTS_DIR), help=HOSTS_HELP)
    v.add_argument("--registry-config", type=Path, help="docker config.json with credentials")
    v.add_argument("--oci-layout", action="store_true", help="REFERENCE is an OCI image layout")
    v.add_argument("--scope", help="REGISTRY/REPO used for trust-policy selection (--oci-layout)")
    v.add_argument("--user-metadata", "-m", action="append", default=[], metavar="K=V")
    v.add_argument("--output", "-o", choices=("text", "json"), default="text")
    v.add_argument("--max-signatures", type=int, default=DEFAULT_MAX_SIGNATURES)
    v.add_argument("--cache-dir", type=Path, default=None, help="CRL cache directory")
    v.add_argument("--platform", help="OS/ARCH[/VARIANT] (multi-platform images)")
    v.add_argument("--require", choices=("index", "platform", "both", "either"))

    i = sub.add_parser("inspect", help="show every signature of an image, without trust decisions")
    i.add_argument("reference")
    i.add_argument("--oci-layout", action="store_true")
    i.add_argument("--hosts-dir", default=str(DEFAULT_HOSTS_DIR), help=HOSTS_HELP)
    i.add_argument("--registry-config", type=Path, help="docker config.json with credentials")
    i.add_argument("--output", "-o", choices=("tree", "json"), default="tree")

    h = sub.add_parser("hosts", help="the endpoints containerd would use for a registry")
    h.add_argument("registry", help="registry host[:port], or an image reference")
    h.add_argument("--hosts-dir", default=str(DEFAULT_HOSTS_DIR), help=HOSTS_HELP)
    h.add_argument("--output", "-o", choices=("text", "json"), default="text")

    doc = sub.add_parser(
        "doctor",
        help="report every way signature enforcement is bypassed on this node",
        description=DOCTOR_SUMMARY,
    )
    add_doctor_arguments(doc)
    doc.set_defaults(doctor_parser=doc)

    srv = sub.add_parser("serve", help="run the node daemon (pullgate.v1 gRPC API)")
    srv.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="daemon config")
    srv.add_argument(
        "--check-config",
        action="store_true",
        help="load and validate the configuration as the daemon would, then exit 0 (valid) or 2",
    )

    img = sub.add_parser(
        "images",
        help="node audit: every image and running container with its verdict now "
        "(exit 1 if a running container has no current allow)",
    )
    img.add_argument("--runtime-endpoint", default="unix:///run/containerd/containerd.sock")
    img.add_argument("--output", "-o", choices=("text", "json"), default="text")
    img.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)

    pol = sub.add_parser("policy", help="trust policy tools")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True)
    chk = pol_sub.add_parser("check", help="validate the trust policy and every trust store")
    chk.add_argument("--trust-dir", type=Path, default=DEFAULT_TRUST_DIR)
    return p


def _print_decision(decision: Decision, output: str) -> int:
    if output == "json":
        print(json.dumps(decision_json(decision), indent=2))
    else:
        print(decision_text(decision))
    return EXIT_ALLOW if decision.allowed else EXIT_DENY


def _roots(text: str) -> list[Path]:
    return [Path(p) for p in text.split(":") if p]


def _registry_client(args: argparse.Namespace) -> RegistryClient:
    roots = _roots(args.hosts_dir)
    credentials = None
    if args.registry_config is not None:
        credentials = DockerConfigCredentials.from_file(args.registry_config)

    def hosts(registry: str) -> HostsConfig:
        config = load_hosts(registry, roots)
        for problem in config.problems:
            log.error("certs.d problem for %s: %s", registry, problem)
        return config

    from pullgate.service.engine import registry_client  # lazy, as _decide's

    return registry_client(hosts, credentials, clock=SystemClock())


def _image_reference(text: str) -> ImageReference:
    """``text`` as an image reference; a malformed one is a usage error."""
    try:
        return parse_reference(text)
    except MalformedInput as exc:
        raise _UsageError(str(exc)) from exc


def _one_shot_snapshot(args: argparse.Namespace) -> Snapshot:
    """The snapshot the daemon would build from these files (trust directory checked as a
    whole, symlinks as the daemon allows them, docker ``config.json`` credentials), built once.

    Raises:
        ConfigError: the trust directory or the ``config.json`` is unusable.
    """
    cache_dir = args.cache_dir or _default_cache_dir()
    config = DaemonConfig(
        trust_dir=args.trust_dir,
        hosts_dirs=tuple(_roots(args.hosts_dir)),
        registry=RegistryConfig(config_json=args.registry_config),
        verification=VerificationConfig(
            max_signatures=args.max_signatures, crl_cache_dir=cache_dir / "crl"
        ),
    )
    snapshot = build_snapshot(None, 1, clock=SystemClock(), base=config)
    for problem in snapshot.certs_d_problems:
        log.error("certs.d problem: %s", problem)
    return snapshot


def _request(args: argparse.Namespace, reference: str) -> DecisionRequest:
    if args.platform:
        try:
            parse_platform(args.platform)
        except MalformedInput as exc:
            raise _UsageError(f"--platform: {exc}") from exc
    return DecisionRequest(
        reference=reference,
        platform=args.platform or None,
        require=Requirement(args.require) if args.require else None,
        user_metadata=_metadata(args.user_metadata),
        caller="cli",
        front=Front.CLI,
    )


def _decide(snapshot: Snapshot, request: DecisionRequest, stores: StoreOpener | None) -> Decision:
    """One decision by the engine every front end uses, over ``snapshot``."""
    from pullgate.service.compose import one_shot_decider  # lazy: the daemon's modules

    decider = one_shot_decider(snapshot, stores)
    try:
        return decider.decide(request)
    finally:
        decider.close()


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.oci_layout and not args.scope:
        raise _UsageError("--oci-layout requires --scope REGISTRY/REPO")
    if args.scope and not args.oci_layout:
        raise _UsageError("--scope is only meaningful with --oci-layout")
    if args.max_signatures <= 0:
        raise _UsageError("--max-signatures must be greater than 0")
    if not args.oci_layout:
        request = _request(args, str(_image_reference(args.reference)))
        return _print_decision(_decide(_one_shot_snapshot(args), request, None), args.output)
    layout_ref = LayoutReference.parse(args.reference)
    pinned = f"@{layout_ref.digest}" if layout_ref.digest else f":{layout_ref.tag}"
    request = _request(args, str(_image_reference(args.scope + pinned)))

    def layout(_snap: SnapshotLike, _creds: CredentialStore | None) -> Store:
        return LayoutStore(open_layout(layout_ref.path))  # MalformedInput: a typed deny

    return _print_decision(_decide(_one_shot_snapshot(args), request, layout), args.output)


def _cmd_inspect(args: argparse.Namespace) -> int:
    if args.oci_layout:
        ref = LayoutReference.parse(args.reference)
        layout = open_layout(ref.path)
        target = layout.resolve(ref)
        doc, errors = inspect_signatures(target, layout.signatures(target))
        shown = f"{ref.path}@{target.digest}"
    else:
        image = _image_reference(args.reference)
        client = _registry_client(args)
        try:
            resolved = resolve(client, image)
            source = client.signature_source(resolved.reference)
            doc, errors = inspect_signatures(resolved.target, source.signatures(resolved.target))
        finally:
            client.close()
        shown = str(resolved.reference)
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(render_tree(shown, doc))
    for err in errors:
        print(f"warning: {err}", file=sys.stderr)
    if errors:
        print("error: at least one signature was skipped and not displayed", file=sys.stderr)
        return EXIT_DENY
    return EXIT_ALLOW


def _cmd_hosts(args: argparse.Namespace) -> int:
    registry = args.registry
    looks_like_host = any(c in registry for c in ".:[") or registry == "localhost"
    if "/" in registry or not looks_like_host:
        registry = _image_reference(registry).registry
    config = load_hosts(registry, _roots(args.hosts_dir))
    if args.output == "json":
        print(json.dumps(hosts_json(config), indent=2))
    else:
        print(render_hosts(config))
    return EXIT_USAGE if config.problems else EXIT_ALLOW


def _cmd_policy_check(args: argparse.Namespace) -> int:
    problems = check_trust_dir(args.trust_dir)
    if not problems:
        warnings = dead_scope_warnings(load_trust_config(args.trust_dir).oci_policy)
        for warning in warnings:
            print(f"warning: {warning}")
        counted = f" ({len(warnings)} warning(s))" if warnings else ""
        print(f"{args.trust_dir}: trust policy and trust stores are valid{counted}")
        return EXIT_ALLOW
    for problem in problems:
        print(f"{args.trust_dir}: {problem}")
    print(f"{len(problems)} problem(s) found", file=sys.stderr)
    return EXIT_USAGE


def _check_config(path: Path) -> int:
    """``serve --check-config``: build the snapshot a (re)load would, without serving.

    The problems are the ones the daemon's ``Status`` reports for the same files: fatal ones
    raise (printed by :func:`main`, exit 2), non-fatal ones (certs.d) are printed as warnings.
    """
    snapshot = build_snapshot(path, 1, clock=SystemClock())
    for problem in snapshot.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"{path}: configuration is valid (digest {snapshot.digest})")
    return EXIT_ALLOW


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pullgate`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "verify":
            return _cmd_verify(args)
        if args.command == "inspect":
            return _cmd_inspect(args)
        if args.command == "policy":
            return _cmd_policy_check(args)
        if args.command == "hosts":
            return _cmd_hosts(args)
        if args.command == "images":
            from pullgate.service.compose import one_shot_gate  # lazy: needs grpc
            from pullgate.start.images_cli import run_images_command

            return run_images_command(args, one_shot_gate)
        if args.command == "doctor":
            return run_doctor_command(args, args.doctor_parser)
        if args.command == "serve" and args.check_config:
            return _check_config(args.config)
        if args.command == "serve":
            from pullgate.service.app import run  # lazy: grpc is only needed by the daemon

            return run(args.config)
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_USAGE
    except _UsageError as exc:
        parser.error(str(exc))  # exits 2
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except PullgateError as exc:
        print(f"error: {exc.reason.value}: {exc}", file=sys.stderr)
        return EXIT_DENY if exc.reason is not Reason.CONFIG else EXIT_USAGE
    return EXIT_USAGE
