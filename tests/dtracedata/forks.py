# The parent runs Python code that fires every marker (calls, C calls,
# lines, a collection, imports: every site a consumer traces is hit here
# first), then forks children that each do the same and exit with a status
# of their own; it prints how each child ended, which no consumer may
# change (tests/test_fork.py).  Python 2 and 3.
import gc
import os
import sys

CHILDREN = 4


def square(x):
    return x * x


def work(n, module):
    total = sum(square(i) for i in range(n))
    gc.collect()
    __import__(module)
    try:
        __import__("dtrace_no_such_module")
    except ImportError:
        pass
    return total


def fate(status):
    if os.WIFEXITED(status):
        return "exit %d" % os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return "signal %d" % os.WTERMSIG(status)
    return "status %#x" % status


def main():
    work(10, "dtrace_helper")
    sys.stdout.flush()
    pids = []
    for k in range(CHILDREN):
        pid = os.fork()
        if pid == 0:
            # A module the parent has not loaded: the child imports it.
            work(10 + k, "colorsys")
            os._exit(10 + k)
        pids.append(pid)
    for k, pid in enumerate(pids):
        print("child %d: %s" % (k, fate(os.waitpid(pid, 0)[1])))


main()
