"""The ``ActorSystem``: spawns, names, finds, lists and stops actors.

    >>> from engine import ActorSystem, Actor
    >>> class Echo(Actor):
    ...     def receive(self, msg): return msg
    >>> system = ActorSystem()
    >>> echo = system.spawn(Echo, name="echo")
    >>> system.lookup("echo") is not None, echo.ask("hi", timeout=1)
    (True, 'hi')
    >>> system.stop()
"""
import itertools
import logging

from ._blocking import run_blocking
from ._cell import Cell
from ._errors import DeadLetter
from ._stats import DeadLetters, StatsTable
from ._supervision import OneForOne

log = logging.getLogger("engine")

__all__ = ["ActorSystem"]


class ActorSystem:
    """A tree of actors. Top-level actors are supervised by ``strategy``;
    an escalation that reaches the top stops the actor and is counted."""

    def __init__(self, name="tapgrid", strategy=None, dead_letters_kept=1000):
        self.name = name
        self.strategy = strategy or OneForOne(max_restarts=3, within=60.0)
        self.dead_letters = DeadLetters(dead_letters_kept)
        self.escalations = []
        self._registry = {}
        self._top = []
        self._ids = itertools.count(1)
        self._stopping = False

    # --- spawning and lookup ----------------------------------------------------------

    def spawn(self, cls, *args, name=None, mailbox_size=0, overflow="reject", **kwargs):
        """Start an actor of class ``cls`` (constructed with ``*args, **kwargs``)
        and return its :class:`ActorRef`. ``name`` must be unique."""
        return self._spawn(cls, args, dict(kwargs, mailbox_size=mailbox_size,
                                           overflow=overflow), name=name, parent=None)

    def _spawn(self, cls, args, options, name, parent):
        if self._stopping:
            raise RuntimeError("the actor system is stopping")
        mailbox_size = options.pop("mailbox_size", 0)
        overflow = options.pop("overflow", "reject")
        if name is None:
            name = f"{cls.__name__.lower()}-{next(self._ids)}"
        if name in self._registry:
            raise ValueError(f"an actor named {name!r} already exists")
        self._registry[name] = None  # reserve the name while __init__ runs
        try:
            cell = Cell(self, cls, args, options, name, parent, mailbox_size, overflow)
        except BaseException:
            del self._registry[name]
            raise
        self._registry[name] = cell
        if parent is None:
            self._top.append(cell)
        else:
            parent.children.append(cell)
        return cell.ref

    def lookup(self, name):
        """The ref of a live actor by name or path, or None."""
        cell = self._registry.get(name)
        if cell is None and name.startswith("/"):
            cell = self._registry.get(name.rsplit("/", 1)[-1])
            if cell is not None and cell.path != name:
                cell = None
        return cell.ref if cell is not None else None

    def actors(self):
        """Stats of every live actor (a table at the REPL)."""
        return StatsTable(c.stats for c in self._registry.values() if c is not None)

    def stats(self):
        return {"actors": len(self._registry), "dead_letters": self.dead_letters.count,
                "escalations": len(self.escalations)}

    @staticmethod
    def run_blocking(fn, *args, **kwargs):
        """See :func:`engine.run_blocking`."""
        return run_blocking(fn, *args, **kwargs)

    # --- stopping -------------------------------------------------------------------

    def stop(self, timeout=5.0):
        """Stop every actor, in reverse spawn order, each draining its mailbox
        and stopping its own children first."""
        self._stopping = True
        for cell in reversed(list(self._top)):
            cell.request_stop(drain=True)
            if not cell.stopped.wait(timeout):
                log.warning("%s did not stop within %ss; killing it", cell.path, timeout)
                cell.greenlet.kill(block=True, timeout=1.0)
        self._stopping = False

    # --- called by cells --------------------------------------------------------------

    def _dead_letter(self, recipient, message, reason):
        self.dead_letters.record(DeadLetter(recipient, message, reason))

    def _escalated(self, cell, exc):
        log.error("%s failed and no supervisor could handle it: %r", cell.path, exc)
        self.escalations.append((cell.path, exc))

    def _unregister(self, cell):
        if self._registry.get(cell.name) is cell:
            del self._registry[cell.name]
        if cell in self._top:
            self._top.remove(cell)

    def __repr__(self):
        return f"<ActorSystem {self.name} actors={len(self._registry)}>"
