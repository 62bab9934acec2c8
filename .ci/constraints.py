"""constraints.txt, checked and regenerated (run by `make venv`).

    python .ci/constraints.py check   # every requirement of tapgrid[dev,perf] is pinned
    python .ci/constraints.py write   # pins + sha256 from this venv (after pip download)

`check` catches the easy mistake: a dependency added to setup.cfg but not
to constraints.txt, which `pip install --require-hashes --no-deps` would
silently leave out.
"""
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata

from pip._vendor.packaging.requirements import Requirement   # pip is in every venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "constraints.txt")
HEADER_END = "# --- pins ---\n"


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned():
    with open(PATH) as f:
        return {_norm(m.group(1)): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", f.read(), re.M)}


def check():
    pins = pinned()
    missing = []
    todo = [r for r in metadata.requires("tapgrid") or []]
    seen = set()
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in ("", "dev", "perf")):
            continue                       # another platform, Python or extra
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        if name not in pins:
            missing.append(name)
            continue
        try:
            todo.extend(r for r in (metadata.requires(name) or []) if "extra ==" not in r
                        or req.extras and any(f'extra == "{e}"' in r for e in req.extras))
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        sys.exit("constraints.txt lacks " + ", ".join(sorted(missing))
                 + ": install them, then `python .ci/constraints.py write`")
    print(f"constraints.txt: {len(pins)} pins cover tapgrid[dev,perf]")


def write():
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", d, *freeze],
                       check=True)
        files = {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                 for f in os.listdir(d)}
    with open(PATH) as f:
        header = f.read().split(HEADER_END)[0] + HEADER_END
    lines = []
    for pin in freeze:
        name, version = pin.split("==")
        stem = _norm(name) + "-" + _norm(version)
        hashes = [h for f, h in files.items() if _norm(f).startswith(stem + "-")]
        lines.append(f"{pin} \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes))
    with open(PATH, "w") as f:
        f.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    {"check": check, "write": write}[sys.argv[1] if len(sys.argv) > 1 else "check"]()
