# A multiprocessing Pool of forked workers (the 'fork' start method; Python
# 2's only one) maps a Python function over a range.  The parent fires every
# marker first (calls, C calls, lines, a collection, an import), then prints
# the sum it gets from the pool and the workers' exit statuses, which no
# consumer may change (tests/test_fork.py).  Python 2 and 3.
import gc
import multiprocessing
import sys


def square(x):
    return x * x


def main():
    gc.collect()
    import dtrace_helper
    dtrace_helper.hello()
    print("sum %d" % sum(map(square, range(100))))
    sys.stdout.flush()
    try:
        context = multiprocessing.get_context("fork")
    except AttributeError:      # Python 2
        context = multiprocessing
    pool = context.Pool(2)
    try:
        # A worker that dies loses its task: time out rather than hang.
        total = sum(pool.map_async(square, range(100)).get(60))
    except Exception:
        pool.terminate()
        raise
    print("pool sum %d" % total)
    pool.close()
    pool.join()
    print("workers exit %s" % sorted(worker.exitcode for worker in pool._pool))


if __name__ == "__main__":
    main()
