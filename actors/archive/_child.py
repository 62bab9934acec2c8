"""The archive job in a child process at idle CPU priority (``SCHED_IDLE``).

Inside the server, the job's copy, read-back, checksum and lzma work would
take the GIL and a core from the event loop and the Writer; in a child on
``SCHED_IDLE`` it takes only CPU that nothing else wants. The child owns no
write connection to the hot DB: every ``write`` request of the job is sent
to the parent as one JSON line, and the child waits for the parent's answer
(the parent runs it through the Writer) before it goes on, so the hot DB
still has one writer and each request is committed before the next step.

Messages, one JSON object a line: child -> parent ``{"write": [[sql,
params], ...]}`` and finally ``{"done": report}`` or ``{"error": text}``;
parent -> child ``{"ok": true}`` or ``{"error": text}`` (the Writer failed:
the job stops there, and the next run resumes, as after any crash).

A killed child (or parent) leaves what any crash leaves: a state the next
run completes (``_job``).

    run_child({"db": db, "adir": adir, "now_ms": now, "hot_days": 7},
              write=lambda stmts: store.write_batch(deletes=stmts))   # -> the report
"""
import json
import logging
import os
import subprocess
import sys

from ._job import archive_steps, new_report
from ..store import lower_priority

__all__ = ["run_child", "child_main", "run_steps"]

log = logging.getLogger("tapgrid.archive")

#: the directory holding the ``actors`` package: the child imports it from there
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]);"
         " from actors.archive._child import child_main; child_main(sys.argv[2])")


def run_steps(gen, write):
    """Drive ``archive_steps``: each ``write`` request goes to
    ``write(statements)`` (the hot database's one writer, wherever it is),
    each ``run`` is the shell command (``--archive-cmd``) run here, and a
    ``pause`` needs nothing (the caller's scheduler gives way)."""
    result = None
    while True:
        try:
            req = gen.send(result)
        except StopIteration:
            return
        result = None
        if req[0] == "write":
            write(req[1])
            result = True
        elif req[0] == "run":
            result = subprocess.call(req[1], shell=True)


def child_main(args_json):
    """The child's side: run the job, sending its writes up the pipe."""
    args = json.loads(args_json)
    # the protocol owns stdout: anything else printed goes to stderr
    out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s archive-child %(levelname)s %(message)s")
    how = lower_priority()
    report = new_report()
    report["priority"] = how
    try:
        os.makedirs(args["adir"], exist_ok=True)
        gen = archive_steps(args["db"], args["adir"], args["now_ms"], args["hot_days"],
                            args.get("archive_cmd"), args.get("delete_shipped", False), report)

        def write(statements):          # through the parent, to its Writer
            out.write(json.dumps({"write": statements}) + "\n")
            line = sys.stdin.readline()
            if not line:
                raise SystemExit("archive child: the parent went away")
            answer = json.loads(line)
            if "error" in answer:
                gen.close()
                raise RuntimeError(f"the Writer refused an archive step: {answer['error']}")

        run_steps(gen, write)
    except Exception as exc:
        log.exception("archive run failed")
        out.write(json.dumps({"error": repr(exc), "report": report}) + "\n")
        out.flush()
        sys.exit(1)
    out.write(json.dumps({"done": report}) + "\n")
    out.flush()


def run_child(args, write, popen=None, on_spawn=None):
    """The parent's side: start the child, run each of its ``write``
    requests through ``write(statements)``, return its report (errors in
    ``report["errors"]`` when it failed or died). ``popen`` is
    ``subprocess.Popen`` or gevent's (inside the server: reading the pipe
    then waits cooperatively); ``on_spawn(proc)`` sees the child."""
    popen = popen or subprocess.Popen
    proc = popen([sys.executable, "-c", _BOOT, _ROOT, json.dumps(args)],
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if on_spawn is not None:
        on_spawn(proc)
    report = None
    try:
        for line in proc.stdout:
            msg = json.loads(line)
            if "write" in msg:
                try:
                    write([tuple(s) for s in msg["write"]])
                    answer = {"ok": True}
                except Exception as exc:    # told to the child, which stops there
                    log.exception("archive step failed in the Writer")
                    answer = {"error": repr(exc)}
                try:
                    proc.stdin.write((json.dumps(answer) + "\n").encode())
                    proc.stdin.flush()
                except BrokenPipeError:
                    break           # the child died (killed): its exit code says so below
            elif "done" in msg:
                report = msg["done"]
            elif "error" in msg:
                report = msg.get("report") or new_report()
                report["errors"].append(msg["error"])
    finally:
        if proc.poll() is None and report is None:
            proc.kill()         # the parent gave up (stopped): the next run resumes
        rc = proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except BrokenPipeError:     # unflushed bytes for a dead child
                pass
    if report is None:
        report = new_report()
        report["errors"].append(f"archive child exited {rc} before finishing")
    return report
