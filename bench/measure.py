"""Runs a command and reports its wall time and peak memory (max RSS of the process tree).

usage: measure.py NAME ROWS INPUT_BYTES -- COMMAND... [< stdin]
Prints one JSON line: name, seconds, rows_per_s, mb_per_s, peak_rss_mb.
"""
import json
import resource
import subprocess
import sys
import time

name, rows, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cmd = sys.argv[sys.argv.index("--") + 1:]
start = time.monotonic()
proc = subprocess.run(cmd, stdin=sys.stdin, stdout=subprocess.DEVNULL)
seconds = time.monotonic() - start
if proc.returncode != 0:
    sys.exit(f"{name}: {cmd[0]} exited with {proc.returncode}")
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({
    "name": name,
    "seconds": round(seconds, 2),
    "rows_per_s": round(rows / seconds),
    "mb_per_s": round(size / 1e6 / seconds, 1),
    "peak_rss_mb": round(peak_kb / 1024),
}))
