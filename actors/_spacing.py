"""The walk the Resolver sees: how the pricer spaces a column's ticks.

A window is judged on ticks, not on a continuous path, so every column is
priced as a walk: the prevailing tick at ``t0`` and the ticks inside the
window. This module says which walk, from the feed's tick statistics
(``Volatility.tick_ms`` and ``tick_sd_ms``); ``_pricer`` evaluates it.

- A walk observed every ``dt`` seconds reaches a level as rarely as a
  continuous path reaches a level ``beta sigma sqrt(dt)`` further out, beta
  = -zeta(1/2) / sqrt(2 pi) ~= 0.5826 (Broadie, Glasserman and Kou, "A
  continuity correction for discrete barrier options", 1997), with a
  second-order term fitted to walks of 5-50 steps (``discrete_shift``).
- A feed that ticks on a clock (gaps that barely vary) says where its next
  ticks fall: ``phases`` gives ``_discrete.phase_mix``'s whole-tick outcomes
  per column. An irregular one does not: the prevailing tick is then the
  renewal process's age before ``t0`` (``mean_age``) and the walk inside
  the window is priced as an even clock of the gaps' effective spacing
  (``walk_ms``), not their mean: irregular ticks reach a level less often
  than as many evenly spaced ones.
"""
import math

import numpy as np

from ._discrete import phase_mix

__all__ = ["BGK_BETA", "discrete_shift", "phases", "column_walks", "walk_ms", "mean_age",
           "MIN_WALK_STEPS"]

BGK_BETA = 0.5825971579390106   # -zeta(1/2) / sqrt(2 pi)
# Second-order term of the discrete-monitoring shift, fitted to simulated
# random walks of m steps (tests/actors/test_pricer.py checks it): the
# effective beta is beta (1 - 0.237 z / sqrt(m)) at z s.d. from the start.
_KAPPA = 0.237 * BGK_BETA
# Phase known to better than this many ticks: a clock. Beyond it the wrapped
# error is close to uniform and the renewal age prices it as well.
_CLOCK_SD = 0.75
# The effective spacing keeps at least this many ticks in a window.
MIN_WALK_STEPS = 4


def discrete_shift(s2, window_ms, sigma, tick_ms):
    """(s.d., edge shift) under which the continuous closed form gives the
    chance that *ticks* every ``tick_ms`` reach a level within the window.

    BGK's shift beta sigma sqrt(dt) is the first term; measured against
    Gaussian random walks of 5 to 50 steps it over-corrects far levels (at
    20 steps, 3 s.d. out, the walk touches 6 % more often than BGK says).
    The shift shrinks with the distance d to cross as beta sigma sqrt(dt) -
    KAPPA d dt / T, which is the same closed form with the window's s.d.
    and the shift scaled by 1 / (1 - KAPPA dt / T).
    """
    kappa = _KAPPA * tick_ms / np.maximum(window_ms, tick_ms)
    return s2 / (1.0 - kappa), BGK_BETA * sigma * np.sqrt(tick_ms / 1000.0) / (1.0 - kappa)


def phases(ahead_ms, window_ms, tick_ms, tick_sd_ms):
    """Per column, ``phase_mix``'s outcomes when the feed ticks like a clock,
    else None. The error of a tick k gaps ahead grows as sqrt(k) times the
    gaps' spread (a renewal process: the conservative assumption; a true
    clock with jitter would keep it at one gap's)."""
    if tick_sd_ms is None or tick_ms <= 0:
        return [None] * len(ahead_ms)
    out = []
    for d, w in zip(ahead_ms.tolist(), window_ms.tolist()):
        k = max(d / tick_ms, 1.0)
        sd = tick_sd_ms / tick_ms * math.sqrt(k)
        out.append(phase_mix(d / tick_ms, w / tick_ms, sd) if sd < _CLOCK_SD else None)
    return out


def column_walks(mixes, window_ms, tick_ms, tick_sd_ms):
    """Each column's walk spacing in ms: a clock's (a phase mix) at its
    period; ticks at random at the gaps' effective spacing (``walk_ms``).
    The effective spacing is a many-ticks argument
    (each crossing inside one gap): for a window of a few ticks, or gap
    statistics of a few ticks (a feed that has just started or come back),
    it is not one, and the mean gap stays (at most window / MIN_WALK_STEPS)."""
    effective = walk_ms(tick_ms, tick_sd_ms)
    return np.array([tick_ms if mix is not None else
                     min(effective, max(tick_ms, w / MIN_WALK_STEPS))
                     for mix, w in zip(mixes, window_ms.tolist())])


def _cv(tick_ms, tick_sd_ms):
    return 0.0 if tick_sd_ms is None or tick_ms <= 0 else min(1.0, tick_sd_ms / tick_ms)


def walk_ms(tick_ms, tick_sd_ms):
    """The spacing of the even clock whose walk reaches a level as often as
    ticks of mean gap ``tick_ms`` and spread ``tick_sd_ms`` at random.

    A walk seen every dt misses a level by about BGK_BETA sigma sqrt(dt)
    (the overshoot of the gap it crosses in); with irregular gaps the level
    is crossed inside a gap in proportion to its length, so the overshoot
    is BGK_BETA sigma E[g^1.5] / E[g]: an even clock of
    (E[g^1.5] / E[g])^2 = dt (1 + 3 cv^2 / 8)^2 to second order in the
    gaps' coefficient of variation (exact within 1 % for the recorded
    sample's gaps, cv 0.6; 6 % long for Poisson arrivals, cv capped at 1 as
    in ``mean_age``). The window's variance is the same: fewer, larger
    steps. A clock (cv 0.03 at the sim's jitter) is unchanged to 1e-3.
    """
    cv = _cv(tick_ms, tick_sd_ms)
    return tick_ms * (1.0 + 0.375 * cv * cv) ** 2


def mean_age(tick_ms, tick_sd_ms):
    """Mean time from the prevailing tick to a moment chosen without regard
    to the ticks: dt (1 + cv^2) / 2 (the renewal process's mean age)."""
    cv = _cv(tick_ms, tick_sd_ms)
    return tick_ms * (1.0 + cv * cv) / 2.0
