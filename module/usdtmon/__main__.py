"""python3 -m usdtmon [-m MODULE | SCRIPT] [ARGS...]: run a program with
usdtmon loaded, as python3 -m cProfile does (but nothing is recorded:
consumers attach to usdtmon's markers)."""

import os
import runpy
import sys

import usdtmon


def main(argv):
    if len(argv) < 1 or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        sys.stderr.write("usage: python3 -m usdtmon [-m MODULE | SCRIPT] [ARGS...]\n")
        return 2
    if argv[0] == "-m":
        sys.argv[:] = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    script = argv[0]
    if not os.path.exists(script):
        sys.stderr.write("usdtmon: no such file: %s\n" % script)
        return 2
    sys.argv[:] = argv
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    del usdtmon    # loaded for its markers
    sys.exit(main(sys.argv[1:]))
