"""RocksDB peer for `ringdb bench --benchmarks fillsync`: durable puts.

RocksDB is C++; building it here takes long, so this drives it from Python
through the `aimrocks` wheel (RocksDB bundled, Cython), which releases the
GIL around each put, so that concurrent writers reach RocksDB's group
commit together:

    pip install aimrocks==0.5.2
    python3 examples/peer_rocksdb.py --concurrency 16 --sync-num 20000

Each of `--concurrency` threads puts random 16-byte keys with 100-byte
values with `sync=True` (RocksDB's WAL sync per write group). Prints one
JSON object with the fields of `ringdb bench --json` that apply. Python
adds a few microseconds per put and the GIL serialises the threads between
puts, so these figures are a lower bound on what RocksDB does from C++.
"""

import argparse
import json
import os
import shutil
import tempfile
import threading
import time

import aimrocks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--sync-num", type=int, default=5000, help="puts in all")
    parser.add_argument("--key-size", type=int, default=16)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--dir", default=None, help="parent of the store (default: a temp dir)")
    args = parser.parse_args()

    root = tempfile.mkdtemp(dir=args.dir)
    db = aimrocks.DB(os.path.join(root, "db"), aimrocks.Options(create_if_missing=True))
    per_task = [args.sync_num // args.concurrency] * args.concurrency
    per_task[0] += args.sync_num - sum(per_task)
    latencies = [[] for _ in per_task]
    gate = threading.Barrier(args.concurrency + 1)
    value = b"v" * args.value_size

    def run(task):
        keys = [os.urandom(args.key_size) for _ in range(per_task[task])]
        mine = latencies[task]
        gate.wait()
        for key in keys:
            start = time.perf_counter_ns()
            db.put(key, value, sync=True)
            mine.append(time.perf_counter_ns() - start)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.concurrency)]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    secs = time.perf_counter() - started

    all_ns = sorted(ns for task in latencies for ns in task)

    def percentile_us(p):
        return round(all_ns[min(len(all_ns) - 1, int(p * len(all_ns)))] / 1000, 2)

    print(json.dumps({
        "workload": "fillsync",
        "peer": "rocksdb (aimrocks %s)" % getattr(aimrocks, "__version__", "0.5.2"),
        "ops": len(all_ns),
        "secs": round(secs, 6),
        "ops_per_sec": round(len(all_ns) / secs, 1),
        "p50_us": percentile_us(0.50),
        "p99_us": percentile_us(0.99),
        "p999_us": percentile_us(0.999),
        "max_us": round(all_ns[-1] / 1000, 2),
        "concurrency": args.concurrency,
    }))
    del db
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
