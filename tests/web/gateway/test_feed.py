"""The wins-and-leaders feed (web/gateway/_feed.py): its day, computed once
per UTC day now, still rolls over at midnight, and names stay stable."""
from actors import LOST, WON, Config, Settlement
from web.gateway._feed import PlayerFeed

MIDNIGHT = 1_764_633_600          # 2025-12-02T00:00:00Z, in seconds


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def won(user, payout=300):
    return Settlement(1, user, 0, 0, 100, 300, WON, payout)


def lost(user):
    return Settlement(2, user, 0, 0, 100, 300, LOST, 0)


def test_the_board_rolls_over_at_utc_midnight_and_not_before():
    clock = Clock(MIDNIGHT - 2.0)
    feed = PlayerFeed(Config(), hub=None, clock=clock)
    assert feed.day == "2025-12-01"
    feed.record(7, won(7))
    clock.t = MIDNIGHT - 0.001
    feed.record(7, won(7))
    assert feed.day == "2025-12-01" and feed.net == {7: 400}
    clock.t = MIDNIGHT
    feed.record(8, lost(8))
    assert feed.day == "2025-12-02" and feed.net == {8: -100}
    clock.t = MIDNIGHT + 86_399.999
    feed.record(8, won(8))
    assert feed.day == "2025-12-02" and feed.net == {8: 100}
    clock.t = MIDNIGHT + 86_400
    feed.record(9, won(9))
    assert feed.day == "2025-12-03" and feed.net == {9: 200}


def test_names_are_stable_and_distinct():
    feed = PlayerFeed(Config(), hub=None, clock=Clock(MIDNIGHT))
    for uid in (1, 2, 1):
        feed.record(uid, won(uid))
    names = [w["who"] for w in feed.wins]
    assert names[0] == names[2] == feed.who(1) and names[1] == feed.who(2)
    assert feed.who(1) != feed.who(2) and feed.who(1).startswith("player-")
