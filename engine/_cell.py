"""The runtime of one actor: its mailbox, its greenlet, its stopping (its
supervision, what a failure leads to, is ``_cellsup.Supervised``).

Users never touch a ``Cell``; they hold an :class:`ActorRef`. Overflow
policy of a bounded mailbox (``mailbox_size > 0``):

- ``overflow="reject"`` (default): ``tell``/``ask`` raise ``MailboxFull`` in
  the sender and the message is counted as a dead letter;
- ``overflow="block"``: the sending greenlet waits for room (a hub callback
  or timer cannot wait, so there it is rejected as above).
"""
import logging
import sys
from collections import deque

import gevent
from gevent import get_hub, getcurrent
from gevent.event import Event

from ._actor import ActorRef
from ._errors import ActorDeadError, MailboxFull, Terminated
from ._future import Future
from ._cellsup import _ALIVE, Supervised
from ._priority import wake_soon
from ._stats import ActorStats
from ._timers import Timers

log = logging.getLogger("engine")

_STOP = object()


class _Ask:
    """An ask in the mailbox; a tell is queued as the bare message, so the
    hot path allocates nothing per tell."""
    __slots__ = ("msg", "fut")

    def __init__(self, msg, fut):
        self.msg = msg
        self.fut = fut


def _pair(item):
    """(message, reply) as ``receive_batch`` and dead letters see it."""
    return (item.msg, item.fut) if type(item) is _Ask else (item, None)
class Cell(Supervised):
    def __init__(self, system, cls, args, kwargs, name, parent, mailbox_size=0,
                 overflow="reject"):
        if overflow not in ("reject", "block"):
            raise ValueError("overflow must be 'reject' or 'block'")
        self.system = system
        self.cls = cls
        self.args = args
        self.kwargs = kwargs
        self.name = name
        self.parent = parent
        self.path = (parent.path if parent else "") + "/" + name
        self.mailbox = deque()
        self.capacity = mailbox_size if mailbox_size and mailbox_size > 0 else sys.maxsize
        self.overflow = overflow
        self.stats = ActorStats(self, self.mailbox,
                                mailbox_size if mailbox_size else None)
        self.state = "starting"
        self.peak = 0
        self.accepting = True
        self.idle = False
        self.hub = get_hub()
        self.children = []
        self.watchers = set()
        self.timers = Timers(self)
        self.restart_history = deque()
        self.pending_restart = None
        self.waiting_senders = 0
        self.space = Event()
        self.stopped = Event()
        self.current_reply = None
        self.instance = None
        self.ref = ActorRef(self)
        self.instance = self._new_instance()
        self.greenlet = gevent.Greenlet(self._run)
        self.greenlet.name = "actor:" + self.path
        self.switch = self.greenlet.switch
        self.greenlet.start()

    # --- sending -----------------------------------------------------------------

    def tell(self, msg):
        mb = self.mailbox
        n = len(mb)
        if self.accepting and n < self.capacity:
            mb.append(msg)
            if n >= self.peak:
                self.peak = n + 1
            if self.idle:
                self.idle = False
                wake_soon(self.hub.loop, self.switch)
            return
        self._tell_slow(msg)

    def _tell_slow(self, msg):
        if not self.accepting:
            self.system._dead_letter(self.ref, msg, "stopped")
            return
        self._overflow(msg)
        self.mailbox.append(msg)
        self.peak = max(self.peak, len(self.mailbox))
        if self.idle:
            self.idle = False
            wake_soon(self.hub.loop, self.switch)

    def ask(self, msg):
        fut = Future()
        if not self.accepting:
            self.system._dead_letter(self.ref, msg, "stopped")
            fut.fail(ActorDeadError(f"{self.path} is {self.state}"))
            return fut
        mb = self.mailbox
        if len(mb) >= self.capacity:
            self._overflow(msg)
        mb.append(_Ask(msg, fut))
        if len(mb) > self.peak:
            self.peak = len(mb)
        if self.idle:
            self.idle = False
            wake_soon(self.hub.loop, self.switch)
        return fut

    def _overflow(self, msg):
        cur = getcurrent()
        if self.overflow == "block" and cur is not self.hub and cur is not self.greenlet:
            self.waiting_senders += 1
            try:
                while len(self.mailbox) >= self.capacity and self.accepting:
                    self.space.clear()
                    self.space.wait()
            finally:
                self.waiting_senders -= 1
            if self.accepting:
                return
        self.stats.rejected += 1
        self.system._dead_letter(self.ref, msg, "mailbox_full")
        raise MailboxFull(f"mailbox of {self.path} is full ({self.capacity})")

    def is_current(self):
        return getcurrent() is self.greenlet

    # --- the loop ------------------------------------------------------------------

    def _new_instance(self):
        inst = self.cls.__new__(self.cls)
        inst._cell = self
        inst.ref = self.ref
        inst.system = self.system
        inst.__init__(*self.args, **self.kwargs)
        return inst

    def _run(self):
        try:
            if self._start_instance():
                self.state = "running"
                self._loop()
        except gevent.GreenletExit:
            pass
        finally:
            if self.state != "stopped":
                self._terminate()

    def _start_instance(self):
        try:
            self.instance.on_start()
            return True
        except Exception as exc:  # a failing on_start is a failure like any other
            return self._handle_failure(exc)

    def _loop(self):
        mb = self.mailbox
        popleft = mb.popleft
        batch_mode = getattr(self.instance, "receive_batch", None) is not None
        bounded = self.capacity != sys.maxsize
        while True:
            if self.pending_restart is not None:
                exc, self.pending_restart = self.pending_restart, None
                if not self._restart(exc):
                    return
            if not mb:
                self.idle = True
                self.hub.switch()
                continue
            if batch_mode:
                if not self._drain_batch():
                    return
                continue
            receive = self.instance.receive
            n = 0
            throughput = self.instance.throughput
            while mb:
                item = popleft()
                if item is _STOP:
                    self.stats.processed += n
                    return
                fut = None
                try:
                    if type(item) is _Ask:
                        fut = item.fut
                        self.current_reply = fut
                        result = receive(item.msg)
                        if self.current_reply is fut:
                            self.current_reply = None
                            fut.set(result)
                    else:
                        receive(item)
                except Exception as exc:
                    self.current_reply = None
                    if fut is not None:
                        fut.fail(exc)
                    self.stats.processed += n + 1
                    n = 0
                    if not self._handle_failure(exc):
                        return
                    break
                n += 1
                if bounded and self.waiting_senders:
                    self.space.set()
                if n >= throughput:
                    break
            self.stats.processed += n
            if n >= throughput:
                gevent.sleep(0)

    def _drain_batch(self):
        mb = self.mailbox
        limit = self.instance.max_batch
        batch = []
        while mb and len(batch) < limit:
            if mb[0] is _STOP:
                if not batch:
                    mb.popleft()
                    return False
                break
            batch.append(_pair(mb.popleft()))
        if self.waiting_senders:
            self.space.set()
        try:
            self.instance.receive_batch(batch)
        except Exception as exc:
            for _, reply in batch:
                if reply is not None:
                    reply.fail(exc)
            self.stats.processed += len(batch)
            return self._handle_failure(exc)
        self.stats.processed += len(batch)
        return True

    # --- stopping --------------------------------------------------------------------

    def request_stop(self, drain=True):
        if not self.accepting:
            if not drain and self.state in _ALIVE:
                self.mailbox.appendleft(_STOP)
            return
        self.accepting = False
        if drain:
            self.mailbox.append(_STOP)
        else:
            self.mailbox.appendleft(_STOP)
        if self.idle:
            self.idle = False
            wake_soon(self.hub.loop, self.switch)
        if self.waiting_senders:
            self.space.set()

    def _stop_children(self, timeout=5.0):
        for child in reversed(list(self.children)):
            child.request_stop(drain=True)
            if not child.stopped.wait(timeout):
                child.greenlet.kill(block=False)
                child.stopped.wait(1.0)

    def _terminate(self):
        self.accepting = False
        self.state = "stopping"
        self.timers.cancel_all()
        self._stop_children()
        try:
            self.instance.on_stop()
        except Exception:
            log.exception("on_stop of %s raised", self.path)
        self.state = "stopped"
        self.system._unregister(self)
        if self.parent is not None and self in self.parent.children:
            self.parent.children.remove(self)
        mb = self.mailbox
        while mb:
            item = mb.popleft()
            if item is _STOP:
                continue
            msg, fut = _pair(item)
            self.system._dead_letter(self.ref, msg, "stopped")
            if fut is not None:
                fut.fail(ActorDeadError(f"{self.path} stopped before answering"))
        if self.current_reply is not None:
            self.current_reply.fail(ActorDeadError(f"{self.path} stopped"))
        for watcher in list(self.watchers):
            watcher.tell(Terminated(self.ref))
        self.watchers.clear()
        self.stopped.set()

    # --- death watch -------------------------------------------------------------------

    def add_watcher(self, watcher_cell):
        if self.state == "stopped":
            watcher_cell.tell(Terminated(self.ref))
        else:
            self.watchers.add(watcher_cell)

    def remove_watcher(self, watcher_cell):
        self.watchers.discard(watcher_cell)
