"""The market switcher (issue 12, with the markets of SPEC section 9 v1.1)
in real headless Chromium against a real `tapgrid serve --markets`: it lists
the markets from /api/markets, shows only when there is more than one,
switches the board (subscribe, the market's grid and price record), works
from the keyboard and on a phone, and a bet on another market stays in the
history, named by its market.

Needs /usr/bin/chromium (Debian's; CI installs it): without it these tests
fail, they do not skip."""
import os

import pytest

from tests.web.browser import (pick_cell, click_cell, record_after_click, sign_in_as_guest,
                               state, wait_bet, wait_js)

MARKETS = "BTC-USD/5s,ETH-USD/15s"
ETH = "ETH-USD/15s"
BTC = "BTC-USD/5s"


@pytest.fixture(scope="module")
def markets_server(tmp_path_factory):
    from tests.support import ServerProcess
    d = tmp_path_factory.mktemp("markets_page")
    s = ServerProcess(str(d / "tapgrid.db"), "--seed", "4", "--markets", MARKETS).start()
    yield s
    s.kill()


def shown_price(page):
    return float(page.get_by_test_id("price").inner_text().replace("$", "").replace(",", ""))


def wait_board_of(page, market_id, asset_below=None, asset_above=None):
    """The board shows `market_id`: its button pressed, its cells drawn,
    the price in the top bar from its asset."""
    wait_js(page, """(id) => window.tapgrid.state().marketId === id && window.tapgrid.openCells().length > 0""",
            arg=market_id, what=f"the board of {market_id}")
    pressed = page.locator("[data-testid=market-btn][aria-pressed=true]")
    assert pressed.count() == 1 and pressed.get_attribute("data-market") == market_id
    wait_js(page, """([lo, hi]) => { const t = document.querySelector('[data-testid=price]').textContent;
                       const p = Number(t.replace(/[$,]/g, '')); return p > lo && p < hi; }""",
            arg=[asset_above or 0, asset_below or 1e9], what="the asset's price in the top bar")


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_the_switcher_switches_the_board_and_keeps_other_markets_bets_in_history(markets_server, page_of, phone):
    page, watch = page_of(markets_server.url, phone=phone)
    switch = page.get_by_test_id("market-switch")
    switch.wait_for(state="visible", timeout=10_000)
    buttons = page.get_by_test_id("market-btn")
    assert [buttons.nth(i).get_attribute("data-market") for i in range(buttons.count())] == [BTC, ETH]
    assert page.evaluate("() => window.tapgrid.markets().map((m) => m.market_id)") == [BTC, ETH]
    sign_in_as_guest(page)
    wait_board_of(page, BTC, asset_above=20_000)

    # From the keyboard: focus the ETH button, Enter.
    eth_button = page.locator(f"[data-testid=market-btn][data-market='{ETH}']")
    eth_button.focus()
    page.keyboard.press("Enter")
    wait_board_of(page, ETH, asset_below=20_000)
    grid = page.evaluate("() => window.tapgrid.view()")
    assert grid["ticks"] > 0
    cells = page.evaluate("() => window.tapgrid.openCells()")
    assert all(c["lo"] % 100 == 0 for c in cells)
    assert all(c["t0"] % 15_000 == 0 for c in cells), "the 15 s market's columns"
    # Ticks of the other asset do not reach this board.
    eth_price = shown_price(page)
    page.wait_for_timeout(1500)
    assert abs(shown_price(page) - eth_price) < 500

    # A bet here: it names its market, on the wire and in the book.
    record_after_click(page)
    for _ in range(4):
        before = {b["nonce"] for b in state(page)["bets"]}
        cell = pick_cell(page, column_index=2)
        if phone:
            box = page.get_by_test_id("grid-canvas").bounding_box()
            page.touchscreen.tap(box["x"] + cell["x"], box["y"] + cell["y"])
        else:
            click_cell(page, cell)
        fresh = wait_js(page, """(before) => { const b = window.tapgrid.state().bets.filter((x) => !before.includes(x.nonce));
                                  return b.length ? b : null; }""", arg=list(before), what="the tap booked")
        bet = wait_bet(page, fresh[0]["nonce"], ("confirmed", "rejected", "won", "lost", "void"))
        if bet["state"] != "rejected":
            break
        assert bet["reason"] == "odds_changed", bet
    else:
        raise AssertionError("no tap taken on the ETH market")
    assert bet["market"] == ETH
    row = page.locator(f"[data-testid=history-row][data-bet='{bet['bet']}']")
    row.wait_for(state="attached", timeout=10_000)
    assert row.get_attribute("data-market") == ETH

    # Back to BTC (a tap on the phone, a click on the desktop): the ETH bet
    # is not drawn on the BTC board, and it stays in the history with its market.
    btc_button = page.locator(f"[data-testid=market-btn][data-market='{BTC}']")
    if phone:
        btc_button.tap()
    else:
        btc_button.click()
    wait_board_of(page, BTC, asset_above=20_000)
    stacks = page.evaluate("() => window.tapgrid.stacks()")
    assert all(not (s["col"] == bet["col"] and s["lo"] == bet["lo"]) for s in stacks), stacks
    if phone:
        page.get_by_test_id("history-toggle").click()
        page.get_by_test_id("history").wait_for(state="visible")
    row = page.locator(f"[data-testid=history-row][data-bet='{bet['bet']}']")
    row.wait_for(state="visible", timeout=10_000)
    assert row.get_attribute("data-market") == ETH
    assert row.locator("[data-testid=history-market]").inner_text() == ETH
    assert "ETH" in row.locator(".receipt-words").text_content()
    # The switcher fits: no sideways scroll of the page, the top bar on one row.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"]
    box = switch.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
    watch.assert_clean()


def test_no_serious_accessibility_violation_with_the_switcher(markets_server, page_of):
    from tests.support import ROOT
    from tests.web.browser import axe_source, axe_violations
    source = axe_source(os.path.join(ROOT, "tests", "artifacts", "axe"))
    page, watch = page_of(markets_server.url, init_script=source)
    page.get_by_test_id("market-switch").wait_for(state="visible", timeout=10_000)
    sign_in_as_guest(page)
    page.locator(f"[data-testid=market-btn][data-market='{ETH}']").click()
    wait_board_of(page, ETH, asset_below=20_000)
    assert axe_violations(page) == []
    watch.assert_clean()


def test_one_market_shows_no_switcher(server_factory, page_of):
    server = server_factory("--seed", "5")
    page, watch = page_of(server.url)
    sign_in_as_guest(page)
    wait_js(page, "() => window.tapgrid.state().marketId !== null", what="the markets loaded")
    assert page.evaluate("() => window.tapgrid.markets().length") == 1
    assert not page.get_by_test_id("market-switch").is_visible()
    watch.assert_clean()
