"""`python bench/chain_child.py STATS.json numbers FLAGS...`: train.py in this process, then its XLA compile count
and peak resident memory (ru_maxrss) written to STATS.json, for chain_bench.py (a run's memory is only its own
in a fresh process)."""
import atexit
import json
import resource
import runpy
import sys

import common

stats_path = sys.argv[1]


def _write_stats():
    with open(stats_path, "w") as f:  # ru_maxrss is in KiB on Linux
        json.dump({"compiles": common.compile_count(),
                   "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, f)


atexit.register(_write_stats)
sys.argv = [str(common.ROOT / "train.py"), *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
