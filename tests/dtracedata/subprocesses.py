# subprocess.call and check_output, several times: Python 2.7's subprocess
# runs Python code in the child between fork and exec (3.13's forks and
# execs in C).  The parent fires every marker first (calls, C calls, lines,
# a collection, an import), then prints the return codes and outputs, which
# no consumer may change (tests/test_fork.py).  Python 2 and 3.
import gc
import subprocess


def main():
    gc.collect()
    import dtrace_helper
    dtrace_helper.hello()
    for i in range(3):
        print("call %d" % subprocess.call(["/bin/sh", "-c", "exit %d" % (3 + i)]))
        out = subprocess.check_output(["/bin/echo", "echo", str(i)])
        print("output %s" % out.decode().strip())


main()
