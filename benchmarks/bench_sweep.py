"""Sweep benchmark: one small design sweep serial, on 2 local processes and on a 2-worker Dask LocalCluster.

The sweep: a float-trained digits MLP 64-256-256-10 on pcm, ADC bits {4, 6, 8} x tile {128, 256} x
compensation {none, global} (12 configurations) x ``--repeats`` chips x 3 times, on the 450 test
images, without a cache (every point computed each time). Prints the wall time of each path (best of
``--runs``), checks that every path gives the serial bits, and the Dask path's overhead per point:

    overhead per point = (n_workers * T_wall - job compute) / n_points

the worker time a path spends beyond the jobs' own compute (programming, drift, scoring, timed
inside each job: ``meta["compute_s"]``), i.e. scheduling, transfers, results coming back and the
driver's preparation, per point; and against the serial run, ``(2 T_dask - T_serial) / points``
(the serial path runs on one torch/Numba thread, as each worker does). On a machine shared with
other jobs the first measure is the steadier one: both of its terms come from the same run. The cluster's start (and the workers' first import and JIT load, a
warm-up sweep) is timed apart, not in T_dask. Run by hand: ``python benchmarks/bench_sweep.py``
(needs ``cimsim[dask]``).
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import torch

import cimsim
from cimsim.data import digits
from bench_drift import trained_mlp  # the same float-trained digits MLP (benchmarks/ is on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--runs", type=int, default=2, help="runs per path (the best is kept: other jobs on the machine disturb single runs)")
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    ds = digits(seed=0)
    spec = dict(
        model=trained_mlp(ds).eval(), data=(ds.x_test, ds.y_test), profile="pcm", times_s="1s,1d,1y", repeats=args.repeats, seed=0,
        axes={"adc.bits": [4, 6, 8], "tile": {128: {"tile.rows": 128, "tile.cols": 128}, 256: {"tile.rows": 256, "tile.cols": 256}},
              "compensation": ["none", "global"]},
    )
    cimsim.sweep(**dict(spec, repeats=1, times_s=[1.0]))  # JIT warm-up (numba cache) in this process, not timed

    def best(fn) -> tuple[float, object]:
        times, res = [], None
        for _ in range(args.runs):
            t0 = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - t0)
        return min(times), res

    # the serial baseline on one torch/Numba thread, as each worker runs: the overhead compares like with like
    # (many threads on a loaded machine make the serial path slower, not the simulation)
    threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    t_serial, serial = best(lambda: cimsim.sweep(**spec))
    torch.set_num_threads(threads[0])
    numba.set_num_threads(threads[1])
    n_points = serial.meta["points_total"]
    t_proc, proc = best(lambda: cimsim.sweep(**spec, workers=2))
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster, \
            Client(cluster) as client:
        cimsim.sweep(**dict(spec, repeats=1, times_s=[1.0]), executor=client)  # workers import cimsim and load the JIT cache
        t_start = time.perf_counter() - t0
        t_dask, dask = best(lambda: cimsim.sweep(**spec, executor=client))
    same = all(r.scores.tobytes() == serial.scores.tobytes() for r in (proc, dask))  # type: ignore[attr-defined]
    print(f"sweep: 12 configurations x {args.repeats} chips x 3 times = {n_points} points, {serial.meta['jobs']} jobs; "
          f"{os.cpu_count()} cores; best of {args.runs}")
    print("path                          wall (s)  ms/point  overhead ms/point = (workers x wall - job compute) / points")
    for name, t, res, n in (("serial (1 thread)", t_serial, serial, 1), ("2 local processes (loky)", t_proc, proc, 2),
                            ("Dask LocalCluster, 2 workers", t_dask, dask, 2)):
        over = (n * t - res.meta["compute_s"]) / n_points  # type: ignore[attr-defined]
        print(f"{name:29s} {t:8.2f}  {1e3 * t / n_points:8.1f}  {1e3 * over:8.1f}")
    print(f"(loky: pool start included; Dask: cluster start + worker warm-up {t_start:.1f} s, not included)")
    print(f"Dask overhead per point vs the serial run: {1e3 * (2 * t_dask - t_serial) / n_points:.1f} ms  ((2 T_dask - T_serial) / points)")
    print(f"bits equal to serial on every path: {same}")

if __name__ == "__main__":
    main()
