"""The Autobahn|Testsuite fuzzingclient case groups 1-7 and 10, written
again as raw client frames with the closing behaviour RFC 6455 requires
(from the public case list; tapgrid's own rules where they differ: a data
message over the 4 KiB frame limit closes with 1009 instead of an echo).

Each case is ``Case(id, steps, expect)``:
- ``steps``: a list of (bytes, pause seconds) written in order ("chopped"
  cases split frames into small writes, "slowly" ones pause between them);
- ``expect``: ``Expect(close, messages, pongs)``: the close code the server
  must send (for cases where the connection must stay, 1000: the test then
  closes with 1000 itself and checks the echo), how many data messages the
  server must have taken before closing (each is answered by an ``error``
  frame, tapgrid's reply to anything that is not a protocol frame) and the
  ping payloads it must have answered, in order.
"""
import os
import struct
from typing import NamedTuple

__all__ = ["Case", "Expect", "CASES", "frame", "LIMIT"]

LIMIT = 4096
PAUSE = 0.02          # "slowly": a pause between writes, short to keep the suite fast


class Expect(NamedTuple):
    close: int
    messages: int = 0
    pongs: tuple = ()


class Case(NamedTuple):
    id: str
    steps: list
    expect: Expect
    stays_open: bool


def frame(op, payload=b"", fin=True, rsv=0, key=None):
    """A masked client frame (any bits the caller wants, valid or not)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0xFE, n)
    else:
        head = struct.pack("!BBQ", b0, 0xFF, n)
    key = key or os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code=None, reason=b""):
    return frame(8, b"" if code is None else struct.pack("!H", code) + reason)


def whole(*frames):
    return [(b"".join(frames), 0)]


def framewise(*frames):
    return [(f, PAUSE) for f in frames]


def chopped(*frames, size=1):
    data = b"".join(frames)
    return [(data[i:i + size], 0) for i in range(0, len(data), size)]


def _cases():
    out = []

    def add(cid, steps, close, messages=0, pongs=()):
        # Cases whose expected code is 1000 are the ones where the server must
        # keep the connection: the test closes it and expects the echo.
        out.append(Case(cid, steps, Expect(close, messages, tuple(pongs)), close == 1000))

    def data_ok(n):
        return (1000, 1) if n <= LIMIT else (1009, 0)

    # 1: framing, text and binary of several lengths
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for g, op, fill in ((1, 1, b"*"), (2, 2, b"\xfe")):
        for i, n in enumerate(sizes, 1):
            add(f"1.{g}.{i}", whole(frame(op, fill * n)), *data_ok(n))
        add(f"1.{g}.8", chopped(frame(op, fill * 65536), size=997), *data_ok(65536))

    # 2: pings and pongs
    add("2.1", whole(frame(9)), 1000, pongs=[b""])
    add("2.2", whole(frame(9, b"Hello, world!")), 1000, pongs=[b"Hello, world!"])
    binary = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
    add("2.3", whole(frame(9, binary)), 1000, pongs=[binary])
    add("2.4", whole(frame(9, b"\xfe" * 125)), 1000, pongs=[b"\xfe" * 125])
    add("2.5", whole(frame(9, b"\xfe" * 126)), 1002)
    add("2.6", chopped(frame(9, b"\xfe" * 125), size=1), 1000, pongs=[b"\xfe" * 125])
    add("2.7", whole(frame(10)), 1000)
    add("2.8", whole(frame(10, b"unsolicited pong payload")), 1000)
    add("2.9", whole(frame(10, b"unsolicited pong payload"), frame(9, b"ping payload")), 1000,
        pongs=[b"ping payload"])
    tens = [b"payload-%d" % i for i in range(10)]
    add("2.10", whole(*[frame(9, p) for p in tens]), 1000, pongs=tens)
    add("2.11", chopped(*[frame(9, p) for p in tens], size=1), 1000, pongs=tens)

    # 3: reserved bits
    hello = frame(1, b"Hello, world!")
    add("3.1", whole(frame(1, b"Hello, world!", rsv=1)), 1002)
    add("3.2", whole(hello, frame(1, b"Hello, world!", rsv=2), frame(9)), 1002, messages=1)
    add("3.3", framewise(hello, frame(1, b"Hello, world!", rsv=3), frame(9)), 1002, messages=1)
    add("3.4", chopped(hello, frame(1, b"Hello, world!", rsv=4), frame(9)), 1002, messages=1)
    add("3.5", whole(frame(2, binary, rsv=5)), 1002)
    add("3.6", whole(frame(9, b"Hello, world!", rsv=6)), 1002)
    add("3.7", whole(frame(8, struct.pack("!H", 1000), rsv=7)), 1002)

    # 4: reserved opcodes (non-control 3-7, control 11-15)
    for g, ops in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
        add(f"4.{g}.1", whole(frame(ops[0])), 1002)
        add(f"4.{g}.2", whole(frame(ops[1], b"reserved opcode payload")), 1002)
        add(f"4.{g}.3", whole(hello, frame(ops[2]), frame(9)), 1002, messages=1)
        add(f"4.{g}.4", whole(hello, frame(ops[3], b"reserved opcode payload"), frame(9)), 1002,
            messages=1)
        add(f"4.{g}.5", framewise(hello, frame(ops[4], b"reserved opcode payload"), frame(9)),
            1002, messages=1)

    # 5: fragmentation
    add("5.1", whole(frame(9, b"fragment1", fin=False), frame(0, b"fragment2")), 1002)
    add("5.2", whole(frame(10, b"fragment1", fin=False), frame(0, b"fragment2")), 1002)
    two = (frame(1, b"fragment1", fin=False), frame(0, b"fragment2"))
    add("5.3", whole(*two), 1000, messages=1)
    add("5.4", framewise(*two), 1000, messages=1)
    add("5.5", chopped(*two), 1000, messages=1)
    with_ping = (two[0], frame(9, b"ping payload"), two[1])
    add("5.6", whole(*with_ping), 1000, messages=1, pongs=[b"ping payload"])
    add("5.7", framewise(*with_ping), 1000, messages=1, pongs=[b"ping payload"])
    add("5.8", chopped(*with_ping), 1000, messages=1, pongs=[b"ping payload"])
    for i, fin in ((9, True), (12, False)):
        bad = (frame(0, b"non-continuation payload", fin=fin), hello)
        add(f"5.{i}", whole(*bad), 1002)
        add(f"5.{i + 1}", framewise(*bad), 1002)
        add(f"5.{i + 2}", chopped(*bad), 1002)
    add("5.15", whole(*two, frame(0, b"fragment3", fin=False), frame(1, b"fragment4")), 1002,
        messages=1)
    nothing = (frame(0, b"fragment1", fin=False), frame(0, b"fragment2"))
    add("5.16", whole(*nothing, *two, *nothing, *two), 1002)
    nothing_fin = (frame(0, b"fragment1"), frame(0, b"fragment2", fin=False))
    add("5.17", whole(*nothing_fin, *two, *nothing_fin, *two), 1002)
    add("5.18", whole(frame(1, b"fragment1", fin=False), frame(1, b"fragment2")), 1002)
    five = [frame(1, b"fragment1", fin=False), frame(0, b"fragment2", fin=False),
            frame(9, b"pongme 1!"), frame(0, b"fragment3", fin=False),
            frame(0, b"fragment4", fin=False), frame(9, b"pongme 2!"), frame(0, b"fragment5")]
    add("5.19", framewise(*five), 1000, messages=1, pongs=[b"pongme 1!", b"pongme 2!"])
    add("5.20", [(f, PAUSE * 2) for f in five], 1000, messages=1,
        pongs=[b"pongme 1!", b"pongme 2!"])

    # 6: UTF-8
    add("6.1.1", whole(frame(1)), 1000, messages=1)
    add("6.1.2", whole(frame(1, fin=False), frame(0, fin=False), frame(0)), 1000, messages=1)
    add("6.1.3", whole(frame(1, fin=False), frame(0, b"middle frame payload", fin=False),
                       frame(0)), 1000, messages=1)
    text = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode()
    add("6.2.1", whole(frame(1, text)), 1000, messages=1)
    add("6.2.2", whole(frame(1, text[:12], fin=False), frame(0, text[12:])), 1000, messages=1)
    add("6.2.3", whole(*_byte_fragments(text)), 1000, messages=1)
    kosme = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
    add("6.2.4", whole(*_byte_fragments(kosme)), 1000, messages=1)
    bad = kosme + b"\xed\xa0\x80edited"
    add("6.3.1", whole(frame(1, bad)), 1007)
    add("6.3.2", whole(*_byte_fragments(bad)), 1007)
    # fail fast: the invalid part arrives before the end of the message
    parts = (kosme, b"\xf4\x90\x80\x80", b"edited")
    add("6.4.1", framewise(frame(1, parts[0], fin=False), frame(0, parts[1], fin=False),
                           frame(0, parts[2])), 1007)
    add("6.4.2", framewise(frame(1, parts[0] + b"\xf4", fin=False),
                           frame(0, b"\x90\x80\x80", fin=False), frame(0, parts[2])), 1007)
    add("6.4.3", chopped(frame(1, kosme + b"\xf4\x90\x80\x80" + b"edited"), size=4), 1007)
    add("6.4.4", chopped(frame(1, kosme + b"\xf4\x90\x80\x80" + b"edited"), size=1), 1007)
    for g, seqs in enumerate(_utf8_sequences(), 5):
        for j, (valid, payload) in enumerate(seqs, 1):
            add(f"6.{g}.{j}", whole(frame(1, payload)), *((1000, 1) if valid else (1007, 0)))

    # 7: closing
    add("7.1.1", whole(hello, close_frame(1000)), 1000, messages=1)
    add("7.1.2", whole(close_frame(1000), close_frame(1000)), 1000)
    add("7.1.3", whole(close_frame(1000), frame(9)), 1000)
    add("7.1.4", whole(close_frame(1000), hello), 1000)
    add("7.1.5", whole(frame(1, b"fragment1", fin=False), close_frame(1000),
                       frame(0, b"fragment2")), 1000)
    add("7.1.6", whole(frame(1, b"BAsd7&jh23" * 26214), hello, close_frame(1000), frame(9)),
        1009)
    add("7.3.1", whole(close_frame()), 1000)
    add("7.3.2", whole(frame(8, b"\x03")), 1002)
    add("7.3.3", whole(close_frame(1000)), 1000)
    add("7.3.4", whole(close_frame(1000, b"Hello World!")), 1000)
    add("7.3.5", whole(close_frame(1000, b"*" * 123)), 1000)
    add("7.3.6", whole(frame(8, struct.pack("!H", 1000) + b"*" * 124)), 1002)
    add("7.5.1", whole(close_frame(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
                                         b"\xed\xa0\x80edited")), 1007)
    for i, code in enumerate((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
                              3999, 4000, 4999), 1):
        add(f"7.7.{i}", whole(close_frame(code)), code)
    for i, code in enumerate((0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999), 1):
        add(f"7.9.{i}", whole(close_frame(code)), 1002)
    add("7.13.1", whole(close_frame(5000)), 1002)
    add("7.13.2", whole(close_frame(65535)), 1002)

    # 10: a 64 KiB text message auto-fragmented into 1300-byte frames: over the limit
    big = b"*" * 65536
    pieces = [big[i:i + 1300] for i in range(0, len(big), 1300)]
    add("10.1.1", whole(frame(1, pieces[0], fin=False),
                        *[frame(0, p, fin=False) for p in pieces[1:-1]], frame(0, pieces[-1])),
        1009)
    return out


def _byte_fragments(data):
    frames = [frame(1 if i == 0 else 0, data[i:i + 1], fin=i == len(data) - 1)
              for i in range(len(data))]
    return frames


def _utf8_sequences():
    """Autobahn's groups 6.5-6.23 (Markus Kuhn's UTF-8 decoder test): lists
    of (valid, payload)."""
    kosme = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

    def valid(b):
        try:
            b.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    T, F = True, False
    groups = [
        [(T, b"hello\x24world"), (T, b"hello\xc2\xa2world"), (T, b"hello\xe2\x82\xacworld"),
         (T, b"hello\xf0\xa4\xad\xa2world"), (T, kosme)],
        [(valid(kosme[:i]), kosme[:i]) for i in range(1, len(kosme) + 1)],
        [(T, b"\x00"), (T, b"\xc2\x80"), (T, b"\xe0\xa0\x80"), (T, b"\xf0\x90\x80\x80")],
        [(F, b"\xf8\x88\x80\x80\x80"), (F, b"\xfc\x84\x80\x80\x80\x80")],
        [(T, b"\x7f"), (T, b"\xdf\xbf"), (T, b"\xef\xbf\xbf"), (T, b"\xf4\x8f\xbf\xbf")],
        [(F, b"\xf7\xbf\xbf\xbf"), (F, b"\xfb\xbf\xbf\xbf\xbf"), (F, b"\xfd\xbf\xbf\xbf\xbf\xbf")],
        [(T, b"\xed\x9f\xbf"), (T, b"\xee\x80\x80"), (T, b"\xef\xbf\xbd"), (T, b"\xf4\x8f\xbf\xbf"),
         (F, b"\xf4\x90\x80\x80")],
        [(F, b"\x80"), (F, b"\xbf"), (F, b"\x80\xbf"), (F, b"\x80\xbf\x80"),
         (F, b"\x80\xbf\x80\xbf"), (F, b"\x80\xbf\x80\xbf\x80"), (F, b"\x80\xbf\x80\xbf\x80\xbf"),
         (F, bytes(range(0x80, 0xbf)))],
        [(F, b"".join(bytes((i, 0x20)) for i in range(lo, hi)))
         for lo, hi in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd))],
    ]
    missing = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
               b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    groups.append([(F, k) for k in missing])
    groups.append([(F, b"".join(missing))])
    groups.append([(F, b"\xfe"), (F, b"\xff"), (F, b"\xfe\xfe\xff\xff")])
    groups.append([(F, b"\xc0\xaf"), (F, b"\xe0\x80\xaf"), (F, b"\xf0\x80\x80\xaf"),
                   (F, b"\xf8\x80\x80\x80\xaf"), (F, b"\xfc\x80\x80\x80\x80\xaf")])
    groups.append([(F, b"\xc1\xbf"), (F, b"\xe0\x9f\xbf"), (F, b"\xf0\x8f\xbf\xbf"),
                   (F, b"\xf8\x87\xbf\xbf\xbf"), (F, b"\xfc\x83\xbf\xbf\xbf\xbf")])
    groups.append([(F, b"\xc0\x80"), (F, b"\xe0\x80\x80"), (F, b"\xf0\x80\x80\x80"),
                   (F, b"\xf8\x80\x80\x80\x80"), (F, b"\xfc\x80\x80\x80\x80\x80")])
    singles = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
               b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"]
    groups.append([(F, s) for s in singles])
    groups.append([(F, a + b) for a in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80",
                                        b"\xed\xaf\xbf")
                   for b in (b"\xed\xb0\x80", b"\xed\xbf\xbf")])
    nonchars = [(T, b"\xef\xbf\xbe"), (T, b"\xef\xbf\xbf")]
    for z1 in (0xf0, 0xf1, 0xf2, 0xf3, 0xf4):
        for z2 in (0x8f, 0x9f, 0xaf, 0xbf):
            if z1 == 0xf4 and z2 != 0x8f:
                continue               # beyond U+10FFFF
            for z3 in (0xbe, 0xbf):
                zz = bytes((z1, z2, 0xbf, z3))
                if zz not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):   # overlong
                    nonchars.append((T, zz))
    groups.append(nonchars)
    groups.append([(T, bytes((0xef, 0xbf, c))) for c in range(0xb9, 0xc0)])
    return groups


CASES = _cases()
