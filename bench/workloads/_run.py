"""Run one workload: python _run.py WORKLOAD [N] [--time]

Loads bench/workloads/WORKLOAD.py as a module and calls its main(N) (N
defaults to the module's N).  With --time, prints main's wall time in
seconds (startup excluded); the live-probe measurements use that."""
import sys
import time


def load(name):
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    namespace = {"__name__": "bench_" + name, "__file__": path}
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    exec(code, namespace)
    return namespace


def run():
    args = [a for a in sys.argv[1:] if a != "--time"]
    ns = load(args[0])
    n = int(args[1]) if len(args) > 1 else ns["N"]
    clock = getattr(time, "perf_counter", time.time)
    # main() starts from a collected heap, its collector's counts at zero:
    # otherwise what start-up allocated (another build's, or a module's
    # import) moves an automatic collection into or out of main(), a
    # whole-heap traversal that swamps what is measured.
    import gc
    gc.collect()
    t0 = clock()
    ns["main"](n)
    t1 = clock()
    if "--time" in sys.argv:
        sys.stdout.write("%.9f\n" % (t1 - t0))


run()
