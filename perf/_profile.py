"""Summarise a py-spy ``--format raw`` profile: self and inclusive time by
function, busiest first; with ``--by-thread``, the share of each thread
role (from the ``PROFILE.threads.json`` that ``bench_server.py --profile``
writes beside it: py-spy names threads by id only) and each role's own
busiest functions.

    py-spy record --pid PID --duration 10 --format raw -o prof.txt --threads
    python perf/_profile.py prof.txt [TOP] [--by-thread]
"""
import json
import os
import re
import sys
from collections import Counter, defaultdict

_THREAD = re.compile(r"thread \((?:0x)?([0-9A-Fa-f]+)\)")


def _frames(stack):
    return [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")"
            for f in stack.split(";")]


def _read(path):
    for line in open(path):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if stack and n.isdigit():
            yield stack, int(n)


def _roles(path):
    try:
        with open(path + ".threads.json") as f:
            return json.load(f)
    except OSError:
        return {}


def _print(own, incl, total, top, indent=""):
    print(f"{indent}--- self")
    for f, n in own.most_common(top):
        print(f"{indent}{100 * n / total:5.1f}%  {f}")
    print(f"{indent}--- inclusive")
    for f, n in incl.most_common(top + 20):
        print(f"{indent}{100 * n / total:5.1f}%  {f}")


def summarise(path, top=30, by_thread=False):
    own, incl, total = Counter(), Counter(), 0
    roles = _roles(path) if by_thread else {}
    per = defaultdict(lambda: [Counter(), Counter(), 0])
    for stack, n in _read(path):
        total += n
        frames = _frames(stack)
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        if by_thread:
            m = _THREAD.match(stack)
            tid = m.group(1) if m else "?"
            role = roles.get(tid) or roles.get(str(int(tid, 16)) if m and stack.startswith("thread (0x") else tid, tid)
            role = re.sub(r"-\d+$", "", role)
            r = per[role]
            r[0][frames[-1]] += n
            for f in set(frames[1:]):
                r[1][f] += n
            r[2] += n
    print(f"{total} samples")
    if not by_thread:
        _print(own, incl, total, top)
        return
    print("--- by thread role (share of all samples)")
    for role, (_, _, n) in sorted(per.items(), key=lambda kv: -kv[1][2]):
        print(f"{100 * n / total:5.1f}%  {role}")
    for role, (o, i, n) in sorted(per.items(), key=lambda kv: -kv[1][2]):
        print(f"=== {role}: {n} samples ({100 * n / total:.1f} %), shares of this role")
        _print(o, i, n, top, "  ")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    summarise(args[0], int(args[1]) if len(args) > 1 else 30, "--by-thread" in sys.argv)
