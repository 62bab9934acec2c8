"""The server figures the benchmarks read from /metrics: the loop-lag and
tap-latency histograms between two scrapes and the age of the price
behind accepted multipliers."""
import urllib.request

__all__ = ["scrape", "hist_quantile", "lag_figures", "tap_latency_p99_ms", "price_age_ms",
           "gc_figures"]


def scrape(server):
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def hist_quantile(before, after, family, q=0.99):
    """The ``q`` quantile (seconds, linear inside its bucket) of histogram
    ``family`` between two scrapes; None without samples or the family."""
    def buckets(text):
        out = {}
        for line in text.splitlines():
            if line.startswith(family + "_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                out[float(le)] = float(line.rsplit(" ", 1)[1])
        return out
    b0, b1 = buckets(before), buckets(after)
    if not b1:
        return None
    bounds = sorted(b1)
    counts = [b1[b] - b0.get(b, 0) for b in bounds]     # cumulative
    total = counts[-1]
    if not total:
        return None
    prev_b, prev_c = 0.0, 0
    for b, c in zip(bounds, counts):
        if c >= q * total:
            if b == float("inf"):
                return prev_b
            return prev_b + (b - prev_b) * (q * total - prev_c) / max(1, c - prev_c)
        prev_b, prev_c = b, c
    return None


def lag_figures(before, after):
    """(p99 ms, max ms) of the loop lag between two scrapes (None, None
    from a server without the histogram)."""
    p99 = hist_quantile(before, after, "tapgrid_loop_lag_sample_seconds")
    mx = None
    for line in after.splitlines():
        if line.startswith("tapgrid_loop_lag_max_seconds "):
            mx = float(line.split()[1]) * 1000
    return (round(p99 * 1000, 1) if p99 is not None else None), (round(mx, 1) if mx is not None else None)


def tap_latency_p99_ms(before, after):
    """The server's own p99 from a tap's receipt to its ack, between two scrapes."""
    p99 = hist_quantile(before, after, "tapgrid_tap_latency_seconds")
    return round(p99 * 1000, 1) if p99 is not None else None


def price_age_ms(text):
    """(p50, p99) ms of the price age behind accepted multipliers, from a scrape."""
    out = {}
    for line in text.splitlines():
        if line.startswith('tapgrid_tap_price_age_seconds{quantile="'):
            q = line.split('"')[1]
            v = float(line.rsplit(" ", 1)[1])
            out[q] = round(v * 1000, 1) if v >= 0 else None
    return out.get("0.5"), out.get("0.99")


def gc_figures(before, after):
    """Per generation, the collector's pauses between two scrapes:
    ``{"gen2": {"n": count, "ms": total ms, "max_le_ms": the bound of the
    highest bucket hit}}``; {} from a server without them."""
    def read(text):
        out = {}
        for line in text.splitlines():
            if not line.startswith("tapgrid_gc_pause_seconds"):
                continue
            name, value = line.rsplit(" ", 1)
            gen = name.split('generation="', 1)[1].split('"', 1)[0]
            row = out.setdefault(gen, {"buckets": {}, "sum": 0.0, "count": 0.0})
            if name.startswith("tapgrid_gc_pause_seconds_bucket"):
                row["buckets"][name.split('le="', 1)[1].split('"', 1)[0]] = float(value)
            elif name.startswith("tapgrid_gc_pause_seconds_sum"):
                row["sum"] = float(value)
            elif name.startswith("tapgrid_gc_pause_seconds_count"):
                row["count"] = float(value)
        return out
    b0, b1 = read(before), read(after)
    out = {}
    for gen, row in sorted(b1.items()):
        old = b0.get(gen, {"buckets": {}, "sum": 0.0, "count": 0.0})
        top, prev = None, 0.0
        for le in sorted(row["buckets"], key=float):
            c = row["buckets"][le] - old["buckets"].get(le, 0.0)
            if c > prev:
                top = le
            prev = c
        out["gen" + gen] = {"n": int(row["count"] - old["count"]),
                            "ms": round((row["sum"] - old["sum"]) * 1000, 1),
                            "max_le_ms": None if top is None else
                            ("inf" if top == "+Inf" else round(float(top) * 1000, 2))}
    return out
