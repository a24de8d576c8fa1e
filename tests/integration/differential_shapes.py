# ruff: noqa: E501  (one line per shape)
"""The corpus of index shapes the differential test pushes to the real registry (one line each).

A shape names its image manifests (each with the platform its config declares), which of them
(and which nested index, and ``"index"`` for the top level) are signed, and the raw JSON text of
its index, written through :class:`Refs` so any spelling (duplicate keys, case variants,
``null``, odd escapes) can be expressed. ``u*`` manifests are unsigned, ``s*`` signed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pullgate.common.descriptor import Descriptor
from tests.support.push import MT_INDEX, MT_MANIFEST

MT_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
ATTEST = '"annotations":{"vnd.docker.reference.type":"attestation-manifest"}'


class Refs:
    """Digests and sizes of a shape's pushed manifests and nested indexes, and JSON helpers."""

    def __init__(self, pushed: Mapping[str, Descriptor]) -> None:
        self.pushed = pushed

    def d(self, name: str) -> str:
        return self.pushed[name].digest

    def z(self, name: str) -> int:
        return self.pushed[name].size

    def e(
        self,
        name: str,
        plat: str | None = "linux/amd64",
        *,
        mt: str | None = None,
        extra: str = "",
        platform: str | None = None,
    ) -> str:
        """One entry: ``plat`` as os/arch[/variant], or ``platform`` as raw JSON text."""
        media_type = mt or self.pushed[name].media_type
        parts = [f'"mediaType":"{media_type}"', f'"digest":"{self.d(name)}"']
        parts.append(f'"size":{self.z(name)}')
        if platform is not None:
            parts.append(f'"platform":{platform}')
        elif plat is not None:
            os_name, arch, *variant = plat.split("/")
            fields = f'"os":"{os_name}","architecture":"{arch}"'
            fields += f',"variant":"{variant[0]}"' if variant else ""
            parts.append(f'"platform":{{{fields}}}')
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}"


def idx(*entries: str, mt: str = MT_INDEX, key: str = "manifests", extra: str = "") -> str:
    """An index document's text over ``entries`` (raw JSON objects)."""
    tail = f",{extra}" if extra else ""
    return f'{{"schemaVersion":2,"mediaType":"{mt}","{key}":[{",".join(entries)}]{tail}}}'


Build = Callable[[Refs], str]


@dataclass(frozen=True)
class Shape:
    """One index shape: manifests (name → config platform), what is signed, the documents."""

    name: str
    manifests: Mapping[str, str]
    signed: frozenset[str]
    index: Build
    media_type: str = MT_INDEX
    nested: Mapping[str, tuple[str, Build]] = field(default_factory=dict)  # name → (type, doc)


def shape(
    name: str,
    index: Build,
    *,
    m: str = "s u",
    sign: str = "s",
    mt: str = MT_INDEX,
    nested: Mapping[str, tuple[str, Build]] | None = None,
    plats: Mapping[str, str] | None = None,
) -> Shape:
    """A shape whose manifests are named in ``m`` (config linux/amd64 unless ``plats``)."""
    names = m.split()
    manifests = {n: (plats or {}).get(n, "linux/amd64") for n in names}
    return Shape(name, manifests, frozenset(sign.split()), index, mt, nested or {})


A64 = {"a": "linux/arm64"}
P386 = {"x": "linux/386"}

# fmt: off
SHAPES: tuple[Shape, ...] = (
    # baselines
    shape("plain", lambda r: idx(r.e("s"), r.e("a", "linux/arm64")), m="s a", sign="s a index", plats=A64),
    shape("dup-platform-unsigned-first", lambda r: idx(r.e("u"), r.e("s"))),
    shape("dup-platform-signed-first", lambda r: idx(r.e("s"), r.e("u"))),
    shape("index-signed-unsigned-first", lambda r: idx(r.e("u"), r.e("s")), sign="s index"),
    # the five shapes of the report
    shape("manifests-and-Manifests", lambda r: idx(r.e("s"), extra=f'"Manifests":[{r.e("u")}]')),
    shape("digest-and-Digest", lambda r: idx(r.e("s", extra=f'"Digest":"{r.d("u")}","Size":{r.z("u")}'))),
    shape("variant-null", lambda r: idx(r.e("u", platform='{"os":"linux","architecture":"amd64","variant":null}'), r.e("s"))),
    shape("attestation-annotated-amd64", lambda r: idx(r.e("u", extra=ATTEST), r.e("s"))),
    shape("nested-index-first", lambda r: idx(r.e("n"), r.e("s")), nested={"n": (MT_INDEX, lambda r: idx(r.e("u")))}),
    # case variants and Go's key folds
    shape("only-Manifests", lambda r: idx(r.e("s"), key="Manifests")),
    shape("descriptor-keys-upper", lambda r: idx(f'{{"MediaType":"{MT_MANIFEST}","DIGEST":"{r.d("s")}","Size":{r.z("s")},"Platform":{{"OS":"linux","Architecture":"amd64"}}}}')),
    shape("Platform-key-on-unsigned-first", lambda r: idx(r.e("u", None, extra='"Platform":{"os":"linux","architecture":"amd64"}'), r.e("s"))),
    shape("long-s-os-key", lambda r: idx(r.e("u", platform='{"o\u017f":"windows","architecture":"amd64"}'), r.e("s"))),
    shape("dotless-i-architecture-key", lambda r: idx(r.e("u", platform='{"os":"linux","arch\u0131tecture":"amd64"}'), r.e("s"))),
    shape("platform-os-twice", lambda r: idx(r.e("u", platform='{"os":"windows","architecture":"amd64","OS":"linux"}'), r.e("s"))),
    # null and zero values
    shape("platform-null-first", lambda r: idx(r.e("u", platform="null"), r.e("s"))),
    shape("os-empty", lambda r: idx(r.e("u", platform='{"os":"","architecture":"amd64"}'), r.e("s"))),
    shape("os-missing", lambda r: idx(r.e("u", platform='{"architecture":"amd64"}'), r.e("s"))),
    shape("variant-null-signed", lambda r: idx(r.e("s", platform='{"os":"linux","architecture":"amd64","variant":null}'))),
    shape("os-features-first", lambda r: idx(r.e("u", platform='{"os":"linux","architecture":"amd64","os.features":["sse4"]}'), r.e("s"))),
    # normalisation and the Only vector
    shape("upper-case-platform", lambda r: idx(r.e("u", "LINUX/AMD64"), r.e("s"))),
    shape("x86_64-arch", lambda r: idx(r.e("u", "linux/x86_64"), r.e("s"))),
    shape("amd64-v1-variant", lambda r: idx(r.e("u", "linux/amd64/v1"), r.e("s"))),
    shape("amd64-v2-variant", lambda r: idx(r.e("u", "linux/amd64/v2"), r.e("s"))),
    shape("i686-arch", lambda r: idx(r.e("u", "linux/i686"), r.e("s"))),
    shape("386-only-signed", lambda r: idx(r.e("x", "linux/386"), r.e("a", "linux/arm64")), m="x a", sign="x", plats={**P386, **A64}),
    shape("386-before-amd64", lambda r: idx(r.e("x", "linux/386"), r.e("s")), m="x s", sign="s", plats=P386),
    shape("arm-variants-then-amd64", lambda r: idx(r.e("a", "linux/arm64"), r.e("u", "linux/arm/v7"), r.e("s")), m="a u s", sign="s", plats=A64),
    # platform-less, attestation and odd entries
    shape("platformless-first", lambda r: idx(r.e("u", None), r.e("s"))),
    shape("platformless-only-unsigned", lambda r: idx(r.e("u", None))),
    shape("platformless-only-signed", lambda r: idx(r.e("s", None))),
    shape("buildx-attestation-unknown", lambda r: idx(r.e("s"), r.e("u", "unknown/unknown", extra=ATTEST))),
    shape("unknown-media-type-first", lambda r: idx(r.e("u", mt="application/vnd.example.thing+json"), r.e("s"))),
    # nested indexes and docker manifest lists
    shape("nested-signed-leaf", lambda r: idx(r.e("n")), nested={"n": (MT_INDEX, lambda r: idx(r.e("s")))}),
    shape("nested-platformless-after", lambda r: idx(r.e("s"), r.e("n", None)), nested={"n": (MT_INDEX, lambda r: idx(r.e("u")))}),
    shape("nested-list-first", lambda r: idx(r.e("n"), r.e("s")), nested={"n": (MT_LIST, lambda r: idx(r.e("u"), mt=MT_LIST))}),
    shape("manifest-list", lambda r: idx(r.e("s"), r.e("a", "linux/arm64"), mt=MT_LIST), m="s a", sign="s", mt=MT_LIST, plats=A64),
    shape("manifest-list-unsigned-first", lambda r: idx(r.e("u"), r.e("s"), mt=MT_LIST), mt=MT_LIST),
    # odd but valid JSON
    shape("escaped-keys", lambda r: idx(r.e("s")).replace('"manifests"', '"\\u006danifests"')),
    shape("unknown-fields", lambda r: idx(r.e("s", extra='"x":[1,{"digest":"no"}],"x":null'), extra=f'"zz":{{"manifests":[{r.e("u")}]}}')),
    shape("whitespace", lambda r: " \n" + idx(r.e("u", "linux/arm64"), r.e("s")).replace(",", " ,\n\t") + "\n"),
)
# fmt: on
