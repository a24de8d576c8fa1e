"""Compact encoding of cached decisions, to bound the cache's memory (docs/decisions.md).

A cached :class:`~pullgate.decision.model.Decision` is kept as one ``bytes`` object: the fields
a cache hit needs, as a JSON array, deflated against a preset dictionary of the strings every
decision repeats (``zlib`` ``zdict``), as a raw deflate stream (no zlib header or Adler-32
trailer: the bytes never leave this process, and a truncated stream still fails to decode,
deflate marks its last block). What is *not* kept, because a hit does not need it:

* ``SubjectDecision.outcome`` (every check of every signature tried, with its timings): the
  front ends read the plain signature fields, which are kept;
* ``timings``, ``cache_hit``, ``resolve_cached`` and ``reference``: the decider sets them for
  the request that hits (the cache is keyed by digests, so the same entry answers every
  reference that resolves to them).

Everything that decides or that the API and the audit line report is kept verbatim: allowed,
reason, message, digests, platform, statement, level, requirement, mode, the inconclusive /
fail-open / audit flags, generation, the content an allow covers (manifest digest, config
digest, platform), and per subject role, digest, verified, reason, message,
platform and the signature fields. A 2-subject decision takes about 400 bytes instead of about
6 KB as objects. The bytes are our own, produced in this process (never read from outside), and
decoding checks the shape anyway: anything unexpected raises :class:`MalformedInput`.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from pullgate.config import Mode, Requirement
from pullgate.decision.model import Content, Decision, SubjectDecision
from pullgate.errors import MalformedInput, Reason

__all__ = ["decode_decision", "encode_decision"]

_FORMAT = 1
_ALLOWED, _INCONCLUSIVE, _FAIL_OPEN, _AUDIT_DENIED = 1, 2, 4, 8
_RAW = -zlib.MAX_WBITS  # a raw deflate stream: no zlib header or checksum
# Strings most cached decisions repeat; deflate finds them here instead of in each entry.
_ZDICT = (
    b'"CN=,O=,OU=,L=,ST=,C=US","linux/arm64/v8","linux/arm/v7","linux/amd64","audit","strict",'
    b'"permissive","enforce","either","both","NO_SIGNATURE","UNTRUSTED","TIMEOUT",'
    b'"REGISTRY_UNAVAILABLE","SKIPPED_BY_POLICY","AUDIT_ONLY","VERIFIED",'
    b'[1,"platform",false,"index",true,"manifest",null,'
    b'"signature sha256: verified","; platform sha256:","index sha256:","sha256:'
)


def _subject_fields(subject: SubjectDecision) -> list[Any]:
    return [
        subject.role,
        subject.digest,
        subject.verified,
        subject.reason.value,
        subject.message,
        subject.platform,
        subject.signature_digest,
        subject.signer_subject,
        subject.signer_fingerprint,
        subject.signing_time,
    ]


def encode_decision(decision: Decision) -> bytes:
    """The compact form of ``decision`` (see the module docstring for what is dropped)."""
    flags = (
        _ALLOWED * decision.allowed
        | _INCONCLUSIVE * decision.inconclusive
        | _FAIL_OPEN * decision.fail_open
        | _AUDIT_DENIED * decision.audit_denied
    )
    fields = [
        _FORMAT,
        flags,
        decision.reason.value,
        decision.message,
        decision.digest,
        decision.platform,
        decision.statement,
        decision.level,
        decision.requirement.value if decision.requirement is not None else None,
        decision.mode.value,
        decision.generation,
        [_subject_fields(s) for s in decision.subjects],
        [[c.manifest_digest, c.config_digest, c.platform] for c in decision.content],
    ]
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    packer = zlib.compressobj(6, zlib.DEFLATED, _RAW, zdict=_ZDICT)
    return packer.compress(text) + packer.flush()


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise MalformedInput("cached decision: expected a string")
    return value


def _optional(value: object) -> str | None:
    return None if value is None else _text(value)


def _subject(raw: object) -> SubjectDecision:
    if not isinstance(raw, list) or len(raw) != 10:
        raise MalformedInput("cached decision: bad subject")
    role, digest, verified, reason, message, platform, sig, signer, fingerprint, when = raw
    return SubjectDecision(
        role=_text(role),
        digest=_text(digest),
        verified=verified is True,
        reason=Reason(_text(reason)),
        message=_text(message),
        platform=_optional(platform),
        signature_digest=_optional(sig),
        signer_subject=_optional(signer),
        signer_fingerprint=_optional(fingerprint),
        signing_time=_optional(when),
    )


def _content(raw: object) -> tuple[Content, ...]:
    if not isinstance(raw, list):
        raise MalformedInput("cached decision: bad content")
    out: list[Content] = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 3:
            raise MalformedInput("cached decision: bad content entry")
        manifest, config, platform = item
        out.append(
            Content(
                manifest_digest=_text(manifest),
                config_digest=_text(config),
                platform=_optional(platform),
            )
        )
    return tuple(out)


def decode_decision(blob: bytes, *, reference: str = "") -> Decision:
    """The decision :func:`encode_decision` stored (``cache_hit`` and ``timings`` unset).

    Raises:
        MalformedInput: ``blob`` is not an encoding of this format.
    """
    try:
        unpacker = zlib.decompressobj(_RAW, zdict=_ZDICT)
        text = unpacker.decompress(blob) + unpacker.flush()
        if not unpacker.eof or unpacker.unused_data:
            raise MalformedInput("cached decision: truncated or trailing data")
        fields = json.loads(text)
        if not isinstance(fields, list) or len(fields) != 13 or fields[0] != _FORMAT:
            raise MalformedInput("cached decision: unknown format")
        _, flags, reason, message, digest, platform, statement, level, req, mode, gen = fields[:11]
        subs, content = fields[11:]
        if not isinstance(flags, int) or not isinstance(gen, int) or not isinstance(subs, list):
            raise MalformedInput("cached decision: bad field")
        return Decision(
            allowed=bool(flags & _ALLOWED),
            reason=Reason(_text(reason)),
            message=_text(message),
            reference=reference,
            digest=_text(digest),
            platform=_optional(platform),
            statement=_optional(statement),
            level=_optional(level),
            requirement=Requirement(_text(req)) if req is not None else None,
            mode=Mode(_text(mode)),
            inconclusive=bool(flags & _INCONCLUSIVE),
            fail_open=bool(flags & _FAIL_OPEN),
            audit_denied=bool(flags & _AUDIT_DENIED),
            subjects=tuple(_subject(s) for s in subs),
            generation=gen,
            content=_content(content),
        )
    except (zlib.error, ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise MalformedInput(f"cached decision: {exc}") from exc
