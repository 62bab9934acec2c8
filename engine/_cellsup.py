"""What a failure in a Cell leads to: its supervisor's directive (resume,
restart, stop, escalate), restarts, and a child's escalation.

A mixin of ``Cell``, apart from the mailbox and greenlet there: it reads
the cell's ``instance``, ``parent``, ``system``, ``state``, ``stats``,
``restart_history`` and ``timers``, and asks it to stop with
``request_stop``.
"""
import logging

from ._errors import Escalation
from ._supervision import ESCALATE, RESTART, RESUME, STOP

log = logging.getLogger("engine")

_ALIVE = ("starting", "running", "restarting")


class Supervised:
    def _strategy(self):
        if self.parent is not None:
            return self.parent.instance.supervisor_strategy
        return self.system.strategy

    def _handle_failure(self, exc):
        """Apply the supervisor's directive. Returns True if this greenlet
        should go on processing messages."""
        self.stats.failures += 1
        try:
            self.instance.on_failure(exc)
        except Exception:
            log.exception("on_failure of %s raised", self.path)
        strategy = self._strategy()
        directive = strategy.decide(exc)
        if directive == RESUME:
            return True
        if directive == RESTART:
            if strategy.allow_restart(self.restart_history):
                if strategy.all_for_one and self.parent is not None:
                    for sibling in list(self.parent.children):
                        if sibling is not self:
                            sibling.request_restart(exc)
                log.warning("restarting %s after %r", self.path, exc)
                return self._restart(exc)
            directive = ESCALATE
        if directive == STOP:
            log.warning("stopping %s after %r", self.path, exc)
            return False
        # ESCALATE: this actor ends; its supervisor fails in its place.
        if self.parent is None:
            self.system._escalated(self, exc)
        else:
            self.parent.fail_from_child(Escalation(self.path, exc))
        return False

    def request_restart(self, exc):
        if self.state in _ALIVE:
            self.pending_restart = exc
            if self.idle:
                self.idle = False
                self.hub.loop.run_callback(self.switch)

    def fail_from_child(self, escalation):
        """A child escalated: this actor fails as if its own receive raised."""
        if self.state not in _ALIVE:
            return
        self.stats.failures += 1
        try:
            self.instance.on_failure(escalation)
        except Exception:
            log.exception("on_failure of %s raised", self.path)
        strategy = self._strategy()
        directive = strategy.decide(escalation)
        if directive == RESTART and not strategy.allow_restart(self.restart_history):
            directive = ESCALATE
        if directive == RESTART:
            self.request_restart(escalation)
        elif directive == RESUME:
            pass
        elif directive == STOP or self.parent is None:
            if self.parent is None and directive != STOP:
                self.system._escalated(self, escalation)
            self.request_stop(drain=False)
        else:
            self.request_stop(drain=False)
            self.parent.fail_from_child(Escalation(self.path, escalation))

    def _restart(self, exc):
        self.state = "restarting"
        self.timers.cancel_all()
        self._stop_children()
        try:
            self.instance.on_stop()
        except Exception:
            log.exception("on_stop of %s raised during restart", self.path)
        self.stats.restarts += 1
        try:
            self.instance = self._new_instance()
            self.instance.on_start()
        except Exception as exc2:
            return self._handle_failure(exc2)
        self.state = "running"
        return True
