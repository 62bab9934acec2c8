"""The door of the WebSocket gateway: at most ``limit`` upgrades are being
worked on at once (from admission until the new connection's first frames
are written), so a reconnect storm of thousands queues here, costing
nothing but a parked greenlet, instead of putting thousands of handshakes
in the event loop's run queue ahead of every established player's taps.

Up to ``queue`` more wait, in arrival order, at most ``wait_s`` each; a
slot freed is handed straight to the longest waiter. Beyond that, or after
waiting too long, ``enter`` says False and the caller refuses the upgrade
(503, Retry-After): the client backs off and comes back.

The gate bounds how many upgrades are under way, not how much of their
work lands in one loop turn: the balance replies of 32 upgrades come back
in one inbox read, and their 32 welcomes (a hello, a grid, a tick each)
then run back to back in that turn, while an established player's tap
waits for the turn to end at each of its hops. A ``TurnPacer`` bounds
that: at most ``per_turn`` callers go on per loop turn; the rest park, in
order, and a timer lets ``per_turn`` of them go in each later turn, so
between two batches the loop polls its sockets (the players' frames).

    >>> gate = HandshakeGate(limit=1, queue=0, wait_s=0.1)
    >>> gate.enter(), gate.enter()
    (True, False)
    >>> gate.leave(); gate.enter()
    True
"""
from collections import deque

from gevent.event import Event

from engine import ParkingLine

__all__ = ["HandshakeGate", "TurnPacer"]

YIELD_S = 0.0001     # the pacer's timer: due at once, run after the turn's I/O


class HandshakeGate:
    def __init__(self, limit, queue, wait_s):
        self.limit = max(1, int(limit))
        self.queue = max(0, int(queue))
        self.wait_s = wait_s
        self.busy = 0              # upgrades being worked on
        self.waiting = deque()     # Events of the upgrades queued, oldest first
        self.queued = 0            # upgrades that had to wait (ever)
        self.refused = 0           # upgrades turned away: queue full or waited too long

    def enter(self):
        """Take a slot, waiting for one if need be; False: refuse the upgrade."""
        if self.busy < self.limit and not self.waiting:
            self.busy += 1
            return True
        if len(self.waiting) >= self.queue:
            self.refused += 1
            return False
        turn = Event()
        self.waiting.append(turn)
        self.queued += 1
        if turn.wait(self.wait_s):
            return True            # leave() handed its slot over
        try:
            self.waiting.remove(turn)
        except ValueError:
            # leave() handed the slot over in the turn the wait ran out (both
            # were due): it is ours. (Refusing here raised, and the slot was
            # gone for good: under load a storm's gate lost every slot.)
            return True
        self.refused += 1
        return False

    def leave(self):
        """Give the slot back: to the longest waiter if any, else free it."""
        if self.waiting:
            self.waiting.popleft().set()
        else:
            self.busy -= 1


class TurnPacer:
    """At most ``per_turn`` callers of ``pace`` go on in one loop turn (0:
    no bound). The others park, oldest first, and a timer lets ``per_turn``
    go in each later turn, resumed straight from it (no callback of their
    own behind a storm's long callback queue).

        >>> import gevent
        >>> from gevent import get_hub
        >>> pacer, turns = TurnPacer(2), []
        >>> def upgrade():
        ...     pacer.pace()
        ...     turns.append(get_hub().loop.iteration)
        >>> _ = gevent.joinall([gevent.spawn(upgrade) for _ in range(5)])
        >>> [turns.count(t) for t in sorted(set(turns))]
        [2, 2, 1]
        >>> pacer.parked
        3
    """

    def __init__(self, per_turn):
        self.per_turn = max(0, int(per_turn))
        self._turn = -1            # the loop iteration the count is of
        self._went = 0             # callers gone on in that turn
        self.line = ParkingLine(YIELD_S, self._tick)

    @property
    def parked(self):
        """Callers that had to wait a turn (ever)."""
        return self.line.parked

    @property
    def waiting(self):
        return self.line.waiting

    def _room(self):
        turn = self.line.loop.iteration
        if turn != self._turn:
            self._turn, self._went = turn, 0
        return self._went < self.per_turn

    def pace(self):
        """Return once this greenlet may do its piece of upgrade work."""
        if not self.per_turn:
            return
        if not self.line and self._room():
            self._went += 1
            return
        self.line.park()

    def _tick(self):
        # In the hub, once a turn while anyone waits: this turn's share goes.
        line = self.line
        while line and self._room():
            if line.release():
                self._went += 1
