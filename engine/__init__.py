"""A small actor engine on gevent: tell/ask, supervision, death watch, bounded
mailboxes, timers, batch receive, a threadpool helper for blocking calls, and
supervised OS processes (``Child``).
It knows nothing of trading.

    >>> from engine import ActorSystem, Actor
    >>> class Counter(Actor):
    ...     def on_start(self): self.n = 0
    ...     def receive(self, msg):
    ...         if msg == "inc": self.n += 1
    ...         elif msg == "get": return self.n
    >>> system = ActorSystem()
    >>> ref = system.spawn(Counter, name="counter")
    >>> ref.tell("inc"); ref.ask("get", timeout=1)
    1
    >>> system.stop()
"""
from ._actor import Actor, ActorRef
from ._blocking import run_blocking
from ._parking import ParkingLine
from ._priority import URGENT_AFTER, BulkGate, callback_queue_len, urgent_lane, wake_soon
from ._console import interact, start_backdoor, stop_backdoor
from ._errors import (ActorDeadError, AskTimeout, DeadLetter, Escalation,
                      MailboxFull, Terminated)
from ._future import Future
from ._gcwatch import GC_PAUSE_BUCKETS, GcPacer, GcStats, GcWatch, settle_gc
from ._lagwatch import LagWatch
from ._native import NativePool
from ._procs import Child, ChildFailed, die_with_parent, notify_ready
from ._stats import ActorStats, DeadLetters, StatsTable
from ._supervision import (ESCALATE, RESTART, RESUME, STOP, OneForAll, OneForOne,
                           SupervisorStrategy)
from ._system import ActorSystem

__all__ = [
    "ActorSystem", "Actor", "ActorRef", "Future",
    "ActorDeadError", "AskTimeout", "MailboxFull", "Escalation", "Terminated",
    "DeadLetter",
    "OneForOne", "OneForAll", "SupervisorStrategy", "RESTART", "RESUME", "STOP", "ESCALATE",
    "ActorStats", "StatsTable", "DeadLetters",
    "run_blocking", "NativePool", "interact", "start_backdoor", "stop_backdoor",
    "Child", "ChildFailed", "die_with_parent", "notify_ready",
    "GcWatch", "GcStats", "GcPacer", "GC_PAUSE_BUCKETS", "settle_gc", "LagWatch", "BulkGate", "ParkingLine", "callback_queue_len",
    "wake_soon", "urgent_lane", "URGENT_AFTER",
]
