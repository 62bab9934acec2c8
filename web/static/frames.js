// Frames from the server, each turned into what the player sees: hello,
// tick, grid, ack, result, market, feed, error (SPEC section 9). Every
// result is seen and heard, not only wins. Also the chart's past, filled
// from the stored price record on load and after a reconnect.
//
//   import { onMessage, fillPriceHistory } from "/static/frames.js";
//   onMessage({type: "tick", p: 9500050, t: Date.now()});
//   await fillPriceHistory();

import { apiGet } from "/static/net.js";
import { dollars, reasonText, winText, lossText, refundText, clockTime } from "/static/format.js";
import { byTestId as $, toast, showAccount } from "/static/ui.js";
import { state, book, sounds, parts, setBalance, setMarket, showPrice, guard } from "/static/page.js";
import { reconcile, refreshHistory, scheduleHistoryRefresh, refused } from "/static/taps.js";
import { currentMarket, several, marketLabel, marketOf, subscribe, loaded as loadedMarkets, loadMarkets } from "/static/markets.js";

// Frames of a market (or an asset) other than the board's are not drawn: a
// switch and the socket's subscription cross in flight.
function onBoard(msg, key) {
  const m = currentMarket();
  if (key === "a") return !msg.a || msg.a === m.asset;
  return !msg.market_id || !m.market_id || msg.market_id === m.market_id;
}

// A grid2 frame as the v1 grid frame it stands for (as web.client.grid_from_grid2).
export function gridFromGrid2(msg) {
  const band = msg.band_cents;
  const columns = msg.columns.map((c) => ({
    t0: c.t0,
    cells: c.mults.flatMap((mult, i) => (mult === null ? [] : [{ lo: c.lo + i * band, mult }])),
  }));
  return { ...msg, type: "grid", columns };
}

const HISTORY_FILL_MS = 180000; // the chart's past on load: what the board shows and more

export function onMessage(msg) {
  const { view, summary, live } = parts;
  if (msg.type === "grid2") msg = gridFromGrid2(msg);
  switch (msg.type) {
    case "hello":
      state.user = msg.user ?? state.user;
      showAccount(state.user ?? "");
      setBalance(msg.balance);
      // A page that booted while the server was away learns the markets now.
      if (!loadedMarkets()) guard(loadMarkets);
      subscribe(); // a new socket gets the default market until told otherwise
      // Acks for taps sent on a previous socket went with it; results that
      // fired while we were away are in history too.
      if (book.pending().length) guard(() => reconcile(true));
      else refreshHistory();
      guard(fillPriceHistory); // the gap while we were away
      break;
    case "tick":
      if (!onBoard(msg, "a")) break;
      view.addTick(msg.p, msg.t);
      showPrice();
      break;
    case "grid":
      if (!onBoard(msg, "market_id")) break;
      view.setGrid(msg);
      if (msg.market && msg.market !== state.market) setMarket(msg.market, null);
      showPrice();
      break;
    case "ack": {
      const bet = book.ack(msg);
      if (msg.ok) {
        setBalance(msg.balance);
        if (bet) summary.place(msg.bet, bet);
        scheduleHistoryRefresh();
      } else if (bet) {
        guard(() => refused(bet, msg.reason)); // odds_changed: what they are now, and a retry
      }
      break;
    }
    case "result": {
      const bet = book.result(msg);
      setBalance(msg.balance);
      if (bet) {
        summary.settle(msg, bet);
        announceResult(bet, msg);
      }
      scheduleHistoryRefresh();
      break;
    }
    case "market":
      if (!onBoard(msg, "market_id")) break;
      setMarket(msg.status, msg.reason);
      break;
    case "feed":
      live.show(msg);
      break;
    case "error":
      toast(reasonText(msg.reason), "error", msg.reason);
      break;
    default:
      break; // pong, and any newer frame types, need nothing here
  }
}

// A toast, a sound, and the same words in the screen reader's live region.
// A bet on another market than the board's says which.
function announceResult(bet, msg) {
  const id = msg.market_id ?? bet.market;
  const elsewhere = several() && !onBoard({ market_id: id }, "market_id");
  const where = `${dollars(bet.lo)} at ${clockTime(bet.col)}${elsewhere ? ` (${marketLabel(marketOf(id))})` : ""}`;
  let text;
  if (msg.outcome === "won") {
    text = `You ${winText(msg.payout, bet.stake)} on ${where}`;
    if (!elsewhere) parts.view.celebrate(bet.col, bet.lo, winText(msg.payout, bet.stake));
    toast(`${text}!`, "win", "won");
    sounds.play("win");
  } else if (msg.outcome === "lost") {
    text = `You ${lossText(bet.stake)} on ${where}`;
    toast(text, "loss", "lost");
    sounds.play("loss");
  } else {
    text = `Bet ${refundText(msg.payout ?? bet.stake)} on ${where}: the window could not be settled`;
    toast(text, "info", "void");
    sounds.play("refund");
  }
  announce(text);
}

function announce(text) {
  const node = $("announcer");
  node.textContent = "";
  // A fresh text node each time, so the same words twice are read twice.
  setTimeout(() => { node.textContent = text; }, 30);
}

export async function fillPriceHistory() {
  const to = Date.now() + 1000;
  const asset = currentMarket().asset;
  const data = await apiGet(`/api/ticks?asset=${encodeURIComponent(asset)}&from=${to - HISTORY_FILL_MS}&to=${to}`);
  if (data && Array.isArray(data.ticks) && currentMarket().asset === asset) parts.view.addTicks(data.ticks);
  showPrice();
}
