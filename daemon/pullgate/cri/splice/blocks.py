"""A lean decoder for the caller's request field blocks, on the ``hpack`` library's own
dynamic table (RFC 7541).

The library's ``Decoder.decode`` costs ~30-50 us per gRPC request block here, most of it in
per-field bookkeeping (a logging call per field, tuple subclasses), and the runtime gate decodes
every block of every call. :func:`decode_block` reads the same representations (§6.1 indexed,
§6.2 literals with and without indexing, never indexed) with the library's integer and Huffman
decoders, table lookups and insertions (``HeaderTable.add`` keeps its eviction rules), and the
library's limits; a block that starts with a dynamic table size update (§6.3) is left to the
library whole, before anything is read (so the table's size limit, and the library's check of
it against what the runtime allows, change only there). The result, the table after it, and
which blocks are errors are the library's (tests/unit/cri/test_splice_blocks.py decodes the same
blocks both ways). docs/decisions.md has the numbers.
"""

from __future__ import annotations

from collections import deque

from hpack import (
    Decoder,
    HPACKDecodingError,
    InvalidTableIndex,
    OversizedHeaderListError,
)
from hpack.hpack import decode_integer
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

__all__ = ["decode_block"]

_STATIC = HeaderTable.STATIC_TABLE
_STATIC_LEN = len(_STATIC)
_FIRST_DYNAMIC = _STATIC_LEN + 1
_ENTRY_OVERHEAD = 32  # RFC 7541 §4.1

Field = tuple[bytes, bytes]


def _entry(dynamic: deque[Field], index: int) -> Field:
    """Table entry ``index`` (1-based: static entries, then dynamic ones newest first, §2.3.3)."""
    if 0 < index <= _STATIC_LEN:
        return _STATIC[index - 1]
    at = index - _STATIC_LEN - 1
    if 0 <= at < len(dynamic):
        return dynamic[at]
    raise InvalidTableIndex(f"invalid table index {index}")


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    """The string literal at ``pos`` (§5.2) and the offset past it."""
    if pos >= len(block):
        raise HPACKDecodingError("truncated field block")
    first = block[pos]
    length = first & 0x7F
    if length == 0x7F:
        length, used = decode_integer(block[pos:], 7)
    else:
        used = 1
    start = pos + used
    stop = start + length
    data = block[start:stop]
    if len(data) != length:
        raise HPACKDecodingError("truncated field block")
    if first & 0x80:
        data = decode_huffman(data)
    return data, stop


def decode_block(decoder: Decoder, block: bytes) -> list[Field] | None:
    """The fields of ``block`` as ``decoder.decode(block, raw=True)`` gives them, with the
    same effect on its dynamic table; None, untouched, when the block starts with a table size
    update (the caller decodes it with the library).

    Raises:
        HPACKDecodingError: where the library raises it (the table may be partly updated, as
            with the library: the connection cannot go on).
    """
    if block and block[0] & 0xE0 == 0x20:
        return None
    table = decoder.header_table
    dynamic = table.dynamic_entries
    limit = decoder.max_header_list_size
    fields: list[Field] = []
    inflated = 0
    pos, end = 0, len(block)
    while pos < end:
        first = block[pos]
        if first & 0x80:  # indexed (§6.1)
            index = first & 0x7F
            if index == 0x7F:
                index, used = decode_integer(block[pos:], 7)
                pos += used
            else:
                pos += 1
            at = index - _FIRST_DYNAMIC  # a dynamic entry, the usual case, is read inline
            field = dynamic[at] if 0 <= at < len(dynamic) else _entry(dynamic, index)
        else:
            if first & 0x40:  # with incremental indexing (§6.2.1)
                mask, bits, indexing = 0x3F, 6, True
            elif first & 0x20:
                raise HPACKDecodingError("table size update not at the start of the block")
            else:  # without indexing or never indexed (§6.2.2, §6.2.3)
                mask, bits, indexing = 0x0F, 4, False
            index = first & mask
            if index == mask:
                index, used = decode_integer(block[pos:], bits)
                pos += used
            else:
                pos += 1
            if index:
                name = _entry(dynamic, index)[0]
            else:
                name, pos = _string(block, pos)
            value, pos = _string(block, pos)
            field = (name, value)
            if indexing:
                table.add(name, value)
        fields.append(field)
        inflated += _ENTRY_OVERHEAD + len(field[0]) + len(field[1])
        if inflated > limit:
            raise OversizedHeaderListError(f"a header list larger than {limit}")
    return fields  # the table's size limit changed only by an update, which the library reads
