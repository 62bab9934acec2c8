"""Supervisor strategies: what a parent does when a child's ``receive`` raises.

A strategy maps the exception to a directive (``RESTART``, ``RESUME``,
``STOP`` or ``ESCALATE``) and limits restarts: more than ``max_restarts``
within ``within`` seconds escalates to the supervisor's own parent::

    >>> from engine import Actor, OneForOne, ESCALATE, RESTART
    >>> class Market(Actor):
    ...     supervisor_strategy = OneForOne(
    ...         max_restarts=3, within=10.0,
    ...         decider=lambda exc: ESCALATE if isinstance(exc, MemoryError) else RESTART)
"""
import time

__all__ = ["RESTART", "RESUME", "STOP", "ESCALATE", "OneForOne", "OneForAll",
           "SupervisorStrategy"]

RESTART = "restart"
RESUME = "resume"
STOP = "stop"
ESCALATE = "escalate"


def _always_restart(exc):
    return RESTART


class SupervisorStrategy:
    """Base strategy. ``all_for_one`` says whether a restart hits every child."""
    all_for_one = False

    def __init__(self, max_restarts=3, within=60.0, decider=_always_restart):
        self.max_restarts = max_restarts
        self.within = within
        self.decider = decider

    def decide(self, exc):
        return self.decider(exc)

    def allow_restart(self, history, now=None):
        """Record a restart in ``history`` (a deque of monotonic times) and
        say whether it is still within the intensity limit."""
        now = time.monotonic() if now is None else now
        while history and now - history[0] > self.within:
            history.popleft()
        if len(history) >= self.max_restarts:
            return False
        history.append(now)
        return True

    def __repr__(self):
        return f"{type(self).__name__}(max_restarts={self.max_restarts}, within={self.within})"


class OneForOne(SupervisorStrategy):
    """Restart only the child that failed."""


class OneForAll(SupervisorStrategy):
    """Restart every child of the supervisor when one fails: for children that
    only make sense together."""
    all_for_one = True
