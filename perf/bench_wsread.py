"""WebSocket read path, before and after the sans-I/O frame reader, side by
side in one run (issue 16, "reading frames in bulk").

    .venv/bin/python perf/bench_wsread.py [--frames 200000] [--runs 3] [--size 260]

- before: what ``FastWebSocket.read_frame``/``read_message`` did until now,
  per frame: gevent-websocket's ``Header.decode_header`` (two small reads,
  plus one for a 16-bit length), one read of mask + payload, wsaccel
  unmasking, a UTF-8 decode; from a ``BufferedReader`` (what ``rfile`` is).
- after: ``web.gateway.FrameReader.feed`` on 64 KiB reads of the same bytes (one
  ``read1`` per turn, every complete frame in it parsed).

Both parse the same masked text frames of ``--size`` bytes (a tap frame is
about 260). The figure is frames parsed per second of CPU (medians of
``--runs``). Prints one JSON line last.
"""
import argparse
import io
import json
import os
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/perf/", 1)[0])

from geventwebsocket.websocket import Header  # noqa: E402

from web.gateway import FrameReader, unmask  # noqa: E402


def make_frames(n, size):
    payload = (b'{"type":"tap","payload":"' + b"x" * max(0, size - 40) + b'","sig":"s"}')[:size]
    key = os.urandom(4)
    n_len = len(payload)
    head = bytes((0x81, 0x80 | n_len)) if n_len < 126 else bytes((0x81, 0xFE)) + n_len.to_bytes(2, "big")
    one = head + key + unmask(key, payload)
    return one * n, payload


def before(data, n):
    stream = io.BufferedReader(io.BytesIO(data), 65536)
    read = stream.read
    t = time.process_time()
    for _ in range(n):
        header = Header.decode_header(stream)
        payload = read(header.length)
        if header.mask:
            payload = unmask(header.mask, payload)
        payload.decode("utf-8")
    return time.process_time() - t


def after(data, n):
    stream = io.BufferedReader(io.BytesIO(data), 65536)
    read1 = stream.read1
    reader = FrameReader(limit=4096)
    got = 0
    t = time.process_time()
    while got < n:
        got += len(reader.feed(read1(65536)))
    return time.process_time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=260)
    args = ap.parse_args()
    data, payload = make_frames(args.frames, args.size)
    # Same answers first: the new reader yields exactly the old messages.
    probe = FrameReader().feed(data[:len(data) // args.frames * 3])
    assert [e[1] for e in probe] == [payload.decode()] * 3
    old, new = [], []
    for _ in range(args.runs):
        old.append(args.frames / before(data, args.frames))
        new.append(args.frames / after(data, args.frames))
    o, n = statistics.median(old), statistics.median(new)
    print(f"frames of {args.size} bytes, {args.frames} per run, medians of {args.runs}")
    print(f"  before (per-frame reads): {o:12,.0f} frames/s  ({1e6 / o:.2f} us/frame)")
    print(f"  after  (bulk FrameReader): {n:12,.0f} frames/s  ({1e6 / n:.2f} us/frame)")
    print(f"  ratio: {n / o:.2f}x")
    print(json.dumps({"bench": "wsread", "frame_bytes": args.size, "frames": args.frames,
                      "runs": args.runs, "before_frames_per_s": round(o),
                      "after_frames_per_s": round(n), "ratio": round(n / o, 2),
                      "before_us_per_frame": round(1e6 / o, 3),
                      "after_us_per_frame": round(1e6 / n, 3)}))


if __name__ == "__main__":
    main()
