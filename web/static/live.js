// Other players: the latest wins and today's leaderboard (anonymised names,
// net), from GET /api/feed on load and the server's `feed` frames after
// (broadcast at most every couple of seconds, only when something changed).
//
//   import { LivePanel } from "/static/live.js";
//   const live = new LivePanel(document.querySelector("[data-testid=live]"));
//   live.show({wins: [{who, payout, mult, ts}], leaders: [{who, net}]});

import { credits, multLabel, clockTime } from "/static/format.js";

function item(text, className) {
  const li = document.createElement("li");
  if (className) li.className = className;
  li.textContent = text; // server data: never innerHTML
  return li;
}

export class LivePanel {
  constructor(root) {
    this.wins = root.querySelector("[data-testid=live-wins]");
    this.leaders = root.querySelector("[data-testid=leaders]");
  }

  show(feed) {
    if (!feed) return;
    const wins = Array.isArray(feed.wins) ? feed.wins.slice(0, 5) : [];
    const leaders = Array.isArray(feed.leaders) ? feed.leaders.slice(0, 5) : [];
    this.wins.replaceChildren(...(wins.length
      ? wins.map((w) => item(`${clockTime(w.ts)} ${w.who} won ${credits(w.payout)} at ${multLabel(w.mult)}`, "live-win"))
      : [item("No wins yet.", "live-empty")]));
    this.leaders.replaceChildren(...(leaders.length
      ? leaders.map((l, i) => item(`${i + 1}. ${l.who} ${credits(l.net, { sign: true })}`, "live-leader"))
      : [item("Nobody is up yet.", "live-empty")]));
  }
}
