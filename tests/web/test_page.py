"""The player's page (issue 12) in real headless Chromium, desktop and a
390x844 touch phone, against a real `tapgrid serve`.

Most tests run on a flat replayed price (the price never leaves one band),
so a tap on the price's own band always wins and a tap four bands away
always loses: wins and losses on demand, no luck involved.

Needs /usr/bin/chromium (Debian's; CI installs it): without it these tests
fail, they do not skip."""
import re
import time

import pytest

from tests.web.browser import (SETTLED, cell_at, cell_at_price, click_cell,
                               credits_text as credits, record_after_click, sign_in_as_guest, state, wait_bet,
                               wait_connected, wait_error_toasts_gone, wait_js)

FAST = {"TAPGRID_COLUMN_MS": "2000", "TAPGRID_LOCK_MS": "1000", "TAPGRID_HORIZON_MS": "20000"}
FLAT_PRICE = 9_500_050          # inside the band 9,500,000-9,501,000


def win_text(payout, stake):
    return f"won {credits(payout)} ({credits(payout - stake, sign=True)})"


def flat_feed(path, seconds=600, gap_ms=250):
    rows, ts = ["ts_ms,price_cents"], 1_733_594_400_000
    for i in range(int(seconds * 1000 / gap_ms)):
        rows.append(f"{ts},{FLAT_PRICE + (i % 2) * 10}")
        ts += gap_ms
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def flat_server(tmp_path_factory):
    from tests.support import ServerProcess
    d = tmp_path_factory.mktemp("flat")
    feed = flat_feed(str(d / "flat.csv"))
    s = ServerProcess(str(d / "tapgrid.db"), "--feed", "replay", "--feed-file", feed, env=FAST).start()
    yield s
    s.kill()


def tap_and_settle(page, bands, column_index=1, attempts=6):
    """Tap the cell `bands` away from the price; the bet once settled. A
    tap refused because the odds moved (odds_changed, SPEC section 3) is
    tried again; any other refusal fails."""
    record_after_click(page)
    for _ in range(attempts):
        cell = None
        deadline = time.monotonic() + 10
        while cell is None and time.monotonic() < deadline:
            cell = cell_at_price(page, column_index, bands)
        assert cell is not None, "no open cell at that band"
        click_cell(page, cell)
        booked = page.evaluate("() => window.__afterClick")[-1]
        tap = next((b for b in booked if b["col"] == cell["t0"] and b["lo"] == cell["lo"] and b["state"] == "pending"), None)
        if tap is None:
            continue          # the cell moved under the pointer before the click landed
        bet = wait_bet(page, tap["nonce"], ("confirmed", "rejected") + SETTLED)
        if bet["state"] == "rejected":
            assert bet["reason"] == "odds_changed", bet
            continue
        return wait_bet(page, tap["nonce"], SETTLED, timeout=max(0, (bet["col"] + 2000) / 1000 - time.time()) + 10)
    raise AssertionError(f"{attempts} taps and none taken")


def new_bets_answered(page, seen, count, what):
    """The `count` bets made since `seen` (the nonces there were), once
    none of them is pending any more."""
    return wait_js(page, """([seen, count]) => { const b = window.tapgrid.state().bets.filter((b) => !seen.includes(b.nonce));
                           return b.length === count && b.every((x) => x.state !== 'pending') ? b : null; }""",
                   arg=[seen, count], what=what)


def toast_texts(page):
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=toast]')]
        .map((t) => ({kind: t.dataset.kind, reason: t.dataset.reason || null, text: t.textContent}))""")


def history_result(page, bet_id):
    wait_js(page, """(id) => { const r = document.querySelector(`[data-testid=history-row][data-bet="${id}"]`);
                      return r && r.dataset.outcome !== 'open'; }""", arg=bet_id, what=f"bet {bet_id} settled in history")
    return page.locator(f'[data-testid=history-row][data-bet="{bet_id}"] [data-testid=history-result]').inner_text()


# ---- 1. one amount for a win, and losses shown too --------------------------------------------

def test_a_win_reads_the_same_in_the_cell_the_toast_and_the_history(flat_server, page_of):
    page, watch = page_of(flat_server.url)
    sign_in_as_guest(page)
    page.get_by_test_id("stake-10").click()
    won = tap_and_settle(page, bands=0)
    assert won["state"] == "won", won
    payout = page.evaluate("(id) => window.tapgrid.stacks().find((s) => s.state === 'won').payout", won["bet"])
    words = win_text(payout, 1000)
    wait_js(page, "(w) => [...document.querySelectorAll('[data-testid=toast]')].some((t) => t.textContent.includes(w))",
            arg=words, what=f"a toast saying {words!r}")
    assert history_result(page, won["bet"]) == words
    stack = next(s for s in page.evaluate("() => window.tapgrid.stacks()") if s["state"] == "won")
    assert stack["label"] == [f"won {credits(payout).removesuffix('.00')}", f"({credits(payout - 1000, sign=True)})"]
    # The live region says it too, in the same words.
    wait_js(page, "(w) => document.querySelector('[data-testid=announcer]').textContent.includes(w)", arg=words,
            what="the result in the ARIA live region")

    lost = tap_and_settle(page, bands=4)
    assert lost["state"] == "lost", lost
    wait_js(page, """() => [...document.querySelectorAll('[data-testid=toast]')]
                 .some((t) => t.dataset.kind === 'loss' && t.textContent.includes('lost 10.00'))""",
            what="a toast for the loss")
    assert history_result(page, lost["bet"]) == "lost 10.00"
    # The session summary: two bets, one of each, net = the win's gain - the loss.
    wait_js(page, "() => document.querySelector('[data-testid=sum-bets]').textContent === '2'", what="2 bets in the summary")
    assert page.get_by_test_id("sum-rate").inner_text() == "50%"
    assert page.get_by_test_id("sum-net").inner_text() == credits(payout - 1000 - 1000, sign=payout > 2000)
    assert page.get_by_test_id("sum-streak").inner_text() == "1 loss"
    sounds = [s["kind"] for s in page.evaluate("() => window.tapgrid.sounds()")]
    # One tap sound per tap sent (a repriced tap is tapped again), one per result.
    assert sounds.count("tap") == len(state(page)["bets"]) >= 2, sounds
    assert sounds.count("win") == 1 and sounds.count("loss") == 1, sounds
    watch.assert_clean()


# ---- 2. taps on one cell stack -----------------------------------------------------------------

@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_a_double_tap_stacks_on_the_cell_and_lists_both(flat_server, page_of, phone):
    page, watch = page_of(flat_server.url, phone=phone)
    sign_in_as_guest(page)
    page.get_by_test_id("stake-10").click()
    box = page.get_by_test_id("grid-canvas").bounding_box()
    # The first bet, or the next tick (the grid is repriced on every one),
    # can reprice the cell before the second lands (the second is then
    # refused, odds_changed, and says so): try a few cells, twice over.
    for column_index in (3, 4, 5, 6) * 2:
        cell = None
        while cell is None:
            cell = cell_at_price(page, column_index, 1)
        x, y = box["x"] + cell["x"], box["y"] + cell["y"]
        seen = [b["nonce"] for b in state(page)["bets"]]
        if phone:
            page.touchscreen.tap(x, y)
            page.wait_for_timeout(90)   # two touches 90 ms apart, as the player did
            page.touchscreen.tap(x, y)
        else:
            page.mouse.dblclick(x, y)
        here = new_bets_answered(page, seen, 2, "both taps answered")
        if here[0]["col"] != here[1]["col"] or here[0]["lo"] != here[1]["lo"]:
            continue           # the board scrolled between the two touches
        cell = {**cell, "t0": here[0]["col"], "lo": here[0]["lo"]}
        assert all(b["state"] == "confirmed" or b["reason"] == "odds_changed" for b in here), here
        if all(b["state"] == "confirmed" for b in here):
            break
        if any(b["state"] == "confirmed" for b in here):
            # Both touches became taps; the second met odds that moved (the
            # grid is repriced on every tick). Tapping the cell again at its
            # new price makes the stack of two this test is about.
            for _ in range(5):
                seen = [b["nonce"] for b in state(page)["bets"]]
                now = cell_at(page, cell["t0"], cell["lo"])
                if now is None:
                    break
                (page.touchscreen.tap if phone else page.mouse.click)(box["x"] + now["x"], box["y"] + now["y"])
                again = new_bets_answered(page, seen, 1, "the tap answered")
                if again[0]["state"] == "confirmed" and again[0]["col"] == cell["t0"] \
                        and again[0]["lo"] == cell["lo"]:
                    break
            else:
                continue
            if now is not None:
                break
    else:
        raise AssertionError("no cell got two confirmed taps")
    stack = wait_js(page, """([col, lo]) => window.tapgrid.stacks().find((s) => s.col === col && s.lo === lo) || null""",
                    arg=[cell["t0"], cell["lo"]], what="the stack")
    assert stack["count"] == 2, stack
    assert stack["stake"] == 2000
    assert stack["label"][0] == "20 \u00d72", stack
    mults = [b["mult"] for b in state(page)["bets"]
             if b["col"] == cell["t0"] and b["lo"] == cell["lo"] and b["state"] == "confirmed"]
    assert stack["potential"] == sum(1000 * m // 100 for m in mults)
    assert stack["label"][1] == "\u2192 " + credits(stack["potential"]).removesuffix(".00")
    if phone:
        page.get_by_test_id("history-toggle").click()
    rows = page.locator(f'[data-testid=history-row][data-cell="{cell["t0"]}:{cell["lo"]}"]')
    wait_js(page, """(key) => document.querySelectorAll(`[data-testid=history-row][data-cell="${key}"]`).length === 2""",
            arg=f'{cell["t0"]}:{cell["lo"]}', what="both taps in the history")
    for i in range(2):
        assert rows.nth(i).get_attribute("data-stack") == "2"
        assert "1 of 2 taps on this cell" in rows.nth(i).inner_text()
    watch.assert_clean()


# ---- 3. bets off the visible prices: a marker, pan and zoom ------------------------------------------

def test_an_offscreen_bet_gets_an_edge_marker_and_the_axis_pans_and_zooms(flat_server, page_of):
    page, watch = page_of(flat_server.url)
    sign_in_as_guest(page)
    canvas = page.get_by_test_id("grid-canvas")
    box = canvas.bounding_box()
    # Drag the board down: the prices above come into view (a pan, no tap).
    x = box["x"] + box["width"] * 0.8
    page.mouse.move(x, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(x, box["y"] + 500, steps=8)
    page.mouse.up()
    view = page.evaluate("() => window.tapgrid.view()")
    assert view["panned"] and view["panCents"] > 5000, view
    assert state(page)["bets"] == [], "a drag must not place a bet"
    assert page.get_by_test_id("recenter-btn").is_visible()
    # Tap a cell that is only on screen because of the pan: 9 bands up.
    record_after_click(page)
    cell = None
    while cell is None:
        cell = cell_at_price(page, 4, 9)
    click_cell(page, cell)
    wait_js(page, "() => window.tapgrid.state().bets.some((b) => b.state === 'confirmed')", what="the far bet confirmed")
    page.get_by_test_id("recenter-btn").click()
    wait_js(page, "() => window.tapgrid.offscreen().above === 1", what="an 'above' marker for the far bet")
    marker = wait_js(page, "() => (window.tapgrid.layout().markers || []).find((m) => m.side === 'above') || null",
                     what="the marker drawn")
    assert marker["count"] == 1
    page.mouse.click(box["x"] + marker["x"] + marker["w"] / 2, box["y"] + marker["y"] + marker["h"] / 2)
    wait_js(page, "() => window.tapgrid.offscreen().above === 0", what="the marker's pan to the bet")
    assert len(state(page)["bets"]) == 1, "clicking the marker must not place a bet"
    # Zoom: the wheel widens the visible price span.
    page.get_by_test_id("recenter-btn").click()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 400)
    assert page.evaluate("() => window.tapgrid.view().zoom") > 1.5
    watch.assert_clean()


# ---- 6, 7. layout: nothing collides; the lock strip explains itself -------------------------------------

def rects_overlap(a, b):
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_labels_banner_and_toasts_do_not_collide_and_the_lock_strip_says_why(flat_server, page_of, phone):
    page, watch = page_of(flat_server.url, phone=phone)
    sign_in_as_guest(page)
    layout = wait_js(page, "() => { const l = window.tapgrid.layout(); return l.now && l.time.length ? l : null; }",
                     what="a drawn time axis")
    gap = 4
    for label in layout["time"]:
        assert (label["x"] + label["w"] + gap <= layout["now"]["x"]
                or label["x"] >= layout["now"]["x"] + layout["now"]["w"] + gap), (label, layout["now"])
    # Price labels are drawn over the cells and bets, not under them.
    assert layout["layers"].index("price-labels") > layout["layers"].index("bets")
    # The price tag: no price label on it (on the phone "$95,000" was drawn over
    # "$95,000.50"), and left of the now dot, not over it. Boxes as Chromium
    # measured the canvas text.
    tag = {"x": layout["priceTag"]["x"], "y": layout["priceTag"]["y"],
           "width": layout["priceTag"]["w"], "height": layout["priceTag"]["h"]}
    for label in layout["bands"]:
        assert not rects_overlap(tag, {"x": label["x"], "y": label["y"], "width": label["w"],
                                       "height": label["h"]}), (tag, label)
    assert len(layout["bands"]) >= 3, layout["bands"]
    assert tag["x"] >= 0 and tag["x"] + tag["width"] <= layout["nowX"] - 10, (tag, layout["nowX"])
    assert layout["layers"].index("price-tag") > layout["layers"].index("price-labels")
    # The banner's title stays on one line.
    page.evaluate("""() => { const b = document.querySelector('[data-testid=market-banner]'); b.hidden = false;
        b.querySelector('.banner-reason').textContent = '— the price feed is stale. Open bets in affected windows are refunded.'; }""")
    assert page.evaluate("() => document.querySelector('[data-testid=market-banner] strong').getClientRects().length") == 1
    title = page.locator("[data-testid=market-banner] strong").bounding_box()
    assert title["height"] < 24, title
    page.evaluate("() => { document.querySelector('[data-testid=market-banner]').hidden = true; }")

    # A tap in the lock strip (just right of now) says why, and the strip is drawn as columns.
    assert layout["locked"], "the locked column(s) next to now are drawn"
    box = page.get_by_test_id("grid-canvas").bounding_box()
    first = layout["locked"][0]
    page.mouse.click(box["x"] + max(first["x"], layout["nowX"]) + 3, box["y"] + box["height"] / 2)
    toast = page.locator("[data-testid=toast][data-reason=column_locked]")
    toast.wait_for(state="visible", timeout=5000)
    assert "locked" in toast.inner_text()
    assert state(page)["bets"] == []
    # The toast covers neither the stake bar (its hint) nor the summary nor history rows.
    tb = toast.bounding_box()
    for tid in ("stake-hint", "stakes", "summary"):
        node = page.get_by_test_id(tid)
        if node.is_visible():
            assert not rects_overlap(tb, node.bounding_box()), tid
    # A toast over the board is click-through: a tap on a cell under it
    # reaches the board (it used to be swallowed by the toast).
    centre = [tb["x"] + tb["width"] / 2, tb["y"] + tb["height"] / 2]
    assert page.evaluate("([x, y]) => document.elementFromPoint(x, y).dataset.testid", centre) == "grid-canvas"
    if phone:
        page.get_by_test_id("history-toggle").click()
        page.get_by_test_id("history").wait_for(state="visible")
        assert not rects_overlap(tb, page.get_by_test_id("history").bounding_box())
    watch.assert_clean()


# ---- 9. receipts in words, checked in the browser ---------------------------------------------------

def test_history_rows_label_their_times_and_the_receipt_verifies_in_the_browser(flat_server, page_of):
    page, watch = page_of(flat_server.url)
    sign_in_as_guest(page)
    record_after_click(page)
    # The grid reprices on every tick: a tap may meet odds_changed (SPEC
    # section 3); tap again, as a player would.
    for _ in range(6):
        cell = None
        while cell is None:
            cell = cell_at_price(page, 3, 2)
        click_cell(page, cell)
        bet = wait_js(page, """() => { const b = window.tapgrid.state().bets;
                                  return b.find((x) => x.bet !== null) || (b.length && b.every((x) => x.state === 'rejected') ? 'no' : null); }""",
                      what="an acked bet")
        if bet != "no":
            break
        assert all(b["reason"] == "odds_changed" for b in state(page)["bets"]), state(page)["bets"]
    else:
        raise AssertionError(f"six taps refused: {state(page)['bets']}")
    row = page.locator(f'[data-testid=history-row][data-bet="{bet["bet"]}"]')
    row.wait_for(state="visible")
    text = row.inner_text()
    assert re.search(r"placed \d\d:\d\d:\d\d", text) and re.search(r"window \d\d:\d\d:\d\d\u2013\d\d:\d\d:\d\d", text), text
    row.locator("summary").first.click()
    words = row.locator(".receipt-words").inner_text()
    assert "You staked 5.00 credits" in words and "$95," in words and "{" not in words, words
    assert page.evaluate("() => localStorage.getItem('tapgrid.token_key')") in row.locator(".receipt-key").inner_text()
    row.get_by_test_id("verify-btn").click()
    verdict = row.get_by_test_id("verify-result")
    wait_js(page, "(id) => document.querySelector(`[data-testid=history-row][data-bet='${id}'] [data-testid=verify-result]`).dataset.ok === 'true'",
            arg=bet["bet"], what="the signature checked")
    assert "Valid" in verdict.inner_text()
    # The same check refuses an altered payload: it can fail.
    token = page.evaluate("() => localStorage.getItem('tapgrid.token')")
    import json
    import urllib.request
    req = urllib.request.Request(flat_server.url + "/api/history?limit=5", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        server_bet = next(b for b in json.loads(r.read())["bets"] if b["bet"] == bet["bet"])
    assert page.evaluate("([p, s]) => window.tapgrid.verify(p, s)", [server_bet["payload"], server_bet["sig"]]) is True
    altered = server_bet["payload"].replace('"stake":500', '"stake":50000')
    assert altered != server_bet["payload"]
    assert page.evaluate("([p, s]) => window.tapgrid.verify(p, s)", [altered, server_bet["sig"]]) is False
    watch.assert_clean()


# ---- 10. the phone board ---------------------------------------------------------------------------

def test_the_phone_shows_many_future_columns_a_labelled_balance_and_one_top_bar_row(flat_server, page_of):
    page, watch = page_of(flat_server.url, phone=True)
    sign_in_as_guest(page)
    cells = wait_js(page, "() => { const c = window.tapgrid.openCells(); return c.length ? c : null; }", what="open cells")
    columns = sorted({c["t0"] for c in cells})
    # FAST columns are 2 s; on a 5 s market the same geometry shows 5+ columns too (minimum 44 px each).
    assert len(columns) >= 5, columns
    assert page.locator(".balance-box .label").is_visible()
    assert page.locator(".balance-box .label").inner_text().strip().lower() == "balance"
    tops = page.evaluate("""() => [...document.querySelector('.topbar').children]
        .filter((n) => n.offsetParent !== null).map((n) => { const r = n.getBoundingClientRect(); return [r.top, r.bottom]; })""")
    mid = [(a + b) / 2 for a, b in tops]
    assert max(mid) - min(mid) < 8, f"the top bar wraps: {tops}"
    bar = page.locator(".topbar").bounding_box()
    assert bar["width"] <= 390 and page.evaluate("() => document.documentElement.scrollWidth") <= 390
    # Full-height board; the history is a drawer, closed until asked for.
    board = page.locator(".board").bounding_box()
    assert board["height"] >= 0.55 * 844, board
    assert not page.get_by_test_id("history").is_visible()
    page.get_by_test_id("history-toggle").click()
    page.get_by_test_id("history").wait_for(state="visible")
    assert page.get_by_test_id("history-toggle").get_attribute("aria-expanded") == "true"
    watch.assert_clean()


def test_every_open_cell_on_the_phone_shows_its_multiplier(flat_server, page_of):
    """A capped cell's "100.00x" is wider than a phone's column: it was drawn
    blank. Now it reads "100x" (fewer decimals, rounded down)."""
    page, watch = page_of(flat_server.url, phone=True)
    sign_in_as_guest(page)
    cells = wait_js(page, """() => { const c = window.tapgrid.openCells();
        return c.some((x) => x.mult >= 10000) ? c : null; }""", what="a capped cell on the board")
    assert any(c["mult"] >= 10000 for c in cells)
    layout = wait_js(page, "() => { const l = window.tapgrid.layout(); return l.layers.includes('cells') ? l : null; }",
                     what="a drawn board")
    assert layout["unlabelled"] == 0, layout["unlabelled"]
    watch.assert_clean()


def test_the_page_asks_for_compact_grids_and_draws_them(flat_server, page_of):
    """The page opens /ws with grid=2 (a sixth of a grid frame's bytes in the
    fan-out) and turns each grid2 frame into the grid web.client would."""
    import json
    from tests.support import wait_until
    from web.client import grid_from_grid2
    page, watch = page_of(flat_server.url)
    urls, grids = [], []

    def on_socket(ws):
        urls.append(ws.url)

        def on_frame(payload):
            msg = json.loads(payload) if isinstance(payload, str) else {}
            if msg.get("type") in ("grid", "grid2"):
                grids.append(msg)
        ws.on("framereceived", on_frame)
    page.on("websocket", on_socket)
    sign_in_as_guest(page)
    wait_js(page, "() => window.tapgrid.openCells().length > 0 || null", what="open cells")
    wait_until(lambda: grids, what="a grid frame")
    assert urls and all("grid=2" in u for u in urls), urls
    assert {g["type"] for g in grids} == {"grid2"}
    frame = grids[-1]
    assert page.evaluate("(f) => import('/static/frames.js').then((m) => m.gridFromGrid2(f))",
                         frame) == grid_from_grid2(frame)
    watch.assert_clean()


# ---- what players missed -----------------------------------------------------------------------------

def test_hover_shows_the_potential_payout_before_the_tap(flat_server, page_of):
    page, watch = page_of(flat_server.url)
    sign_in_as_guest(page)
    page.get_by_test_id("stake-25").click()
    cell = None
    while cell is None:
        cell = cell_at_price(page, 4, 1)
    box = page.get_by_test_id("grid-canvas").bounding_box()
    page.mouse.move(box["x"] + cell["x"], box["y"] + cell["y"])
    preview = page.get_by_test_id("payout-preview")
    preview.wait_for(state="visible", timeout=3000)
    payout = int(preview.get_attribute("data-payout"))
    assert abs(payout - 2500 * cell["mult"] // 100) <= 2500 * 30 // 100, (payout, cell)  # the odds may move a little
    assert preview.inner_text() == f"25.00 \u2192 {credits(payout)} if touched"
    assert state(page)["bets"] == []
    watch.assert_clean()


def test_the_price_history_is_filled_on_load(flat_server, page_of):
    # The server has been up long enough to have a past worth drawing.
    import json
    import urllib.request
    with urllib.request.urlopen(flat_server.url + f"/api/ticks?from={int(time.time() * 1000) - 180000}", timeout=5) as r:
        first = json.loads(r.read())["ticks"][0][0]
    if time.time() * 1000 - first < 12000:
        time.sleep(max(0, 12 - (time.time() * 1000 - first) / 1000))
    loaded = time.time() * 1000
    page, watch = page_of(flat_server.url)
    view = wait_js(page, "() => { const v = window.tapgrid.view(); return v.ticks > 20 ? v : null; }", timeout=5,
                   what="the stored ticks on the chart")
    assert view["firstTick"] <= loaded - 10000, (view, loaded)
    watch.assert_clean()


def test_mute_is_remembered_and_the_explainer_shows_once(flat_server, page_of):
    page, watch = page_of(flat_server.url)
    page.get_by_test_id("guest-btn").click()
    page.get_by_test_id("explainer").wait_for(state="visible", timeout=10_000)
    assert "lock strip" in page.get_by_test_id("explainer").inner_text()
    page.get_by_test_id("explainer-ok").click()
    wait_connected(page)
    mute = page.get_by_test_id("mute-btn")
    assert mute.get_attribute("aria-pressed") == "false"
    mute.click()
    assert mute.get_attribute("aria-pressed") == "true"
    page.reload()
    wait_connected(page)
    assert page.get_by_test_id("mute-btn").get_attribute("aria-pressed") == "true"
    assert not page.get_by_test_id("explainer").is_visible()
    record_after_click(page)
    cell = None
    while cell is None:
        cell = cell_at_price(page, 3, 1)
    click_cell(page, cell)
    wait_js(page, "() => window.tapgrid.sounds().length > 0", what="the tap's sound request")
    assert [s["muted"] for s in page.evaluate("() => window.tapgrid.sounds()")] == [True]
    watch.assert_clean()


def test_cells_are_tappable_with_the_keyboard(flat_server, page_of):
    page, watch = page_of(flat_server.url)
    sign_in_as_guest(page)
    wait_js(page, "() => window.tapgrid.openCells().length > 0", what="open cells")
    page.get_by_test_id("grid-canvas").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    focus = page.get_by_test_id("cell-focus").inner_text()
    assert "Enter to bet" in focus and "pays" in focus, focus
    for attempt in range(1, 5):
        page.keyboard.press("Enter")
        bets = wait_js(page, """(n) => { const b = window.tapgrid.state().bets;
                           return b.length === n && b.every((x) => x.state !== 'pending') ? b : null; }""",
                       arg=attempt, what="the keyboard tap answered")
        bet = bets[-1]
        if bet["state"] == "confirmed":
            break
        assert bet["reason"] == "odds_changed", bet     # the odds moved: a new tap at the new price
    assert bet["state"] == "confirmed" and bet["stake"] == 500, bets
    watch.assert_clean()


# ---- 4 and 8. a server restart: back within the first backoff window, at the same price ---------------

# Math.random under the test's control (only the page's backoff and probe
# jitter use it; nonces come from crypto.getRandomValues).
RANDOM_HOOK = """(() => { const r = Math.random.bind(Math);
    Math.random = () => (typeof window.__rand === 'number' ? window.__rand : r()); })();"""


def grid_price(url):
    import json
    import urllib.request
    with urllib.request.urlopen(url + "/api/grid", timeout=5) as r:
        return json.loads(r.read())["price"]


def test_the_page_reconnects_within_the_first_backoff_window_after_a_restart(server_factory, page_of):
    server = server_factory("--seed", "3", env=FAST)
    page, watch = page_of(server.url, init_script=RANDOM_HOOK)
    sign_in_as_guest(page)
    wait_js(page, "() => window.tapgrid.view().ticks > 8", what="a few live ticks")
    before = grid_price(server.url)
    server.kill()
    # Fail fast a few times (zero jitter), so the backoff has grown to a
    # 40 s window; then make every wait the top of its window: the next
    # scheduled retry is ~36 s away, the probe ~4.5 s.
    page.evaluate("() => { window.__rand = 0; }")
    wait_js(page, "() => { const c = window.tapgrid.conn(); return c && c.attempt >= 3; }", timeout=20,
            what="three failed reconnects")
    page.evaluate("() => { window.__rand = 0.9; }")
    retry = wait_js(page, "() => { const c = window.tapgrid.conn(); return c && c.retryAt - Date.now() > 20000 ? c : null; }",
                    timeout=10, what="a long backoff wait")
    assert page.get_by_test_id("retry-btn").is_visible()
    assert page.get_by_test_id("conn-status").get_attribute("data-state") == "reconnecting"
    server.start()
    back = time.time() * 1000
    wait_connected(page, timeout=12)
    took = time.time() * 1000 - back
    # Within the first window (0-5 s) plus the handshake, and long before
    # the backoff's own retry would have fired.
    assert took < 6500, f"reconnected {took:.0f} ms after the server was back"
    assert time.time() * 1000 < retry["retryAt"] - 10000
    # The sim walked on from the last stored price instead of $95,000.
    after = grid_price(server.url)
    assert abs(after - before) < before * 0.002, (before, after)
    assert after != 9_500_000 or before == 9_500_000
    watch.errors = [e for e in watch.errors if "ERR_CONNECTION_REFUSED" not in e and "WebSocket" not in e]
    watch.assert_clean()


def test_retry_now_reconnects_at_once(server_factory, page_of):
    server = server_factory("--seed", "4", env=FAST)
    page, watch = page_of(server.url, init_script=RANDOM_HOOK)
    sign_in_as_guest(page)
    server.kill()
    page.evaluate("() => { window.__rand = 0; }")
    wait_js(page, "() => { const c = window.tapgrid.conn(); return c && c.attempt >= 3; }", timeout=20,
            what="three failed reconnects")
    page.evaluate("() => { window.__rand = 0.999; }")   # probe ~5 s, retry ~40 s away
    wait_js(page, "() => { const c = window.tapgrid.conn(); return c && c.retryAt - Date.now() > 20000; }",
            timeout=10, what="a long backoff wait")
    server.start()
    page.get_by_test_id("retry-btn").click()
    wait_connected(page, timeout=4)
    assert not page.get_by_test_id("retry-btn").is_visible()
    assert page.evaluate("() => window.tapgrid.conn().attempt") == 0


# ---- accessibility: an axe-core scan ---------------------------------------------------------------

@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_no_serious_accessibility_violation(flat_server, page_of, phone):
    import os

    from tests.support import ROOT
    from tests.web.browser import axe_source, axe_violations
    source = axe_source(os.path.join(ROOT, "tests", "artifacts", "axe"))
    # axe goes in as an init script: the page's CSP (script-src 'self')
    # rightly refuses an injected inline <script>, as it would an attacker's.
    page, watch = page_of(flat_server.url, phone=phone, init_script=source)
    page.get_by_test_id("guest-btn").wait_for()
    assert axe_violations(page) == []          # the sign-in card
    page.get_by_test_id("guest-btn").click()
    page.get_by_test_id("explainer").wait_for(state="visible", timeout=10_000)
    assert axe_violations(page) == []          # the first-run explainer
    page.get_by_test_id("explainer-ok").click()
    wait_connected(page)
    tap_and_settle(page, bands=0, column_index=0)      # a bet, so the history has a row
    wait_js(page, "() => document.querySelectorAll('[data-testid=history-row]').length > 0", what="a history row")
    if phone:
        page.get_by_test_id("history-toggle").click()
    page.locator("[data-testid=history-row] summary").first.click()
    assert axe_violations(page) == []          # playing, with a receipt open


# ---- other players and the demo top-up ---------------------------------------------------------------

def test_a_guest_who_ran_out_tops_up_and_sees_the_live_feed(server_factory, page_of, tmp_path):
    feed = flat_feed(str(tmp_path / "flat.csv"))
    server = server_factory("--feed", "replay", "--feed-file", feed,
                            env={**FAST, "TAPGRID_GUEST_CREDIT": "1500", "TAPGRID_FEED_EVERY_MS": "500"})
    page, watch = page_of(server.url)
    sign_in_as_guest(page)
    assert not page.get_by_test_id("topup-btn").is_visible()
    page.get_by_test_id("stake-5").click()
    won = tap_and_settle(page, bands=0)           # a win, for the live feed
    assert won["state"] == "won"
    wait_js(page, "() => document.querySelector('[data-testid=live-wins]').textContent.includes('won')",
            what="the win in the live feed")
    assert "player-" in page.get_by_test_id("live-wins").inner_text()
    assert "player-" in page.get_by_test_id("leaders").inner_text()
    while state(page)["balance"] >= 1000:         # lose down to under 10.00
        assert tap_and_settle(page, bands=4)["state"] == "lost"
    topup = page.get_by_test_id("topup-btn")
    topup.wait_for(state="visible", timeout=5000)
    topup.click()
    wait_js(page, "() => document.querySelector('[data-testid=balance]').dataset.minor === '1500'",
            what="the balance topped up")
    assert not topup.is_visible()
    watch.assert_clean()
    # Topped up, the balance is no longer low: the server refuses (409
    # `limit`, a SPEC reason) and the page's toast says why in words.
    page.evaluate("async () => (await import('/static/topup.js')).topUp()")
    toast = wait_js(page, "() => [...document.querySelectorAll('[data-testid=toast]')]"
                          ".map((t) => t.dataset.reason === 'limit' ? t.textContent : null).find(Boolean) || null",
                    what="the refused top-up's toast")
    assert toast == "Top-ups are for a balance that ran out.", toast_texts(page)


# ---- the README's pictures ------------------------------------------------------------------------------

def wave_feed(path, seconds=900, gap_ms=250):
    """A price that swings about $18 either way every 30 s, with a little noise."""
    import math
    rows, ts = ["ts_ms,price_cents"], 1_733_594_400_000
    for i in range(int(seconds * 1000 / gap_ms)):
        p = 9_500_500 + round(1800 * math.sin(2 * math.pi * i / 120)) + ((i * 7919) % 200 - 100)
        rows.append(f"{ts},{p}")
        ts += gap_ms
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_screenshot_with_a_win_a_stacked_cell_and_the_summary(server_factory, page_of, tmp_path, phone):
    import os
    import shutil

    from tests.support import ROOT
    feed = wave_feed(str(tmp_path / "wave.csv"))
    server = server_factory("--feed", "replay", "--feed-file", feed, env=FAST)
    page, watch = page_of(server.url, phone=phone)
    sign_in_as_guest(page)
    page.get_by_test_id("stake-10").click()
    wait_js(page, "() => window.tapgrid.view().ticks > 30", timeout=15, what="some price history")
    box = page.get_by_test_id("grid-canvas").bounding_box()
    # A stack far enough ahead to still be open when the picture is taken.
    for column_index in (6, 7, 5, 8):
        cell = None
        while cell is None:
            cell = cell_at_price(page, column_index, 1)
        seen = [b["nonce"] for b in state(page)["bets"]]
        page.mouse.dblclick(box["x"] + cell["x"], box["y"] + cell["y"])
        here = new_bets_answered(page, seen, 2, "both taps answered")
        if here[0]["col"] != here[1]["col"] or here[0]["lo"] != here[1]["lo"]:
            continue           # the board scrolled between the two clicks
        cell = {**cell, "t0": here[0]["col"], "lo": here[0]["lo"]}
        if all(b["state"] == "confirmed" for b in here):
            break
    else:
        raise AssertionError("no double tap stacked")
    stacked = cell
    # Then a win near now (the price's own band, nearest column: a likely touch).
    for _ in range(10):
        bet = tap_and_settle(page, bands=0, column_index=0)
        if bet["state"] == "won":
            break
    else:
        raise AssertionError("ten taps on the price's own band and no win")
    wait_js(page, """([col, lo]) => window.tapgrid.stacks().some((s) => s.col === col && s.lo === lo && s.count === 2 && s.state === 'confirmed')""",
            arg=[stacked["t0"], stacked["lo"]], what="the stack still open")
    assert page.get_by_test_id("sum-bets").inner_text() != "0"
    wait_js(page, "(id) => { const r = document.querySelector(`[data-testid=history-row][data-bet='${id}']`); return r && r.dataset.outcome === 'won'; }",
            arg=bet["bet"], what="the win in the history")
    page.mouse.move(box["x"] + 5, box["y"] + box["height"] - 5)   # no hover preview in the picture
    wait_error_toasts_gone(page)
    os.makedirs(os.path.join(ROOT, "tests", "artifacts"), exist_ok=True)
    name = "screenshot-phone.png" if phone else "screenshot.png"
    shot = os.path.join(ROOT, "tests", "artifacts", name)
    page.screenshot(path=shot)
    assert os.path.getsize(shot) > 10_000
    # The README's pictures are tracked files: a test run leaves them alone
    # unless asked (`make screenshots`), so a commit after tests never
    # carries a picture nobody chose.
    if os.environ.get("TAPGRID_RETAKE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, os.path.join(ROOT, "web", "static", name))
    watch.assert_clean()


def test_a_refund_is_shown_when_the_feed_stalls_inside_the_window(server_factory, page_of, tmp_path):
    import json
    import urllib.request

    from tests.web.test_browser import quiet_feed_file
    feed = quiet_feed_file(str(tmp_path / "quiet.csv"), quick_s=14.0)
    server = server_factory("--feed", "replay", "--feed-file", feed, env=FAST)
    from tests.support import wait_until

    def recorded():
        with urllib.request.urlopen(server.url + "/api/ticks?from=0", timeout=5) as r:
            return json.loads(r.read())["ticks"]
    # The replay stamps its first tick "now"; a server can be healthy a moment
    # before that tick is in the price record /api/ticks reads.
    first = wait_until(recorded, timeout=10, interval=0.05, what="the first recorded tick")[0][0]
    stall_at = first + 14000                                 # then the feed goes quiet
    page, watch = page_of(server.url)
    sign_in_as_guest(page)
    # A window that starts after the last tick cannot be settled: refunded.
    wait_ms = stall_at - 3500 - time.time() * 1000
    assert wait_ms > -1500, "the page took too long to sign in for this timing"
    if wait_ms > 0:
        page.wait_for_timeout(wait_ms)
    record_after_click(page)
    bet = None
    for _ in range(4):
        cell = page.evaluate("""([after, bands]) => {
            const cells = window.tapgrid.openCells().filter((c) => c.t0 >= after);
            const t0 = Math.min(...cells.map((c) => c.t0));
            const p = Number(document.querySelector('[data-testid=price]').textContent.replace(/[$,]/g, ''));
            const lo = Math.floor(Math.round(p * 100) / 1000) * 1000 + bands * 1000;
            return cells.find((c) => c.t0 === t0 && c.lo === lo) || null; }""", [stall_at, 3])
        assert cell is not None, "no open cell after the stall"
        click_cell(page, cell)
        booked = page.evaluate("() => window.__afterClick")[-1]
        tap = next((b for b in booked if b["col"] == cell["t0"] and b["lo"] == cell["lo"] and b["state"] == "pending"), None)
        if tap is None:
            continue
        got = wait_bet(page, tap["nonce"], ("confirmed", "rejected") + SETTLED)
        if got["state"] == "rejected":
            assert got["reason"] == "odds_changed", got
            continue
        bet = wait_bet(page, tap["nonce"], SETTLED, timeout=30)
        break
    assert bet is not None and bet["state"] == "void", bet
    wait_js(page, """() => [...document.querySelectorAll('[data-testid=toast]')]
                 .some((t) => t.dataset.reason === 'void' && t.textContent.includes('refunded 5.00'))""",
            what="a toast for the refund")
    stack = next(s for s in page.evaluate("() => window.tapgrid.stacks()") if s["state"] == "void")
    assert stack["label"] == ["refunded", "5"]
    # The live region is emptied and refilled 30 ms later, so that the same
    # words twice are read twice: wait for its text, do not sample it.
    wait_js(page, "() => document.querySelector('[data-testid=announcer]').textContent.includes('refunded')",
            what="the refund in the ARIA live region")
    watch.assert_clean()
