"""Property tests: every parser of what a registry sends (``fuzz/`` targets) gets arbitrary
bytes, byte-mutated seeds and structurally mutated seeds (a JSON node replaced, a header value
rewritten from header-ish tokens, a status changed) and may only refuse with a
:class:`~pullgate.errors.PullgateError`; nothing hostile yields an allow (each target's oracle).

``make fuzz`` runs the same targets coverage-guided for longer (``fuzz/README.md``).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.mutate import json_paths, replace_at
from fuzz.seeds import SEEDS
from fuzz.targets import TARGETS
from fuzz.wire import SEP, Reply, join_fields, parse_reply

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = sorted(TARGETS)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=16)
    | st.sampled_from(["sha256:" + "a" * 64, "application/vnd.oci.image.manifest.v1+json"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)
# Pieces of header grammar: challenges, Link values, dates, numbers.
header_pieces = st.sampled_from(
    [
        "Bearer",
        "Basic",
        " ",
        ",",
        ";",
        "=",
        '"',
        "\\",
        "<",
        ">",
        "realm",
        "rel",
        "next",
        "https://",
        "http://",
        "registry.fuzz.test",
        "/v2/app/referrers/",
        "GMT",
        "Wed, 21 Oct 2015 07:28:00",
        "9" * 5,
        "9" * 400,
        "9" * 5000,
        "-1",
        "\x7f",
        "\xff",
        "[::1",
    ]
)
header_values = st.lists(header_pieces | st.text(max_size=6), max_size=12).map("".join)


def test_every_target_has_seeds() -> None:
    assert set(SEEDS) == set(TARGETS)
    for name, make in SEEDS.items():
        assert make(), name


def _mutate_json(text: bytes, data: st.DataObject) -> bytes | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    paths = list(json_paths(doc))
    path = paths[data.draw(st.integers(0, len(paths) - 1))]
    return json.dumps(replace_at(doc, path, data.draw(json_values))).encode()


def _mutate_field(field: bytes, data: st.DataObject) -> bytes:
    """A structural change of one field: JSON node, header value, status, or raw text."""
    as_json = _mutate_json(field, data)
    if as_json is not None and data.draw(st.booleans()):
        return as_json
    answer = parse_reply(field)
    how = data.draw(st.sampled_from(["body", "header", "status", "text"]))
    if how == "body":
        body = _mutate_json(answer.body, data) or data.draw(st.binary(max_size=40))
        answer = Reply(answer.status, answer.headers, body)
    elif how == "header":
        names = [n for n, _ in answer.headers] or ["Content-Type"]
        name = data.draw(st.sampled_from([*names, "Link", "WWW-Authenticate", "Retry-After"]))
        # As it arrives: UTF-8 bytes read as ISO-8859-1, one line.
        raw = data.draw(header_values).encode("utf-8", "surrogatepass")
        value = raw.decode("latin-1").replace("\n", " ").replace("\r", " ")
        headers = [(n, v) for n, v in answer.headers if n != name] + [(name, value)]
        answer = Reply(answer.status, tuple(headers), answer.body)
    elif how == "status":
        status = data.draw(st.sampled_from([200, 201, 301, 401, 403, 404, 405, 429, 500, 503]))
        answer = Reply(status, answer.headers, answer.body)
    else:
        return data.draw(header_values).encode("utf-8", "surrogatepass")
    return answer.encode()


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(name: str, data: bytes) -> None:
    TARGETS[name].run(data)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_byte_mutated_seeds(name: str, data: st.DataObject) -> None:
    seed = bytearray(data.draw(st.sampled_from(SEEDS[name]())))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(seed)))
        cut = data.draw(st.integers(0, 8))
        seed[at : at + cut] = data.draw(st.binary(max_size=8))
    TARGETS[name].run(bytes(seed))


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_structurally_mutated_seeds(name: str, data: st.DataObject) -> None:
    fields = data.draw(st.sampled_from(SEEDS[name]())).split(SEP)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(fields) - 1))
        fields[at] = _mutate_field(fields[at], data).replace(SEP, b"")
    TARGETS[name].run(join_fields(fields))
