"""Pieces of ``bench/pull.py``: images, an event loop thread, containerd content, shim wrappers.

Kept apart from the measuring script so each file stays short. Nothing here measures; it builds
what the measurements of ``bench/pull.py`` need:

* :func:`push_signed_image`: a ~10 MB image of two uncompressed tar layers holding random
  (incompressible) bytes, whose config lists both ``diff_ids`` so the CRI plugin can unpack it,
  pushed to the real registry and signed (JWS, referrers tag schema);
* :class:`LoopThread`: one asyncio loop in a daemon thread serving pullgate's CRI proxy and its
  ``pullgate.v1.Verifier`` socket, so the measuring code stays synchronous like the kubelet;
* :func:`content_digests`: what containerd's content store holds (``ctr content ls``), used to
  prove every measured pull starts with nothing of the image cached;
* :func:`write_wrappers`: the shim as an executable in containerd's ``bin_dir``, in the plain
  form the package installs and in pip's console-script forms;
* :func:`bare_signature_fetch`: a minimal client's fetch of what a cold decision fetches: the
  work of a pullgate whose own code cost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from tests.support.containerd import layer_tar
from tests.support.pki import Chain
from tests.support.push import MT_CONFIG, MT_JWS, MT_LAYER, MT_MANIFEST, Pusher
from tests.support.signing import sign_jws

from pullgate.common.descriptor import Descriptor

T = TypeVar("T")

CTR_BINARY = "/usr/bin/ctr"
CRI_NAMESPACE = "k8s.io"
_LOOP_TIMEOUT = 30.0


# -------------------------------------------------------------------------------- images


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def push_signed_image(
    pusher: Pusher,
    chain: Chain,
    *,
    repo: str,
    tag: str,
    platform: str,
    layer_bytes: int,
) -> Descriptor:
    """Push a signed two-layer image manifest tagged ``tag``; returns the manifest descriptor.

    Each layer is a tar of one file of ``layer_bytes`` random bytes, so neither gzip on the
    wire nor deduplication in containerd can shortcut anything, and every call yields new
    digests.
    """
    os_, arch, *variant = platform.split("/")
    layers = [layer_tar({f"data{i}": os.urandom(layer_bytes)}) for i in (0, 1)]
    config_obj: dict[str, Any] = {
        "architecture": arch,
        "os": os_,
        "config": {"Cmd": ["/data0"]},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers],
        },
    }
    if variant:
        config_obj["variant"] = variant[0]
    config = pusher.push_blob(repo, _canonical(config_obj), MT_CONFIG)
    pushed = [pusher.push_blob(repo, layer, MT_LAYER) for layer in layers]
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config.to_json(),
            "layers": [desc.to_json() for desc in pushed],
        }
    )
    subject = pusher.push_manifest(repo, tag, manifest, MT_MANIFEST)
    pusher.push_signature(repo, subject, sign_jws(chain, subject), MT_JWS, certificates=chain.x509)
    return subject


def bare_signature_fetch(
    manager: urllib3.PoolManager,
    base: str,
    repo: str,
    tag: str,
    headers: Mapping[str, str],
    alongside: Executor,
) -> tuple[str, list[tuple[str, str]]]:
    """The five requests a cold decision makes for ``repo:tag`` on a registry without the
    Referrers API, each found from the previous answer as pullgate finds it: resolve the tag
    (HEAD), the ``sha256-<hex>`` referrers tag, the signature manifest, the envelope blob, and,
    on ``alongside`` while those three are fetched (as a decision reads it while verifying),
    the image manifest itself (an allow binds its config digest, the image ID a container
    start is checked against). ``manager`` needs two connections per host.

    No verification, no size caps, no parsing beyond the digests needed. Returns the tag's
    digest and the ``(method, path)`` sent, to be compared with a decision's own requests.

    Raises:
        SystemExit: an answer is not 200 or lacks what the next request needs.
    """

    def send(method: str, path: str, accept: str | None) -> urllib3.BaseHTTPResponse:
        sent.append((method, path))
        response = manager.request(
            method, base + path, headers={**headers, **({"Accept": accept} if accept else {})}
        )
        if response.status != 200:
            raise SystemExit(f"bare fetch: {method} {path} answered {response.status}")
        return response

    sent: list[tuple[str, str]] = []
    manifests = f"/v2/{repo}/manifests/"
    accept = headers.get("Accept")
    digest = send("HEAD", manifests + tag, accept).headers.get("Docker-Content-Digest", "")
    if not digest.startswith("sha256:"):
        raise SystemExit("bare fetch: no Docker-Content-Digest on the tag")
    image = alongside.submit(send, "GET", manifests + digest, accept)
    index = json.loads(send("GET", manifests + digest.replace(":", "-"), accept).data)
    signature = json.loads(send("GET", manifests + index["manifests"][0]["digest"], accept).data)
    send("GET", f"/v2/{repo}/blobs/{signature['layers'][0]['digest']}", None)
    image.result()
    return digest, sent


# -------------------------------------------------------------------------------- event loop


class LoopThread:
    """An asyncio event loop running in a daemon thread; :meth:`run` submits coroutines."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = _LOOP_TIMEOUT) -> T:
        """Run ``coro`` on the loop and wait (bounded) for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=timeout)

    def close(self) -> None:
        """Stop the loop and join its thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_LOOP_TIMEOUT)
        self._loop.close()


# -------------------------------------------------------------------------------- containerd


def content_digests(socket: Path) -> frozenset[str]:
    """Digests of every blob in containerd's content store, CRI namespace (``ctr content ls``)."""
    proc = subprocess.run(
        [CTR_BINARY, "--address", str(socket), "--namespace", CRI_NAMESPACE, "content", "ls", "-q"],
        capture_output=True,
        check=True,
        timeout=_LOOP_TIMEOUT,
    )
    return frozenset(line for line in proc.stdout.decode().split() if line.startswith("sha256:"))


def snapshot_count(socket: Path) -> int:
    """Number of ``native`` snapshots in the CRI namespace (``ctr snapshots ls``)."""
    proc = subprocess.run(
        [
            CTR_BINARY,
            "--address",
            str(socket),
            "--namespace",
            CRI_NAMESPACE,
            "snapshots",
            "--snapshotter",
            "native",
            "ls",
        ],
        capture_output=True,
        check=True,
        timeout=_LOOP_TIMEOUT,
    )
    return max(len(proc.stdout.decode().splitlines()) - 1, 0)  # minus the header line


# -------------------------------------------------------------------------------- shim wrappers

PLAIN_WRAPPER = "#!{python}\nfrom pullgate.shim import main\nimport sys\nsys.exit(main())\n"
# pip >= 24's own console-script template (pip/_internal/operations/install/wheel.py).
PIP_WRAPPER = (
    "#!{python}\n"
    "import sys\n"
    "from pullgate.shim import main\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n"
    "    sys.exit(main())\n"
)
# distlib's template (older pip, and pip's vendored distlib): imports ``re``.
DISTLIB_WRAPPER = (
    "#!{python}\n"
    "# -*- coding: utf-8 -*-\n"
    "import re\n"
    "import sys\n"
    "if __name__ == '__main__':\n"
    "    from pullgate.shim import main\n"
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    "    sys.exit(main())\n"
)
WRAPPERS = {"plain": PLAIN_WRAPPER, "pip": PIP_WRAPPER, "distlib (re)": DISTLIB_WRAPPER}


def write_wrappers(bin_root: Path, python: str) -> dict[str, Path]:
    """One ``bin_dir`` per wrapper form, each holding ``pullgate-containerd-verifier``."""
    paths: dict[str, Path] = {}
    for index, (name, template) in enumerate(WRAPPERS.items()):
        directory = bin_root / f"bin{index}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "pullgate-containerd-verifier"
        path.write_text(template.format(python=python))
        path.chmod(0o755)
        paths[name] = path
    return paths
