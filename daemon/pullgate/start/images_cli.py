"""``pullgate images``: the node audit from the command line (:mod:`pullgate.start.audit`).

It reads the daemon's configuration file (trust directory, certs.d, statements, critical
images) and judges every image and running container of the runtime at ``--runtime-endpoint``
now, verifying what it must through the same decision engine the daemon uses. Exit 0 when every
running container's image has a current allow, 1 when one does not, 2 on a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import grpc

from pullgate.common.clock import SystemClock
from pullgate.decision.decider import Decider
from pullgate.errors import ConfigError
from pullgate.start.audit import CriLister, audit_node, render_text
from pullgate.start.gate import StartGate
from pullgate.trust.snapshot import Snapshot
from pullgate.trust.state import TrustState

__all__ = ["run_images_command"]


def run_images_command(
    args: argparse.Namespace, build: Callable[[Snapshot], tuple[StartGate, Decider]]
) -> int:
    """Run the audit for parsed ``args``: 0 all running containers allowed, 1 otherwise;
    ``build`` makes the start gate and its decision engine over the snapshot (the composition
    root's :func:`pullgate.service.compose.one_shot_gate`).

    Raises:
        ConfigError: the configuration does not load, or the runtime cannot be listed.
    """
    clock = SystemClock()
    state = TrustState(args.config, clock=clock)
    result = state.reload("cli")
    snapshot = state.current()
    if snapshot is None:
        raise ConfigError(f"{args.config}: {result.error or 'configuration does not load'}")
    gate, decider = build(snapshot)
    lister = CriLister(args.runtime_endpoint)
    try:
        audit = audit_node(lister, gate)
    except grpc.RpcError as exc:
        raise ConfigError(f"cannot list the runtime at {args.runtime_endpoint}: {exc}") from exc
    finally:
        lister.close()
        gate.close()
        decider.close()
    if args.output == "json":
        print(json.dumps(audit.to_json(), indent=2, default=str))
    else:
        print(render_text(audit))
    return 1 if audit.unverified_containers else 0
