"""A removed trust anchor stops allowing through the running daemon, although its reload fails.

Deleting the only CA of a store (or replacing it with garbage) makes the store invalid, so the
reload the watcher starts fails and the last good configuration stays in force — without that
CA. The next decision through the daemon's gRPC ``Verify`` denies within 1 s of the change, the
decision cache's earlier allow included, and ``Status`` reports the broken reload.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pullgate.errors import Reason
from tests.integration.test_daemon import (
    REPO,
    Node,
    _sign,
    _status,
    _verify,
    needs_registry,
    node,
    registries,
)
from tests.support.docker_registry import RegistryFactory
from tests.support.grpc_harness import run_daemon
from tests.support.push import Pusher

pytestmark = [pytest.mark.integration, needs_registry]
__all__ = ["node", "registries"]  # fixtures, shared with test_daemon

LIMIT = 1.0  # seconds: the acceptance bound
GIVE_UP = 10.0


def _ca_file(node: Node) -> Path:
    [only] = (node.trust_dir / "truststore" / "x509" / "ca" / "prod").iterdir()
    return only


def _withdraw_and_time(
    node: Node, registries: RegistryFactory, change: Callable[[Path], object]
) -> None:
    registry = registries.start()
    node.trust_registry(registry)
    with Pusher.for_registry(registry) as pusher:
        image = pusher.push_image(REPO, "v1", "linux/amd64", b"withdrawn anchor")
        _sign(pusher, node.chain, image)
    reference = f"{registry.host}/{REPO}:v1"
    with run_daemon(node.config_path) as client:
        assert _verify(client, reference).allowed
        assert _verify(client, reference).allowed  # and now the decision cache holds the allow
        before = _status(client)
        started = time.monotonic()
        change(_ca_file(node))
        while True:
            response = _verify(client, reference)
            elapsed = time.monotonic() - started
            if not response.allowed or elapsed > GIVE_UP:
                break
            time.sleep(0.01)
        status = _status(client)
    assert (response.allowed, response.reason) == (False, Reason.UNTRUSTED.value)
    assert elapsed < LIMIT, f"denied only after {elapsed:.3f} s"
    print(f"withdrawn anchor: denied {elapsed:.3f} s after the change")
    assert status.degraded
    assert not status.last_reload.ok
    assert status.generation == before.generation  # the last good generation, minus the CA
    assert status.degraded_reason
    assert any("prod" in problem for problem in status.problems)


def test_deleting_the_only_ca_denies_within_one_second(
    node: Node, registries: RegistryFactory
) -> None:
    _withdraw_and_time(node, registries, Path.unlink)


def test_replacing_the_only_ca_with_garbage_denies_within_one_second(
    node: Node, registries: RegistryFactory
) -> None:
    _withdraw_and_time(node, registries, lambda path: path.write_bytes(b"garbage, not PEM"))
