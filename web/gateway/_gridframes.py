"""The frames of a grid, and of any JSON object, as WebSocket bytes.

The embedded Fanout encodes with these, and so does the split's market (its
Publisher, through ``Encoders``), so the two send the same bytes. A grid is
``engine``'s ``Grid``-like object: ``price``, ``price_ts`` and ``columns``,
a dict of column start (ms) to ``{band's low edge (cents): multiplier}``.

    >>> from types import SimpleNamespace as NS
    >>> cfg = NS(column_ms=5000, band_cents=100, lock_ms=1000, horizon_ms=60000)
    >>> grid = NS(price=6500000, price_ts=1000, columns={5000: {6500100: 250, 6499900: 300}})
    >>> status = NS(is_open=True)
    >>> body = grid_bytes(cfg, grid, status)
    >>> body == json.dumps(grid_json(cfg, grid, status), separators=(",", ":")).encode()
    True
    >>> body[body.index(b'"columns"'):]
    b'"columns":[{"t0":5000,"cells":[{"lo":6499900,"mult":300},{"lo":6500100,"mult":250}]}]}'
    >>> grid2_json(cfg, grid, status)["columns"]
    [{'t0': 5000, 'lo': 6499900, 'mults': [300, None, 250]}]
    >>> typed_frame(b"grid", b'{"a":1}')
    b'\\x81\\x15{"type":"grid","a":1}'
    >>> frame({"type": "ping"})
    b'\\x81\\x0f{"type":"ping"}'
"""
import json

from ._wsfast import encode_text_frame

__all__ = ["frame", "grid_json", "grid_bytes", "typed_frame", "grid2_json"]


def frame(obj):
    return encode_text_frame(json.dumps(obj, separators=(",", ":")).encode())


def grid_json(cfg, grid, status, market_id=None):
    """The ``/api/grid`` body (and the ``grid`` frame without its type);
    ``market_id`` (v1.1) is added when given."""
    body = {
        "column_ms": cfg.column_ms, "band_cents": cfg.band_cents, "lock_ms": cfg.lock_ms,
        "horizon_ms": cfg.horizon_ms, "price": grid.price, "price_ts": grid.price_ts,
        "market": "open" if status.is_open else "suspended",
        "columns": [{"t0": t0, "cells": [{"lo": lo, "mult": m} for lo, m in sorted(cells.items())]}
                    for t0, cells in sorted(grid.columns.items())],
    }
    if market_id is not None:
        body["market_id"] = market_id
    return body


def grid_bytes(cfg, grid, status, market_id=None):
    """``json.dumps(grid_json(...), separators=(",", ":"))``, byte for byte,
    without building a dict per cell: a grid of 13 columns of 100 cells
    took ~1.4 ms that way, on the loop ten times a second per market (the
    one process's and the split market's alike); this takes about a third
    (tests/web/gateway/test_relay_encoders.py holds the two equal)."""
    cols = ",".join(['{"t0":%d,"cells":[%s]}' % (t0, ",".join(
        ['{"lo":%d,"mult":%d}' % cell for cell in sorted(cells.items())]))
        for t0, cells in sorted(grid.columns.items())])
    tail = "}" if market_id is None else ',"market_id":%s}' % json.dumps(market_id)
    return ('{"column_ms":%d,"band_cents":%d,"lock_ms":%d,"horizon_ms":%d,"price":%d,'
            '"price_ts":%d,"market":"%s","columns":[%s]%s'
            % (cfg.column_ms, cfg.band_cents, cfg.lock_ms, cfg.horizon_ms, grid.price,
               grid.price_ts, "open" if status.is_open else "suspended", cols, tail)).encode()


def typed_frame(kind, body):
    """The frame of a JSON object ``body`` with ``"type": kind`` put first."""
    return encode_text_frame(b'{"type":"%s",' % kind + body[1:])


def grid2_json(cfg, grid, status, market_id=None):
    """The ``grid2`` frame without its type: per column ``lo`` (its lowest
    band) and ``mults``, where ``mults[i]`` is the multiplier of the band
    ``lo + i * band_cents`` (null for a band not offered)."""
    band = cfg.band_cents
    columns = []
    for t0, cells in sorted(grid.columns.items()):
        if not cells:
            columns.append({"t0": t0, "lo": 0, "mults": []})
            continue
        lo = min(cells)
        n = (max(cells) - lo) // band + 1
        mults = [None] * n
        for c, m in cells.items():
            mults[(c - lo) // band] = m
        columns.append({"t0": t0, "lo": lo, "mults": mults})
    return {
        "column_ms": cfg.column_ms, "band_cents": band, "lock_ms": cfg.lock_ms,
        "horizon_ms": cfg.horizon_ms, "price": grid.price, "price_ts": grid.price_ts,
        "market": "open" if status.is_open else "suspended", "columns": columns,
    } | ({} if market_id is None else {"market_id": market_id})
