"""Each trust snapshot owns its certificate memos: sized from ``[cache] certificate_entries``,
fresh for every reload (and for a withdrawal), and dropped with the snapshot."""

from __future__ import annotations

import gc
import weakref
from datetime import timedelta
from pathlib import Path

from pullgate.common.clock import FixedClock
from pullgate.trust.snapshot import Snapshot
from pullgate.trust.state import TrustState
from pullgate.verification.cache import CertMemo
from pullgate.verification.x509.certs import validate_signing_chain
from tests.support.pki import NOW as PKI_NOW
from tests.support.pki import Pki
from tests.unit.reload.trustdirs import root_pem, write_trust_dir

CLOCK = FixedClock(PKI_NOW + timedelta(hours=12))
BROKEN_POLICY = b'{"version": "1.0", "trustPolicies": []}'


def _state(tmp_path: Path, cache: str = "") -> tuple[TrustState, Path]:
    trust = write_trust_dir(tmp_path / "trust")
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'trust_dir = "trust"\nhosts_dir = ""\n{cache}')
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    return state, trust


def _current(state: TrustState) -> Snapshot:
    snapshot = state.current()
    assert snapshot is not None
    return snapshot


def _fill(memo: CertMemo) -> None:
    validate_signing_chain(Pki(name="snapshot memo").chain().x509, memo)
    assert len(memo.checks) > 0


def test_the_memos_are_sized_from_the_cache_table(tmp_path: Path) -> None:
    state, _ = _state(tmp_path, "[cache]\ncertificate_entries = 3\n")
    memo = _current(state).cert_memo
    assert (memo.loaded.capacity, memo.facts.capacity, memo.checks.capacity) == (3, 6, 12)
    default, _ = _state(tmp_path / "default")
    assert _current(default).cert_memo.loaded.capacity == 256


def test_a_reload_starts_with_empty_memos_and_drops_the_old_ones(tmp_path: Path) -> None:
    state, trust = _state(tmp_path)
    first = _current(state)
    _fill(first.cert_memo)
    gone = weakref.ref(first.cert_memo)
    store = trust / "truststore" / "x509" / "ca" / "acme" / "root.pem"
    store.write_bytes(root_pem("rotated"))  # new trust material: a new snapshot
    assert state.reload("watch").ok
    second = _current(state)
    assert second.digest != first.digest
    assert second.cert_memo is not first.cert_memo
    assert all(info.size == 0 for info in second.cert_memo.stats())
    del first
    gc.collect()
    assert gone() is None  # the trust state kept nothing of the old snapshot's memos


def test_a_withdrawal_gets_fresh_memos(tmp_path: Path) -> None:
    state, trust = _state(tmp_path)
    good = _current(state)
    _fill(good.cert_memo)
    (trust / "truststore" / "x509" / "ca" / "acme" / "root.pem").unlink()
    (trust / "trustpolicy.oci.json").write_bytes(BROKEN_POLICY)
    assert not state.reload("watch").ok
    kept = _current(state)
    assert kept.digest != good.digest  # the changed anchor was withdrawn
    assert kept.cert_memo is not good.cert_memo
    assert kept.cert_memo.certificates == good.cert_memo.certificates
    assert all(info.size == 0 for info in kept.cert_memo.stats())
