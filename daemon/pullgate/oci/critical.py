"""Critical images: pulls that skip verification so a node can always boot.

The allowlist holds entries of three forms:

* a digest, ``sha256:<hex>`` (or sha384/sha512): matches a pull *by that digest*, whatever the
  repository;
* a reference without ``*`` (``registry.k8s.io/pause:3.9``, ``pause:3.9``): normalised like
  containerd does and matched exactly (a tagged entry matches that tag; a digest entry that
  digest; a tag+digest entry only that digest in that repository);
* a pattern with ``*`` (``registry.k8s.io/pause:*``, ``*/calico/*``): ``*`` matches any run of
  characters *within one path component* -- never a ``/`` -- and nothing else is special, so
  ``*.gcr.io/*`` matches ``eu.gcr.io/app:1`` but not ``attacker.io/foo.gcr.io/x:1`` nor
  ``eu.gcr.io/team/app:1`` (write ``*.gcr.io/*/*`` for two components). Patterns are matched
  against the normalised pulled reference, so they are written in normalised form
  (``docker.io/library/…``).

Which spellings of the pulled reference are compared: a pull by tag only is spelled
``registry/repository:tag``. A pull that carries a digest (``…@sha256:…``, with or without a
tag) is fetched by that digest -- containerd ignores the tag -- so it is spelled
``registry/repository@digest`` only, never with its tag: a tag entry (``pause:3.9``) or a tag
pattern (``registry.k8s.io/pause:*``) does not admit ``pause:3.9@sha256:<anything>``, whose
content the tag says nothing about. Such pulls match digest entries, ``repository@digest``
(or ``repository:tag@digest``) entries, and patterns over the ``@digest`` spelling
(``registry.k8s.io/pause@*``, ``registry.k8s.io/*``).

Only a digest pins content. A tag or a pattern trusts whatever the registry serves under it;
every use is audited by the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pullgate.errors import ConfigError, MalformedInput
from pullgate.registry.model import ImageReference
from pullgate.registry.reference import parse_reference

_DIGEST_LIKE = re.compile(r"sha(?:256|384|512):")
_DIGEST = re.compile(r"(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})")


def _spellings(ref: ImageReference) -> tuple[str, ...]:
    """The spellings of ``ref`` an entry may match (see the module docstring)."""
    if ref.digest:
        # Content comes by digest: the tag must not vouch for it, in any spelling.
        return (f"{ref.locator}@{ref.digest}",)
    if ref.tag:
        return (f"{ref.locator}:{ref.tag}",)
    return ()


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` is any run of characters other than ``/``; everything else is literal."""
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True, slots=True, kw_only=True)
class CriticalImages:
    """A parsed allowlist; build it with :meth:`parse`."""

    digests: frozenset[str] = frozenset()
    references: frozenset[str] = frozenset()  # normalised spellings
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CriticalImages:
        """Parse allowlist entries.

        Raises:
            ConfigError: an entry that is neither a digest, a reference nor a pattern.
        """
        digests: set[str] = set()
        references: set[str] = set()
        patterns: list[tuple[str, re.Pattern[str]]] = []
        problems: list[str] = []
        for raw in entries:
            untrusted: object = raw  # entries come from a config file
            entry = untrusted.strip() if isinstance(untrusted, str) else ""
            if not entry:
                problems.append(f"critical image entry {raw!r} is empty or not a string")
            elif _DIGEST.fullmatch(entry):
                digests.add(entry)
            elif _DIGEST_LIKE.match(entry):  # would otherwise parse as docker.io/library/sha256
                problems.append(f"critical image entry {entry!r} is not a valid digest")
            elif "*" in entry:
                patterns.append((entry, _glob(entry)))
            else:
                try:
                    ref = parse_reference(entry)
                except MalformedInput as exc:
                    problems.append(f"critical image entry {entry!r}: {exc}")
                    continue
                # A tag+digest entry pins the digest; the tag is display only.
                references.add(f"{ref.locator}@{ref.digest}" if ref.digest else str(ref))
        if problems:
            raise ConfigError("invalid critical image list", tuple(problems))
        return cls(
            digests=frozenset(digests),
            references=frozenset(references),
            patterns=tuple(patterns),
        )

    def match(self, ref: ImageReference) -> str | None:
        """The allowlist entry that makes ``ref`` critical, or None."""
        if ref.digest and ref.digest in self.digests:
            return ref.digest
        spellings = _spellings(ref)
        for spelling in spellings:
            if spelling in self.references:
                return spelling
        for text, pattern in self.patterns:
            if any(pattern.fullmatch(s) for s in spellings):
                return text
        return None
