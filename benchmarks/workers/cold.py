"""Wall time and peak memory of one command started cold: ``python cold.py CMD [ARGS...]``.

Prints JSON {"seconds", "peak_rss_mb", "returncode"}. This process has one child, the command, so
RUSAGE_CHILDREN's ru_maxrss (kB on Linux) is that command's own peak resident memory.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> None:
    t = time.perf_counter()
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "returncode": done.returncode,
                      "stdout": done.stdout[-300:], "stderr": done.stderr[-300:]}))  # fmt: skip


if __name__ == "__main__":
    main()
