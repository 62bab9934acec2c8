// The markets (SPEC section 9, v1.1): the list from GET /api/markets, and a
// switcher that shows only when there is more than one. Choosing a market
// subscribes the socket to it and redraws the board for it (its grid, its
// asset's price record); bets on the other markets stay in the book and the
// history, named by their market, and their results are still announced.
//
//   import { loadMarkets, switchMarket, marketOf } from "/static/markets.js";
//   await loadMarkets();               // [{market_id, asset, column_ms, band_cents, ...}]
//   switchMarket("ETH-USD/15s");       // the board now shows ETH-USD/15s
//   marketOf(null).market_id;          // the default market's id

import { apiGet } from "/static/net.js";
import { byTestId as $ } from "/static/ui.js";
import { seconds } from "/static/format.js";
import { state, book, parts, setMarket, showPrice, guard } from "/static/page.js";
import { fillPriceHistory } from "/static/frames.js";

// Until /api/markets answers (or on a server without it): the one v1
// market, whose settings are the grid's.
const V1 = {
  market_id: null, asset: "BTC-USD", market: "open",
  get column_ms() { return parts.view.grid.column_ms; },
  get band_cents() { return parts.view.grid.band_cents; },
  get lock_ms() { return parts.view.grid.lock_ms; },
};
const markets = { list: [V1], byId: new Map(), defaultId: null };

export function marketOf(id) {
  return markets.byId.get(id ?? markets.defaultId) || markets.list[0];
}

export function currentMarket() {
  return marketOf(state.marketId);
}

export function isDefault(id) {
  return (id ?? markets.defaultId) === markets.defaultId;
}

export function several() {
  return markets.list.length > 1;
}

export function marketLabel(m) {
  return `${m.asset.replace("-", " / ")} · ${seconds(m.column_ms)}`;
}

// What the board draws: the stacks and bets on the market it shows.
export function boardStacks() {
  return book.stacks(state.marketId, markets.defaultId);
}

export function boardBets() {
  if (state.marketId === null) return book.list;
  return book.list.filter((b) => (b.market ?? markets.defaultId) === state.marketId);
}

export function marketList() {
  return markets.list.map((m) => ({ market_id: m.market_id, asset: m.asset, column_ms: m.column_ms, band_cents: m.band_cents }));
}

export function loaded() {
  return markets.defaultId !== null;
}

export async function loadMarkets() {
  let data = null;
  try {
    data = await apiGet("/api/markets");
  } catch (_) {
    data = null; // an older server: the default market only
  }
  if (data && Array.isArray(data.markets) && data.markets.length) {
    markets.list = data.markets;
    markets.defaultId = data.default ?? data.markets[0].market_id;
    markets.byId = new Map(data.markets.map((m) => [m.market_id, m]));
    if (!markets.byId.has(state.marketId)) state.marketId = markets.defaultId;
  }
  renderSwitcher();
  return marketList();
}

// The socket's subscription: on every new socket (its default is the
// default market) and on every switch.
export function subscribe() {
  if (!state.conn || !state.conn.connected || !several()) return;
  state.conn.send({ type: "subscribe", markets: [state.marketId] });
}

export function switchMarket(id) {
  if (!markets.byId.has(id) || id === state.marketId) return;
  state.marketId = id;
  const m = currentMarket();
  parts.view.reset();
  setMarket(m.market, null);
  renderSwitcher();
  showPrice();
  subscribe();
  // The board's first picture, before the socket's next grid frame.
  guard(async () => {
    const grid = await apiGet(`/api/grid?market_id=${encodeURIComponent(id)}`);
    if (grid && state.marketId === id) {
      parts.view.setGrid(grid);
      showPrice();
    }
  });
  guard(fillPriceHistory);
}

// Buttons, one per market, in a labelled group: Tab reaches them, Enter or
// Space switches; the current one is aria-pressed.
function renderSwitcher() {
  const nav = $("market-switch");
  const list = nav.querySelector(".market-list");
  nav.hidden = !several();
  $("pair").textContent = currentMarket().asset.replace("-", " / ");
  if (nav.hidden) return;
  list.replaceChildren();
  for (const m of markets.list) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "market-btn";
    b.dataset.testid = "market-btn";
    b.dataset.market = m.market_id;
    b.textContent = marketLabel(m);
    b.setAttribute("aria-pressed", String(m.market_id === state.marketId));
    b.addEventListener("click", () => switchMarket(m.market_id));
    list.append(b);
  }
}
