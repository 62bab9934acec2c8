"""A sans-I/O reader of client WebSocket frames (RFC 6455 section 5).

Feed it whatever bytes one ``recv`` gave; it returns every event those
bytes complete, in order, and keeps the rest for the next call. It never
reads or writes a socket, so the rules are tested without one and the I/O
around it stays thin (``web.gateway._wsfast``).

Events are tuples: ``("text", str)``, ``("binary", bytes)``,
``("ping", payload)``, ``("pong", payload)``, ``("close", code, reason)``
(a valid close from the client: the code to echo) and, last of all,
``("fail", code, why)``: the connection must be closed with ``code``
(1002 protocol error, 1007 invalid UTF-8, 1009 too big). After a close or a
failure the reader takes nothing more.

The size cap is enforced from the header: a data frame (or a fragmented
message) longer than ``limit`` fails with 1009 as soon as its length is
known, before its payload has arrived.

>>> import os
>>> def masked(op, payload, fin=True):
...     key = b"\\x01\\x02\\x03\\x04"
...     body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
...     return bytes(((0x80 if fin else 0) | op, 0x80 | len(payload))) + key + body
>>> r = FrameReader(limit=4096)
>>> data = masked(1, b'{"type":"ping"}') + masked(9, b"hi") + masked(1, b"ab", fin=False)
>>> r.feed(data[:7])
[]
>>> r.feed(data[7:])
[('text', '{"type":"ping"}'), ('ping', b'hi')]
>>> r.feed(masked(0, b"cd"))
[('text', 'abcd')]
>>> r.feed(bytes((0x81, 0xfe, 0x10, 0x01)))        # 4097 bytes announced
[('fail', 1009, 'frame of 4097 bytes over the 4096 limit')]
"""
import codecs

try:
    from wsaccel.xormask import XorMaskerSimple
except ImportError:  # pragma: no cover - wsaccel is a declared dependency
    XorMaskerSimple = None

__all__ = ["FrameReader", "unmask", "valid_close_code"]

_UTF8 = codecs.getincrementaldecoder("utf-8")


def _unmask_int(key, data):
    n = len(data)
    if not n:
        return b""
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


def unmask(key, data):
    """XOR ``data`` with the 4-byte mask ``key`` (RFC 6455 section 5.3)."""
    if XorMaskerSimple is not None:
        return XorMaskerSimple(key).process(data)
    return _unmask_int(bytes(key), bytes(data))


def valid_close_code(code):
    """A code a peer may send (RFC 6455 7.4.1 and the IANA registry):
    1004-1006 and 1015 are reserved and never go on the wire."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class FrameReader:
    __slots__ = ("limit", "_buf", "_op", "_parts", "_size", "_dec", "done")

    def __init__(self, limit=4096):
        self.limit = limit
        self._buf = bytearray()
        self._op = None            # opcode of the fragmented message in progress
        self._parts = []
        self._size = 0
        self._dec = None           # incremental UTF-8 check of a fragmented text
        self.done = False          # a close or a failure was returned

    def feed(self, data):
        if self.done:
            return []
        buf = self._buf
        if buf:
            buf += data
        else:
            buf = self._buf = bytearray(data)
        events = []
        pos, end = 0, len(buf)
        limit = self.limit
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            op = b0 & 0x0F
            if b0 & 0x70:
                return self._fail(events, 1002, "reserved bits set")
            if op > 10 or 2 < op < 8:
                return self._fail(events, 1002, f"reserved opcode {op}")
            if not b1 & 0x80:
                return self._fail(events, 1002, "client frames must be masked")
            length = b1 & 0x7F
            head = 6
            if length == 126:
                if end - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 8
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 14
            if op >= 8:
                if not b0 & 0x80:
                    return self._fail(events, 1002, "fragmented control frame")
                if length > 125:
                    return self._fail(events, 1002, "control frame over 125 bytes")
            elif length > limit or (op == 0 and self._size + length > limit):
                size = length if op else self._size + length
                return self._fail(events, 1009, f"frame of {size} bytes over the {limit} limit")
            stop = pos + head + length
            if stop > end:
                break
            payload = unmask(buf[pos + head - 4:pos + head], buf[pos + head:stop]) if length else b""
            pos = stop
            if op >= 8:
                if op == 9:
                    events.append(("ping", bytes(payload)))
                elif op == 10:
                    events.append(("pong", bytes(payload)))
                else:
                    return self._close(events, payload)
                continue
            fail = self._data(events, op, b0 & 0x80, payload)
            if fail is not None:
                return fail
        del buf[:pos]
        return events

    def _data(self, events, op, fin, payload):
        if op:
            if self._op is not None:
                return self._fail(events, 1002, "new message inside a fragmented one")
            if fin:
                if op == 1:
                    try:
                        events.append(("text", payload.decode("utf-8")))
                    except UnicodeDecodeError:
                        return self._fail(events, 1007, "text frame is not UTF-8")
                else:
                    events.append(("binary", bytes(payload)))
                return None
            self._op, self._parts, self._size = op, [payload], len(payload)
            self._dec = _UTF8() if op == 1 else None
        else:
            if self._op is None:
                return self._fail(events, 1002, "continuation without a start")
            self._parts.append(payload)
            self._size += len(payload)
        if self._dec is not None:
            try:
                # Fails at the first invalid byte, not at the end of the message.
                self._dec.decode(payload, final=bool(fin))
            except UnicodeDecodeError:
                return self._fail(events, 1007, "text message is not UTF-8")
        if fin:
            message = b"".join(self._parts)
            events.append(("text", message.decode("utf-8")) if self._op == 1
                          else ("binary", message))
            self._op, self._parts, self._size, self._dec = None, [], 0, None
        return None

    def _close(self, events, payload):
        if not payload:
            code, reason = 1000, ""        # no status: answer with a normal close
        elif len(payload) == 1:
            return self._fail(events, 1002, "close payload of one byte")
        else:
            code = (payload[0] << 8) | payload[1]
            if not valid_close_code(code):
                return self._fail(events, 1002, f"invalid close code {code}")
            try:
                reason = bytes(payload[2:]).decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(events, 1007, "close reason is not UTF-8")
        self.done = True
        self._buf = bytearray()
        events.append(("close", code, reason))
        return events

    def _fail(self, events, code, why):
        self.done = True
        self._buf = bytearray()
        events.append(("fail", code, why))
        return events
