"""The `sluice` console script: `sluice --version` is answered before anything else is
imported (typer and the command tree take ~0.3 s); everything else goes to cli.app.

A command that is done ends the process at once (`_leave`): Python's own teardown
of the ~400 modules a run imports costs ~0.1 s of CPU after the last byte is written,
and nothing in it is ours to wait for. Everything a command writes is committed
(fsynced and renamed) before it returns, so only the standard streams and the
exit hooks are left to flush and run first.

Start-up makes a few hundred thousand objects (modules, classes, functions, the command
tree) and frees almost none, so the cyclic garbage collector's passes over them find
nothing, ~5 ms of every start. Until the work begins (`start_up_over`), it waits for
far more new objects between passes; then those objects are parked where no later
pass looks (gc.freeze), and it collects as usual.
"""

from __future__ import annotations

import gc
import sys

START_UP_GC_THRESHOLD = 50_000  # new objects between passes while starting up (700 after)
_usual_gc_thresholds: tuple[int, int, int] | None = None  # while starting up


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from pipeline import __version__

        print(f"sluice {__version__}")
        return
    global _usual_gc_thresholds
    _usual_gc_thresholds = gc.get_threshold()
    gc.set_threshold(START_UP_GC_THRESHOLD, *_usual_gc_thresholds[1:])
    from cli.app import main as run_command_line

    try:
        run_command_line()
    except SystemExit as done:
        _leave(done.code)
    _leave(0)


def start_up_over() -> None:
    """The command's work begins: collect garbage as usual again, the objects made so far
    parked out of the way. Nothing to do in a process the console script did not start
    (tests running commands in their own)."""
    global _usual_gc_thresholds
    if _usual_gc_thresholds is None:
        return
    gc.freeze()
    gc.set_threshold(*_usual_gc_thresholds)
    _usual_gc_thresholds = None


def _leave(code: object) -> None:
    """Exit with `code` as SystemExit would, skipping the interpreter's teardown when
    that is safe; else (a stream that cannot be flushed, a thread still working) exit
    the ordinary way, which behaves exactly as before."""
    import atexit
    import os
    import threading

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: Python reports it as it does
        raise SystemExit(code) from None
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(thread.is_alive() and not thread.daemon for thread in others):
        raise SystemExit(code)  # Python joins them first
    status = _status(code)
    atexit._run_exitfuncs()  # what the ordinary exit runs before its teardown
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _status(code: object) -> int:
    """The process status SystemExit(code) gives: None is 0, an int itself, anything
    else is printed and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
