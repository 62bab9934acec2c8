"""Format 3 of a compressed archive file: the bet rows stored by column.

lzma over a whole SQLite day file (formats 1 and 2) spends most of its
time on the signatures and nonces (76 of the ~121 bytes of a row), which
are random and do not compress at all, and keeps ~9 bytes a row of SQLite's
record and cell headers. Format 3 stores:

- the day file without its bet rows (``meta``, the price record: the
  "residual" SQLite file), lzma-compressed;
- then the bet rows in groups of ``GROUP_ROWS``, each as two xz streams:
  the integer columns, one after another (``id`` and ``col`` as the
  differences between neighbours, every column in the narrowest integer
  type that holds it), plus the lengths of the nonces and signatures,
  lzma-compressed (~7 bytes a row); then the nonce and signature bytes in
  an xz stream of *stored* (uncompressed) LZMA2 chunks, which costs a copy
  and a CRC instead of a futile search for matches.

The whole file is still a valid ``.xz`` (concatenated streams: ``xz -d``
gives the payload). Reading unpacks it into a plain SQLite file again
(``unpack``), so history, audit and verify read every format alike; a
decompressed payload that starts with SQLite's own header is format 1/2.

Payload: ``MAGIC``, then frames of a kind byte and a little-endian u64
length: ``R`` the residual file, ``G`` a row group (a u32-length JSON
header naming each column's dtype, byte length and base, then the bytes),
``E`` the number of rows (the end).

    >>> import os, tempfile, lzma
    >>> data = os.urandom(200_000)
    >>> lzma.decompress(stored_xz(data)) == data and lzma.decompress(stored_xz(b"")) == b""
    True
"""
import json
import lzma
import os
import struct
import zlib

import numpy as np
import pysqlite3.dbapi2 as sqlite3

__all__ = ["MAGIC", "GROUP_ROWS", "Unsupported", "pack_steps", "unpack", "stored_xz",
           "is_columnar"]

MAGIC = b"tapgrid-archive 3\n"
GROUP_ROWS = 65_536
# lzma preset 6 with a 64 KiB dictionary: on a group's ~1.2 MB of small
# integers, measured: 7.06 B/row at 1.1 s per 150,000 rows (a 1 MiB one:
# 7.00 at 1.8 s; preset 0: 7.8 at 0.4 s)
_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 16}]
_DELTA = ("id", "col")      # in id order, neighbours' differences are small
_BYTES = ("nonce", "sig")   # random: stored, not compressed
_SYNC = 4 << 20


class Unsupported(ValueError):
    """A file this format cannot hold exactly (a value of an unexpected
    type): it is compressed as format 2 instead."""


def _mbi(n):
    """An xz multibyte integer."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def stored_xz(data):
    """``data`` as one xz stream of uncompressed LZMA2 chunks (CRC32 check)."""
    flags = b"\x00\x01"
    head = b"\xfd7zXZ\x00" + flags + struct.pack("<I", zlib.crc32(flags))
    # block header: 12 bytes, one filter (LZMA2, dictionary 1 MiB), no sizes
    bh = bytes((0x02, 0x00, 0x21, 0x01, 0x10, 0, 0, 0))
    bh += struct.pack("<I", zlib.crc32(bh))
    mv = memoryview(data)
    parts = []
    for i in range(0, len(data), 65536):
        piece = mv[i:i + 65536]
        # 1: stored chunk resetting the dictionary (the first), 2: stored chunk
        parts += [bytes((1 if i == 0 else 2,)) + struct.pack(">H", len(piece) - 1), piece]
    parts.append(b"\x00")
    comp = b"".join(parts)
    index = b"\x00" + _mbi(1) + _mbi(len(bh) + len(comp) + 4) + _mbi(len(data))
    index += b"\x00" * (-len(index) % 4)
    index += struct.pack("<I", zlib.crc32(index))
    backward = struct.pack("<I", len(index) // 4 - 1)
    foot = struct.pack("<I", zlib.crc32(backward + flags)) + backward + flags + b"YZ"
    return b"".join((head, bh, comp, b"\x00" * (-len(comp) % 4),
                     struct.pack("<I", zlib.crc32(data)), index, foot))


def _narrow(a):
    lo, hi = (int(a.min()), int(a.max())) if len(a) else (0, 0)
    for dt in ("<i1", "<i2", "<i4"):
        info = np.iinfo(np.dtype(dt))
        if info.min <= lo and hi <= info.max:
            return a.astype(dt), dt
    return a.astype("<i8"), "<i8"


def _xz(data):
    return lzma.compress(data, format=lzma.FORMAT_XZ, filters=_FILTERS)


def _frame(kind, body):
    return kind + struct.pack("<Q", len(body)) + body


def _encode(names, rows):
    """One row group: (the bytes to compress, the bytes to store)."""
    head, packed, stored = {"n": len(rows), "cols": []}, [], []
    for name, vals in zip(names, zip(*rows)):
        if name in _BYTES:
            kinds = [0 if type(v) is bytes else 1 if type(v) is str else None for v in vals]
            if None in kinds:
                raise Unsupported(f"{name}: a value that is neither blob nor text")
            raw = [v if type(v) is bytes else v.encode() for v in vals]
            k, kdt = _narrow(np.array(kinds, dtype=np.int64))
            ln, ldt = _narrow(np.array([len(v) for v in raw], dtype=np.int64))
            data = b"".join(raw)
            packed += [k.tobytes(), ln.tobytes()]
            stored.append(data)
            head["cols"].append({"name": name, "kinds": kdt, "lens": ldt, "data": len(data)})
            continue
        a = np.array(vals)          # int64 only when every value is an integer
        if a.dtype != np.int64:
            raise Unsupported(f"{name}: a value that is not an integer")
        col = {"name": name}
        if name in _DELTA and len(a):
            d = np.diff(a)
            # kept only when it spells the column back (no int64 wrap-around)
            if np.array_equal(np.concatenate((a[:1], a[0] + np.cumsum(d))), a):
                col["base"], a = int(a[0]), d
        a, col["dtype"] = _narrow(a)
        packed.append(a.tobytes())
        head["cols"].append(col)
    hj = json.dumps(head).encode()
    return _frame(b"G", struct.pack("<I", len(hj)) + hj + b"".join(packed)), b"".join(stored)


def _residual(plain, path):
    """``plain`` without its bet rows, as a new SQLite file at ``path``."""
    if os.path.exists(path):
        os.remove(path)
    src = sqlite3.connect("file:" + plain + "?mode=ro", uri=True, isolation_level=None)
    try:
        objs = src.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
                           " AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0"
                           " WHEN 'index' THEN 1 ELSE 2 END, rowid").fetchall()
    finally:
        src.close()
    dst = sqlite3.connect(path, isolation_level=None)
    try:
        dst.execute("PRAGMA journal_mode=OFF")
        dst.execute("PRAGMA synchronous=OFF")
        dst.execute("ATTACH DATABASE ? AS src", ("file:" + plain + "?mode=ro",))
        dst.execute("BEGIN")
        for kind, name, sql in objs:
            dst.execute(sql)
        for kind, name, _ in objs:
            if kind == "table" and name != "bet_rows":
                dst.execute(f'INSERT INTO main."{name}" SELECT * FROM src."{name}"')
        dst.execute("COMMIT")
        dst.execute("DETACH DATABASE src")
        dst.execute("VACUUM")
    finally:
        dst.close()
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def pack_steps(plain, dst, fsync_dir):
    """Write ``plain`` (a finished SQLite day file) to ``dst`` in format 3,
    durably (``dst.tmp``, fsynced, read back and compared table by table
    with ``plain``, renamed); a generator yielding ``("pause",)`` between
    row groups. Raises ``Unsupported`` (nothing written) for a file it
    cannot hold exactly."""
    tmp = dst + ".tmp"
    conn = sqlite3.connect("file:" + plain + "?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)
    try:
        names = [r[1] for r in conn.execute("PRAGMA table_info(bet_rows)")]
        residual = _residual(plain, tmp + ".residual")
        yield ("pause",)
        unsynced = n = 0
        with open(tmp, "wb") as out:
            out.write(_xz(MAGIC + _frame(b"R", residual)))
            cur = conn.execute(f"SELECT {', '.join(names)} FROM bet_rows ORDER BY id")
            while True:
                rows = cur.fetchmany(GROUP_ROWS)
                if not rows:
                    break
                comp, raw = _encode(names, rows)
                n += len(rows)
                for blob in (_xz(comp), stored_xz(raw)):
                    out.write(blob)
                    unsynced += len(blob)
                if unsynced >= _SYNC:
                    # dirty pages few, so the final fsync never stalls the Writer's
                    out.flush()
                    os.fdatasync(out.fileno())
                    unsynced = 0
                yield ("pause",)
            out.write(_xz(_frame(b"E", struct.pack("<Q", n))))
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        conn.close()
    yield ("pause",)
    check = tmp + ".check"
    try:
        unpack(tmp, check)
        _same(plain, check)
    except BaseException:
        os.remove(tmp)
        raise
    finally:
        if os.path.exists(check):
            os.remove(check)
    os.replace(tmp, dst)
    fsync_dir(dst)


def _same(plain, unpacked):
    """Every table of ``unpacked`` holds exactly the rows of ``plain``'s."""
    conn = sqlite3.connect(unpacked, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS p", ("file:" + plain + "?mode=ro",))
        tables = [r[0] for r in conn.execute("SELECT name FROM p.sqlite_master WHERE type ="
                                             " 'table' AND name NOT LIKE 'sqlite_%'")]
        for t in tables:
            a, b, diff = conn.execute(
                f'SELECT (SELECT count(*) FROM main."{t}"), (SELECT count(*) FROM p."{t}"),'
                f' (SELECT count(*) FROM (SELECT * FROM main."{t}" EXCEPT'
                f' SELECT * FROM p."{t}"))').fetchone()
            if a != b or diff:
                raise ValueError(f"format 3 read-back: table {t} differs ({a} vs {b} rows)")
    finally:
        conn.close()


class _Reader:
    """The payload of a (multi-stream) xz file, read in exact sizes."""

    def __init__(self, f):
        self.f, self.d, self.buf, self.raw = f, lzma.LZMADecompressor(), bytearray(), b""

    def read(self, n):
        while len(self.buf) < n:
            if self.d.eof:
                self.raw, self.d = self.d.unused_data + self.raw, lzma.LZMADecompressor()
            if self.d.needs_input and not self.raw:
                self.raw = self.f.read(1 << 20)
                if not self.raw:
                    raise ValueError("archive file ends early")
            self.buf += self.d.decompress(self.raw if self.d.needs_input else b"", 1 << 24)
            self.raw = b""
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def frame(self):
        kind = self.read(1)
        return kind, struct.unpack("<Q", self.read(8))[0]


def is_columnar(xz_path):
    """True for a format 3 file (else it is a compressed SQLite file)."""
    with lzma.open(xz_path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _decode(r):
    head = json.loads(r.read(struct.unpack("<I", r.read(4))[0]))
    n, cols = head["n"], []
    for c in head["cols"]:
        if "kinds" in c:
            kinds = np.frombuffer(r.read(n * np.dtype(c["kinds"]).itemsize), c["kinds"])
            lens = np.frombuffer(r.read(n * np.dtype(c["lens"]).itemsize), c["lens"])
            cols.append((kinds.tolist(), lens.tolist()))
            continue
        m = n - 1 if "base" in c else n
        a = np.frombuffer(r.read(max(0, m) * np.dtype(c["dtype"]).itemsize), c["dtype"])
        if "base" in c:
            a = np.concatenate(([c["base"]], c["base"] + np.cumsum(a, dtype=np.int64)))
        cols.append(a.tolist())
    for i, c in enumerate(head["cols"]):
        if "kinds" in c:
            kinds, lens = cols[i]
            data = r.read(c["data"])
            vals, o = [], 0
            for k, ln in zip(kinds, lens):
                v = data[o:o + ln]
                vals.append(v if k == 0 else v.decode())
                o += ln
            cols[i] = vals
    return [c["name"] for c in head["cols"]], list(zip(*cols))


def unpack(xz_path, path):
    """A format 3 file as a plain SQLite file at ``path`` (no history index)."""
    with open(xz_path, "rb") as f:
        r = _Reader(f)
        if r.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{xz_path}: not an archive file of format 3")
        kind, size = r.frame()
        if kind != b"R":
            raise ValueError(f"{xz_path}: no residual file first")
        with open(path, "wb") as out:
            out.write(r.read(size))
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN")
            n = 0
            while True:
                kind, size = r.frame()
                if kind == b"E":
                    if size != 8 or struct.unpack("<Q", r.read(8))[0] != n:
                        raise ValueError(f"{xz_path}: row count does not match its end")
                    break
                if kind != b"G":
                    raise ValueError(f"{xz_path}: unknown frame {kind!r}")
                names, rows = _decode(r)
                conn.executemany(f"INSERT INTO bet_rows({', '.join(names)}) VALUES"
                                 f" ({', '.join('?' * len(names))})", rows)
                n += len(rows)
            conn.execute("COMMIT")
        finally:
            conn.close()
