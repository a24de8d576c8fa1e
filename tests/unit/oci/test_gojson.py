"""Index decoding with Go's encoding/json rules, or a typed refusal where pullgate cannot be sure.

The real containerd is the judge in tests/integration/test_differential.py; these pin the rules.
"""

from __future__ import annotations

import pytest

from pullgate.errors import AmbiguousDocument, MalformedInput, Reason
from pullgate.oci.gojson import decode_index, decode_manifest_config, go_field

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
MT = "application/vnd.oci.image.manifest.v1+json"


def _index(body: str) -> bytes:
    """``body`` with ENTRY(x) spelled as E, F: an entry of digest A, plus x."""
    entry = '{"mediaType":"MT","digest":"DA","size":7'
    text = body.replace("E{", entry + ",").replace("E}", entry + "}")
    return (
        '{"schemaVersion":2,' + text.replace("MT", MT).replace("DA", A).replace("DB", B) + "}"
    ).encode()


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("digest", "digest"),
        ("Digest", "digest"),
        ("DIGEST", "digest"),
        ("\u017fize", "size"),  # long s folds to s
        ("\u212aey", "key"),  # Kelvin sign folds to k
        ("digests", None),
        ("dig est", None),
        ("d\u00efgest", None),
    ],
)
def test_key_folding_is_gos(key: str, field: str | None) -> None:
    assert go_field(key, frozenset({"digest", "size", "key"})) == field


def test_dotless_i_depends_on_the_go_release_so_is_refused() -> None:
    with pytest.raises(AmbiguousDocument):
        go_field("d\u0131gest", frozenset({"digest"}))


@pytest.mark.parametrize(
    "body",
    [
        '"manifests":[E}],"Manifests":[E}]',
        '"manifests":[E}],"manifests":[]',
        '"manifests":[E{"Digest":"DB"}]',
        '"manifests":[E{"Size":9}]',
        '"manifests":[E{"platform":{"os":"linux","OS":"x"}}]',
        '"manifests":[E{"platform":{},"Platform":null}]',
        '"manifests":[E{"annotations":{},"ANNOTATIONS":{}}]',
        '"mediaType":"x","MEDIATYPE":"y","manifests":[]',
    ],
)
def test_a_field_set_twice_is_ambiguous(body: str) -> None:
    with pytest.raises(AmbiguousDocument) as err:
        decode_index(_index(body))
    assert err.value.reason is Reason.AMBIGUOUS_DOCUMENT


def test_null_is_the_zero_value() -> None:
    platform = '"platform":{"os":"linux","architecture":"amd64","variant":null,"os.features":null}'
    got = decode_index(_index('"manifests":[E{' + platform + "}]"))
    assert got[0].platform is not None
    assert (got[0].platform.variant, got[0].platform.os_features) == ("", ())
    assert decode_index(_index('"manifests":[E{"platform":null}]'))[0].platform is None
    assert decode_index(_index('"manifests":null')) == ()


def test_case_variant_key_alone_is_read_as_go_reads_it() -> None:
    got = decode_index(_index('"Manifests":[{"MediaType":"MT","DIGEST":"DA","\u017fize":7}]'))
    assert [(d.media_type, d.digest, d.size) for d in got] == [(MT, A, 7)]


def test_unknown_keys_are_ignored_whatever_their_value() -> None:
    assert len(decode_index(_index('"manifests":[E{"x":[1,{}],"x":null}],"zz":1e400'))) == 1


def test_lone_surrogate_escape_becomes_replacement_character() -> None:
    got = decode_index(_index('"manifests":[E{"annotations":{"k":"\\ud800"}}]'))
    assert got[0].annotations == {"k": "\ufffd"}


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b"null",
        b'{"manifests": {}}',
        b'{"manifests": [1]}',
        b'{"manifests": [{"size": "7"}]}',
        b'{"manifests": [{"size": 7.0}]}',
        b'{"manifests": [{"size": 1e2}]}',
        b'{"manifests": [{"size": 9223372036854775808}]}',
        b'{"manifests": [{"platform": "linux/amd64"}]}',
        b'{"manifests": [{"annotations": {"a": 1}}]}',
        b'{"manifests": [{"data": "!!"}]}',
        b'{"manifests": [], "config": null}',
        b'{"manifests": [], "layers": [{}]}',
        b'{"manifests": [], "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
        b'{"manifests": [], "x": NaN}',
        b'\xef\xbb\xbf{"manifests": []}',
        b'{"manifests": [], "x": "\xff"}',
        b'{"manifests": []} {}',
    ],
)
def test_what_go_or_containerd_refuses_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        decode_index(data)


def _manifest(body: str) -> bytes:
    config = '{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"DA","size":2}'
    return ('{"schemaVersion":2,' + body.replace("CFG", config).replace("DA", A) + "}").encode()


def test_manifest_config_read_as_go_reads_it() -> None:
    assert decode_manifest_config(_manifest('"Config":CFG,"layers":[]')).digest == A
    assert decode_manifest_config(_manifest('"config":null')).digest == ""


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('"config":CFG,"Config":CFG', AmbiguousDocument),
        ('"config":CFG,"manifests":[{}]', MalformedInput),
        ('"config":CFG,"mediaType":"application/vnd.oci.image.index.v1+json"', MalformedInput),
        ('"config":CFG,"layers":[1]', MalformedInput),
        ('"config":"x"', MalformedInput),
    ],
)
def test_manifest_refusals(body: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_manifest_config(_manifest(body))
