"""Compact binary encoding of int64 columns, event batches, snapshots and networks.

Every column is stored with the cheapest of three frame-of-reference encodings:

* ``FOR``: ``base`` and ``x - base`` in the narrowest unsigned width (0, 1, 2, 4 or
  8 bytes; width 0 means every value equals ``base``);
* ``DELTA``: the first value, then ``FOR`` of the successive differences (sequential
  event ids cost nothing);
* ``MASKED``: a default value, a bit mask of the rows that differ from it, and
  ``FOR`` of those rows (``ref`` and ``expires_at`` are mostly defaults).

Arithmetic is done in uint64, so differences wrap and decode exactly over the
whole int64 range. Decoding checks every length and raises ``ValueError`` on a
malformed blob; callers turn that into :class:`~allocator.exceptions.JournalCorruptError`.
"""

from __future__ import annotations

import hashlib
import io
import struct
from typing import Any

import numpy as np

from allocator.events import NO_EXPIRY, Events
from allocator.network import NetworkData

_FOR, _DELTA, _MASKED = 0, 1, 2
_WIDTHS = {0: None, 1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_HEAD = struct.Struct("<BqB")  # tag, base, width
_U64 = np.uint64

#: Per event column: (name, default used by MASKED or None, try DELTA).
EVENT_COLUMNS: tuple[tuple[str, int | None, bool], ...] = (
    ("id", None, True),
    ("kind", None, False),
    ("sku", -1, False),
    ("location", -1, False),
    ("channel", -1, False),
    ("qty", None, False),
    ("ref", 0, True),
    ("expires_at", int(NO_EXPIRY), False),
    ("link", 0, False),
)


def _width(span: int) -> int:
    if span == 0:
        return 0
    if span < 1 << 8:
        return 1
    if span < 1 << 16:
        return 2
    if span < 1 << 32:
        return 4
    return 8


def _for_parts(x: np.ndarray) -> tuple[int, int]:
    if x.shape[0] == 0:
        return 0, 0
    lo, hi = int(x.min()), int(x.max())
    return lo, _width(hi - lo)


def _put_for(out: list[bytes], x: np.ndarray, base: int, width: int, tag: int = _FOR) -> None:
    out.append(_HEAD.pack(tag, base, width))
    if width:
        u = x.view(_U64) - _U64(base & 0xFFFFFFFFFFFFFFFF)
        out.append(u.astype(_WIDTHS[width], copy=False).tobytes())


def encode_column(x: np.ndarray, default: int | None = None, delta: bool = False) -> bytes:
    """Encode one int64 column with its cheapest encoding."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    n = x.shape[0]
    base, width = _for_parts(x)
    best, size = _FOR, n * width
    if delta and n > 1:
        d = np.diff(x)  # wraps like uint64 arithmetic; decoded with cumsum in uint64
        dbase, dwidth = _for_parts(d)
        if (n - 1) * dwidth + 8 < size:
            best, size = _DELTA, (n - 1) * dwidth + 8
    if default is not None and n:
        mask = x != default
        sub = x[mask]
        mbase, mwidth = _for_parts(sub)
        msize = (n + 7) // 8 + sub.shape[0] * mwidth + 12
        if msize < size:
            best = _MASKED
    out: list[bytes] = []
    if best == _FOR:
        _put_for(out, x, base, width)
    elif best == _DELTA:
        out.append(_HEAD.pack(_DELTA, int(x[0]), 0))
        _put_for(out, d, dbase, dwidth)
    else:
        out.append(_HEAD.pack(_MASKED, int(default), 0))  # type: ignore[arg-type]
        out.append(struct.pack("<I", sub.shape[0]))
        out.append(np.packbits(mask).tobytes())
        _put_for(out, sub, mbase, mwidth)
    return b"".join(out)


class _Reader:
    def __init__(self, blob: bytes | memoryview) -> None:
        self.buf = memoryview(blob)
        self.at = 0

    def take(self, nbytes: int) -> memoryview:
        if nbytes < 0 or self.at + nbytes > len(self.buf):
            raise ValueError("blob too short")
        view = self.buf[self.at : self.at + nbytes]
        self.at += nbytes
        return view

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        return fmt.unpack(self.take(fmt.size))

    def for_values(self, n: int) -> np.ndarray:
        tag, base, width = self.unpack(_HEAD)
        if tag != _FOR:
            raise ValueError(f"expected a FOR block, got tag {tag}")
        return self.for_body(n, base, width)

    def for_body(self, n: int, base: int, width: int) -> np.ndarray:
        if width not in _WIDTHS:
            raise ValueError(f"bad column width {width}")
        if width == 0:
            return np.full(n, base, dtype=np.int64)
        raw = np.frombuffer(self.take(n * width), dtype=_WIDTHS[width])
        return (raw.astype(_U64) + _U64(base & 0xFFFFFFFFFFFFFFFF)).view(np.int64)


def decode_column(reader: _Reader, n: int) -> np.ndarray:
    """Decode one column of ``n`` values written by :func:`encode_column`."""
    tag, value, width = reader.unpack(_HEAD)
    if tag == _FOR:
        return reader.for_body(n, value, width)
    if tag == _DELTA:
        if n == 0:
            raise ValueError("delta column with no rows")
        d = reader.for_values(n - 1)
        out = np.empty(n, dtype=_U64)
        out[0] = _U64(value & 0xFFFFFFFFFFFFFFFF)
        np.cumsum(d.view(_U64), out=out[1:])
        out[1:] += out[0]
        return out.view(np.int64)
    if tag == _MASKED:
        (k,) = reader.unpack(struct.Struct("<I"))
        mask = np.unpackbits(
            np.frombuffer(reader.take((n + 7) // 8), dtype=np.uint8), count=n
        ).astype(np.bool_)
        if int(mask.sum()) != k:
            raise ValueError("mask count mismatch")
        out = np.full(n, value, dtype=np.int64)
        out[mask] = reader.for_values(k)
        return out
    raise ValueError(f"unknown column tag {tag}")


# --------------------------------------------------------------------------- batches
def encode_events(events: Events, ids: np.ndarray) -> bytes:
    """Encode a batch's columns, with ``ids`` (the ids as applied) for ``events.id``."""
    parts = [struct.pack("<I", len(events))]
    for name, default, delta in EVENT_COLUMNS:
        col = ids if name == "id" else getattr(events, name)
        if col.dtype != np.int64:
            col = col.astype(np.int64)
        parts.append(encode_column(col, default, delta))
    return b"".join(parts)


def decode_events(blob: bytes) -> dict[str, np.ndarray]:
    """Columns of an encoded batch (``link`` as bool)."""
    reader = _Reader(blob)
    (n,) = reader.unpack(struct.Struct("<I"))
    cols = {name: decode_column(reader, n) for name, _, _ in EVENT_COLUMNS}
    if reader.at != len(reader.buf):
        raise ValueError("trailing bytes after the last column")
    cols["link"] = cols["link"].astype(np.bool_)
    return cols


def encode_codes(codes: np.ndarray, duplicate: np.ndarray) -> bytes:
    """Result code per event, with the duplicate flag in bit 7."""
    packed = codes.astype(np.int64) | (duplicate.astype(np.int64) << 7)
    return encode_column(packed, 0)


def decode_codes(blob: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(codes uint8, duplicate bool)`` of an encoded batch of ``n`` events."""
    reader = _Reader(blob)
    packed = decode_column(reader, n)
    if reader.at != len(reader.buf) or ((packed < 0) | (packed > 255)).any():
        raise ValueError("malformed result codes")
    return (packed & 127).astype(np.uint8), (packed >> 7).astype(np.bool_)


# --------------------------------------------------------------------------- arrays
_ARRAY_HEAD = struct.Struct("<H B B q q")  # name length, dtype code, ndim, rows, cols
_DTYPES = {0: np.int64, 1: np.int8, 2: np.uint8, 3: np.bool_}
_DTYPE_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Encode named int arrays (1-D or 2-D); 2-D arrays column by column.

    1-D arrays named ``*value`` (packed id-index values) are stored as their low
    and high 32-bit halves, which encode far narrower than the whole words.
    """
    parts = [struct.pack("<I", len(arrays))]
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        code = _DTYPE_CODES[arr.dtype]
        raw = name.encode()
        rows = arr.shape[0]
        cols = arr.shape[1] if arr.ndim == 2 else 0
        parts.append(_ARRAY_HEAD.pack(len(raw), code, arr.ndim, rows, cols))
        parts.append(raw)
        flat = arr.astype(np.int64)
        columns = [flat] if arr.ndim == 1 else [flat[:, j] for j in range(cols)]
        if name.endswith("value") and arr.ndim == 1:  # packed id-index values: split
            columns = [flat & 0xFFFFFFFF, flat >> 32]
        for col in columns:
            parts.append(encode_column(col, 0, delta=True))
    return b"".join(parts)


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_arrays`."""
    reader = _Reader(blob)
    (count,) = reader.unpack(struct.Struct("<I"))
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        nlen, code, ndim, rows, cols = reader.unpack(_ARRAY_HEAD)
        if code not in _DTYPES or ndim not in (1, 2) or rows < 0 or cols < 0:
            raise ValueError("bad array header")
        name = bytes(reader.take(nlen)).decode()
        if ndim == 1 and name.endswith("value"):
            low = decode_column(reader, rows)
            arr = low | (decode_column(reader, rows) << 32)
        elif ndim == 1:
            arr = decode_column(reader, rows)
        else:
            arr = np.empty((rows, cols), dtype=np.int64)
            for j in range(cols):
                arr[:, j] = decode_column(reader, rows)
        out[name] = arr.astype(_DTYPES[code])
    if reader.at != len(reader.buf):
        raise ValueError("trailing bytes after the last array")
    return out


# --------------------------------------------------------------------------- network
_NET_STR = ("channel_names", "location_names", "sku_names")
_NET_ARR = (
    "location_kind",
    "lat",
    "lon",
    "serves",
    "ships",
    "pickup",
    "same_day_radius_km",
    "excluded",
    "pick_capacity",
    "cost_multiplier",
    "sku_price",
    "sku_unit_cost",
)


def encode_network(network: NetworkData) -> bytes:
    """The network as an ``.npz`` archive (no pickle)."""
    fields: dict[str, np.ndarray] = {
        name: np.array(getattr(network, name), dtype=np.str_) for name in _NET_STR
    }
    fields.update({name: np.asarray(getattr(network, name)) for name in _NET_ARR})
    buf = io.BytesIO()
    np.savez(buf, **fields)  # type: ignore[arg-type]
    return buf.getvalue()


def decode_network(blob: bytes) -> NetworkData:
    """Inverse of :func:`encode_network`; ``ValueError`` for any malformed archive."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            kwargs: dict[str, Any] = {
                name: tuple(str(s) for s in data[name].tolist()) for name in _NET_STR
            }
            kwargs.update({name: data[name] for name in _NET_ARR})
        return NetworkData(**kwargs)
    except Exception as exc:  # zipfile, numpy and validation errors alike
        raise ValueError(f"stored network unreadable: {exc}") from exc


def network_digest(network: NetworkData) -> bytes:
    """BLAKE2b-256 over every field of the network (names and arrays)."""
    h = hashlib.blake2b(digest_size=32)
    for name in _NET_STR:
        for s in getattr(network, name):
            h.update(s.encode() + b"\0")
        h.update(b"\1")
    for name in _NET_ARR:
        arr = np.ascontiguousarray(getattr(network, name))
        h.update(str(arr.dtype).encode() + np.array(arr.shape, dtype=np.int64).tobytes())
        h.update(arr.tobytes())
    return h.digest()
