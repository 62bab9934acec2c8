"""The odds tolerance on the page (issue 11), in real Chromium against a
real server. The grid is repriced on every tick, so a tap made just after
one meets a multiplier a little under the one drawn. With a tolerance the
page sends min_mult = floor(shown x (1 - tolerance)) and the bet is taken at
the new multiplier; with "exact" it is refused with odds_changed, and the
toast names the new multiplier and the page offers to tap again at it.

The price is the test's: the server's sim feed is paused through its
backdoor console, and ticks are pushed into its Watchdog. The page's grid
frames are held back by a WebSocket route (Playwright's route_web_socket),
so the page still draws the old grid while the server has repriced: "a tap
a few hundred ms after a tick", made deterministic. Every wait is on a
condition (wait_js / wait_until), never on a sleep."""
import json
import os
import re
import time

import pytest

from tests.support import ServerProcess, console_line, wait_until
from tests.web.browser import (PageWatch, VIEWPORT, click_cell, dismiss_explainer, toasts,
                               wait_connected, wait_js)
from web.client import TapgridClient

LOCK_MS, COLUMN_MS, BAND = 3000, 5000, 1000


def _console(path, line):
    """Run one line in the server's live console; what it printed."""
    out = console_line(path, line)[1]
    assert b"Traceback" not in out, out.decode(errors="replace")
    return out.decode(errors="replace")


class Rig:
    """A server whose price only moves when the test pushes a tick."""

    def __init__(self, tmp):
        db = os.path.join(tmp, "tapgrid.db")
        # the sim is paused below: the stale-price breaker must not trip meanwhile
        self.server = ServerProcess(db, "--seed", "1", "--backdoor",
                                    env={"TAPGRID_TICK_INTERVAL_MS": "60000"}).start()
        self.console = os.path.join(tmp, "console", "backdoor.sock")
        wait_until(lambda: os.path.exists(self.console), what="the backdoor socket")
        _console(self.console, "market.feed.pause()")
        self.http = TapgridClient(self.server.url)

    def push(self, price):
        """A tick at ``price`` now; returns the server's grid once repriced from it."""
        _console(self.console, "import time; from actors import Tick; "
                               f"market.watchdog.tell(Tick({price}, int(time.time() * 1000)))")
        return wait_until(lambda: (lambda g: g if g["price"] == price else None)(self.http.fetch_grid()),
                          timeout=10, what=f"the grid repriced at {price}")

    def middle_price(self):
        """The middle of the band the price is in now."""
        return self.http.fetch_grid()["price"] // BAND * BAND + BAND // 2


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(str(tmp_path_factory.mktemp("tolerance")))
    yield r
    r.server.kill()


def open_held_page(browser, url):
    """A page whose grid frames the test can hold back (``hold["on"]``)."""
    if isinstance(browser, str):
        pytest.fail(browser)
    hold = {"on": False, "held": 0}
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)

    def route(ws):
        server = ws.connect_to_server()

        def to_page(message):
            if hold["on"] and isinstance(message, str) and \
                    json.loads(message).get("type") in ("grid", "grid2"):
                hold["held"] += 1
                return
            ws.send(message)
        server.on_message(to_page)   # the page's own frames still go to the server

    context.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(url + "/")
    page.wait_for_function("() => window.tapgrid !== undefined", timeout=10_000)
    page.get_by_test_id("guest-btn").click()
    wait_connected(page)
    dismiss_explainer(page)
    return page, watch, hold


def quiet_window():
    """Until the columns roll next (a new column reprices the whole grid at
    a new time) there are at least 2.5 s: wait for that phase of the clock."""
    wait_until(lambda: 200 <= (time.time() * 1000 + LOCK_MS) % COLUMN_MS <= 1500, timeout=10,
               what="a phase of the clock far from the next column roll")


def page_shows(page, grid):
    """Wait until the page draws ``grid``'s multipliers; its open cells."""
    want = {(c["t0"], cell["lo"]): cell["mult"] for c in grid["columns"] for cell in c["cells"]}
    return wait_js(page, """(want) => {
        const cells = window.tapgrid.openCells();
        if (!cells.length) return null;
        const same = cells.every((c) => want[`${c.t0},${c.lo}`] === c.mult);
        return same ? cells : null;
    }""", arg={f"{t0},{lo}": m for (t0, lo), m in want.items()}, what="the page to draw the new grid")


def pick_moved(cells, new, price, accept):
    """An open cell the page still shows at its old multiplier whose new one
    is lower and ``accept(old, new)``; far enough from its lock; not the
    price's own band (it would win at once)."""
    now = time.time() * 1000
    fresh = {(c["t0"], cell["lo"]): cell["mult"] for c in new["columns"] for cell in c["cells"]}
    here = price // BAND * BAND
    moved = [c for c in cells if c["t0"] - LOCK_MS - now > 2500 and c["lo"] != here
             and fresh.get((c["t0"], c["lo"]), 0) < c["mult"]
             and accept(c["mult"], fresh.get((c["t0"], c["lo"]), 0))]
    assert moved, "no cell moved as the test needs: " + repr(cells[:5])
    cell = min(moved, key=lambda c: (c["t0"], abs(c["lo"] - here)))
    return cell, fresh[(cell["t0"], cell["lo"])]


def floor_2pc(m):
    return max(101, m * 9800 // 10000)


def bet_on(page, t0, lo, count=1):
    """The ``count``-th tap on (t0, lo) once the server answered it."""
    return wait_js(page, """([t0, lo, n]) => {
        const bets = window.tapgrid.state().bets.filter((b) => b.col === t0 && b.lo === lo);
        const b = bets[n - 1];
        return b && b.state !== 'pending' ? b : null;
    }""", arg=[t0, lo, count], what=f"the answer to tap {count} on {t0}/{lo}")


def reprice_under_held_page(rig, page, hold, accept):
    """The page draws the grid at one price; the server reprices a little
    (a $1 tick) while the page's grid frames are held. Returns the cell and
    (what the page shows, what the server pays now)."""
    quiet_window()
    p0 = rig.middle_price()
    cells = page_shows(page, rig.push(p0))
    hold["on"] = True
    p1 = p0 + 100
    new = rig.push(p1)
    cell, now_mult = pick_moved(cells, new, p1, accept)
    return cell, cell["mult"], now_mult


def test_min_mult_is_the_shown_multiplier_less_the_tolerance(rig, browser):
    page, watch, _ = open_held_page(browser, rig.server.url)
    got = page.evaluate("""async () => {
        const m = await import('/static/slippage.js');
        return [m.minMult(250, 200), m.minMult(250, 500), m.minMult(250, 0), m.minMult(333, 200),
                m.minMult(102, 500), m.minMult(101, 200), m.toleranceBp()];
    }""")
    assert got == [245, 237, 250, 326, 101, 101, 200]      # floor, never under 1.01x; default -2 %
    assert page.get_by_test_id("tolerance").input_value() == "200"
    watch.assert_clean()
    page.context.close()


def test_with_the_tolerance_a_tap_after_a_small_reprice_is_taken_at_the_new_multiplier(rig, browser):
    page, watch, hold = open_held_page(browser, rig.server.url)
    cell, shown, now_mult = reprice_under_held_page(
        rig, page, hold, lambda old, new: new >= floor_2pc(old))
    click_cell(page, cell)
    bet = bet_on(page, cell["t0"], cell["lo"])
    assert bet["state"] in ("confirmed", "lost"), bet
    assert bet["mult"] == now_mult < shown, (bet, shown)     # the server's, not the drawn one
    assert hold["held"] >= 1                                  # the page never saw the new grid
    assert [t for t in toasts(page) if t["kind"] == "error"] == []
    watch.assert_clean()
    page.context.close()


def test_exact_refuses_with_the_new_multiplier_and_taps_again_at_it(rig, browser):
    page, watch, hold = open_held_page(browser, rig.server.url)
    page.get_by_test_id("tolerance").select_option("0")
    assert page.evaluate("() => localStorage.getItem('tapgrid.tolerance')") == "0"
    cell, shown, now_mult = reprice_under_held_page(rig, page, hold, lambda old, new: new >= 101)
    click_cell(page, cell)
    bet = bet_on(page, cell["t0"], cell["lo"])
    assert bet["state"] == "rejected" and bet["reason"] == "odds_changed", bet
    toast = wait_js(page, """() => [...document.querySelectorAll('[data-testid=toast]')]
        .map((t) => ({reason: t.dataset.reason, text: t.textContent}))
        .find((t) => t.reason === 'odds_changed') || null""", what="the odds_changed toast")
    label = lambda m: f"{m // 100}.{m % 100:02d}x"   # noqa: E731
    assert f"now pays {label(now_mult)}" in toast["text"], toast
    assert f"you saw {label(shown)}" in toast["text"] and "Tap again" in toast["text"], toast
    retry = page.get_by_test_id("retry-tap")
    wait_js(page, "() => !document.querySelector('[data-testid=retry-tap]').hidden",
            what="the offer to tap again")
    assert retry.get_attribute("data-mult") == str(now_mult)
    assert retry.inner_text() == f"Tap again at {label(now_mult)}"
    retry.click()
    again = bet_on(page, cell["t0"], cell["lo"], count=2)
    assert again["state"] in ("confirmed", "lost") and again["mult"] == now_mult, again
    wait_js(page, "() => document.querySelector('[data-testid=retry-tap]').hidden",
            what="the offer gone once used")
    # the choice is remembered: a new page in the same browser starts on "exact"
    other = page.context.new_page()
    other.goto(rig.server.url + "/")
    other.wait_for_function("() => window.tapgrid !== undefined", timeout=10_000)
    assert other.get_by_test_id("tolerance").input_value() == "0"
    watch.assert_clean()
    page.context.close()
