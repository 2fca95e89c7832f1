"""What the comparisons share: their command line, a timed `sluice run`, and their verdict."""

import argparse
import subprocess
import sys
import time


def arguments(description, plugin, records, records_help):
    """The command line of a comparison of `plugin` over a stream of `records` by default."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sluice", required=True, help="the sluice binary")
    parser.add_argument("--plugins", required=True, help=f"the directory holding {plugin}.wasm")
    parser.add_argument("--workdir", required=True, help="where the stream, pipelines and outputs go")
    parser.add_argument("--records", type=int, default=records, help=records_help)
    return parser.parse_args()


def timed_run(binary, pipeline, dead_letters):
    """Runs `sluice run pipeline`; its wall-clock seconds. Exits when the run fails or writes a
    dead letter to `dead_letters` (a path), which is removed first."""
    dead_letters.unlink(missing_ok=True)
    started = time.perf_counter()
    completed = subprocess.run([binary, "run", str(pipeline)], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"sluice run failed ({completed.returncode}):\n{completed.stderr}")
    if dead_letters.exists() and dead_letters.stat().st_size > 0:
        sys.exit(f"sluice wrote dead letters, the first: {dead_letters.read_text().splitlines()[0]}")
    return elapsed


def verdict(failures, ok):
    """Prints each failure (or `ok` when there is none); the exit status to return."""
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if not failures:
        print(ok)
    return 1 if failures else 0
