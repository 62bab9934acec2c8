"""Locust load for tapgrid: each ``TapUser`` is one guest player on one
WebSocket, tapping open cells near the price at a steady rate.

Every tap's ack becomes a locust request event (type ``WS``, name ``tap``)
timed from send to ack, so locust's own table shows taps/s and
percentiles; a reject is a failure whose exception is the reason code, so
the failures table groups them by reason. ``make load`` runs it headless
against a server it starts; by hand::

    locust -f perf/locustfile.py --headless -H http://127.0.0.1:8080 \\
        -u 50 -r 50 -t 60s --tap-rate 20

Options (flag or environment variable):

- ``--tap-rate`` / ``TAPGRID_LOAD_TAP_RATE``: taps per second per user (20);
- ``--tap-stake`` / ``TAPGRID_LOAD_STAKE``: stake in minor units (100);
- ``--tap-bands`` / ``TAPGRID_LOAD_BANDS``: spread of cells, +-bands around
  the price (4), so taps land on several cells and columns.

Taps are sent without waiting for the previous ack (``tap_async``): the
server is allowed to pipeline, and a slow ack does not lower the offered
rate. A user's client reconnects by itself (full jitter); taps attempted
while it is down are failures with the reason ``disconnected``.
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
from locust import User, constant, events, task  # noqa: E402

from web.client import TapgridClient  # noqa: E402

__all__ = ["TapUser", "TapReject", "pick_cell"]


class TapReject(Exception):
    """A tap the server refused; ``str()`` is the reason code, so locust's
    failure table groups by reason."""


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    parser.add_argument("--tap-rate", type=float, env_var="TAPGRID_LOAD_TAP_RATE", default=20.0,
                        help="taps per second per user")
    parser.add_argument("--tap-stake", type=int, env_var="TAPGRID_LOAD_STAKE", default=100,
                        help="stake per tap, minor units")
    parser.add_argument("--tap-bands", type=int, env_var="TAPGRID_LOAD_BANDS", default=4,
                        help="taps spread over +-N bands around the price")


def pick_cell(grid, now_ms, bands, margin_ms=800, rng=random):
    """(col, lo) of a random open cell within ``bands`` bands of the price,
    in a column that will not lock within ``margin_ms``; None if none."""
    if not grid:
        return None
    band = grid["band_cents"]
    lock = grid["lock_ms"]
    cols = [c for c in grid["columns"] if now_ms < c["t0"] - lock - margin_ms]
    if not cols:
        return None
    column = rng.choice(cols[:3])        # the near columns, where players tap
    base = grid["price"] // band * band
    los = {cell["lo"] for cell in column["cells"]}
    for _ in range(4):
        lo = base + rng.randint(-bands, bands) * band
        if lo in los:
            return column["t0"], lo
    return None


class TapUser(User):
    """A guest on one WebSocket, tapping at ``--tap-rate`` taps/s."""

    wait_time = constant(0)        # the task paces itself (open loop)

    def on_start(self):
        opts = self.environment.parsed_options
        self.rate = max(0.01, float(getattr(opts, "tap_rate", 20.0)))
        self.stake = int(getattr(opts, "tap_stake", 100))
        self.bands = int(getattr(opts, "tap_bands", 4))
        self.client = TapgridClient(self.host, timeout=30, backoff_base=5.0)
        t0 = time.perf_counter()
        try:
            self.client.guest()
            self._event("HTTP", "guest", t0, None)
            t0 = time.perf_counter()
            self.client.connect()
            if not self.client.wait_for(lambda: self.client.grid is not None, 10):
                raise TimeoutError("no grid frame")
            self._event("WS", "connect", t0, None)
        except Exception as exc:
            self._event("WS", "connect", t0, exc)
            raise
        # Spread users over the second so they do not tap in lockstep.
        gevent.sleep(random.random() / self.rate)
        self.next_at = time.perf_counter()

    def on_stop(self):
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    def _event(self, kind, name, t0, exc, length=0):
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=(time.perf_counter() - t0) * 1000,
            response_length=length, exception=exc, context={})

    @task
    def tap(self):
        # Open loop per user: the next tap is due 1/rate after the previous
        # one was due, not after its ack came back.
        self.next_at += 1.0 / self.rate
        c = self.client
        now_ms = int(time.time() * 1000) + c.clock_offset
        cell = pick_cell(c.grid, now_ms, self.bands)
        t0 = time.perf_counter()
        if cell is None:
            self._event("WS", "tap", t0, TapReject("no_open_cell"))
        else:
            try:
                fut = c.tap_async(cell[0], cell[1], self.stake, 101)
            except Exception:
                self._event("WS", "tap", t0, TapReject("disconnected"))
            else:
                fut.add_done_callback(lambda f, t0=t0: self._acked(f, t0))
        delay = self.next_at - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        elif delay < -1.0:
            self.next_at = time.perf_counter()   # fell behind by > 1 s: no burst

    def _acked(self, fut, t0):
        try:
            msg = fut.result()
        except Exception:
            return self._event("WS", "tap", t0, TapReject("disconnected"))
        if msg.get("ok"):
            self._event("WS", "tap", t0, None, 1)
        else:
            self._event("WS", "tap", t0, TapReject(msg.get("reason") or "unknown"))
