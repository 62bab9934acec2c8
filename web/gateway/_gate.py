"""The door of the WebSocket gateway: at most ``limit`` upgrades are being
worked on at once (from admission until the new connection's first frames
are written), so a reconnect storm of thousands queues here, costing
nothing but a parked greenlet, instead of putting thousands of handshakes
in the event loop's run queue ahead of every established player's taps.

Up to ``queue`` more wait, in arrival order, at most ``wait_s`` each; a
slot freed is handed straight to the longest waiter. Beyond that, or after
waiting too long, ``enter`` says False and the caller refuses the upgrade
(503, Retry-After): the client backs off and comes back.

    >>> gate = HandshakeGate(limit=1, queue=0, wait_s=0.1)
    >>> gate.enter(), gate.enter()
    (True, False)
    >>> gate.leave(); gate.enter()
    True
"""
from collections import deque

from gevent.event import Event

__all__ = ["HandshakeGate"]


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
        self.waiting.remove(turn)
        self.refused += 1
        return False

    def leave(self):
        """Give the slot back: to the longest waiter if any, else free it."""
        if self.waiting:
            self.waiting.popleft().set()
        else:
            self.busy -= 1
