"""How long does each command take to answer ``--help``? Prints measured figures (issue 29: under 2 s each).

    python -m benchmarks.help_speed [--runs 3] [--limit 2]

Each command runs ``--runs`` times in a fresh process (``subprocess``, this interpreter, ``OMP_NUM_THREADS=1``,
``$SUPERTICKETS_METHODS`` unset), after one run not counted that warms the file cache; the figure is the median
wall time from start to exit, start-up included, as a user waits for it. A command over ``--limit`` seconds, or
whose ``--help`` fails, is marked and makes the exit code 1.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from search.errors import OneLineParser, UsageError

ROOT = Path(__file__).resolve().parents[1]

#: Each command as a user types it, and the arguments this interpreter runs it with (``supertickets`` is the
#: console script's module, so the figure does not depend on where pip put the script).
COMMANDS = {
    "python -m search.run --help": ["-m", "search.run", "--help"],
    "supertickets --help": ["-m", "search.console", "--help"],
    "supertickets compare --help": ["-m", "search.console", "compare", "--help"],
    "supertickets export --help": ["-m", "search.console", "export", "--help"],
    "supertickets multitask --help": ["-m", "search.console", "multitask", "--help"],
    "python -m search.compare --help": ["-m", "search.compare", "--help"],
    "python -m search.export --help": ["-m", "search.export", "--help"],
    "python -m search.multitask --help": ["-m", "search.multitask", "--help"],
    "python -m search.importance_check --help": ["-m", "search.importance_check", "--help"],
}


def time_help(args: list[str], runs: int) -> tuple[float, int]:
    """The median wall seconds of ``runs`` runs of ``python args`` (after one warm-up run), and the last exit
    code."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("SUPERTICKETS_METHODS", None)
    times, code = [], 0
    for run in range(runs + 1):
        start = time.perf_counter()
        code = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        if run:  # the first run warms the file cache
            times.append(time.perf_counter() - start)
    return statistics.median(times), code


def main(argv: list[str] | None = None) -> int:
    """Time every command's ``--help``; returns 0 when each answered within ``--limit`` seconds, 1 otherwise, 2 on
    bad input."""
    parser = OneLineParser(prog="python -m benchmarks.help_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command (default 3); the median is shown")
    parser.add_argument("--limit", type=float, default=2.0, help="seconds a --help may take (default 2)")
    try:
        args = parser.parse_args(argv)
        if args.runs < 1:
            raise UsageError(f"--runs {args.runs} must be at least 1")
        if not args.limit > 0:
            raise UsageError(f"--limit {args.limit} must be a positive number of seconds")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"--help wall time, median of {args.runs} runs ({os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}):")
    slow = 0
    for command, command_args in COMMANDS.items():
        seconds, code = time_help(command_args, args.runs)
        mark = "" if code == 0 and seconds < args.limit else (f"  exit {code}" if code else f"  over {args.limit:g} s")
        slow += bool(mark)
        print(f"  {command:<42} {seconds:6.2f} s{mark}")
    print("every command answered in time" if not slow else f"{slow} command(s) too slow or failing")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
