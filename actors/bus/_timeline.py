"""A tap's way across the bus, for benchmarks: with ``TAPGRID_BUS_TIMELINE``
set to a path, a gateway appends one JSON line per acked tap,
``[placed, sent, up, down, read]`` in ms of the wall clock: when the web
layer handed it to the bus (``place_order``), when its batch's XADD
returned, the tap entry's id and the ack entry's id (Redis's clock on the
same machine: when each went into its stream), and when the gateway read
the ack. So ``up - placed`` is the gateway's send side, ``down - up`` the
market (read, judge, commit, ack), ``read - down`` the gateway's inbox.
Off by default: it costs a dict entry per tap and a write per ack batch.
"""
import json
import time

from ._codec import decode_acks

__all__ = ["Timeline"]


def _id_ms(eid):
    return int(eid.split(b"-", 1)[0]) if isinstance(eid, bytes) else None


class Timeline:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1 << 16)
        self.taps = {}           # rid -> [placed, sent, up]

    def placed(self, rid):
        self.taps[rid] = [time.time() * 1000, None, None]

    def sent(self, batch, eid):
        now, up = time.time() * 1000, _id_ms(eid)
        for b in batch:
            t = self.taps.get(b[0])
            if t is not None:
                t[1], t[2] = now, up
        if len(self.taps) > 100_000:
            self.taps.clear()

    def acked(self, data, eid):
        now, down = time.time() * 1000, _id_ms(eid)
        lines = []
        for row in decode_acks(data):
            t = self.taps.pop(row[0], None)
            if t is not None:
                lines.append(json.dumps([round(t[0], 1), round(t[1] or 0, 1), t[2], down,
                                         round(now, 1)]))
        if lines:
            self.f.write("\n".join(lines) + "\n")
            self.f.flush()
