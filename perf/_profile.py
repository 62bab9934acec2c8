"""Summarise a py-spy ``--format raw`` profile: self and inclusive time by
function, busiest first.

    py-spy record --pid PID --duration 10 --format raw -o prof.txt
    python perf/_profile.py prof.txt
"""
import sys
from collections import Counter


def summarise(path, top=30):
    own, incl, total = Counter(), Counter(), 0
    for line in open(path):
        line = line.rstrip("\n")
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")"
                  for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"{total} samples")
    print("--- self")
    for f, n in own.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")
    print("--- inclusive")
    for f, n in incl.most_common(top + 20):
        print(f"{100 * n / total:5.1f}%  {f}")


if __name__ == "__main__":
    summarise(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30)
