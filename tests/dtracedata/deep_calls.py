# Python-to-Python calls several levels deep (Python 3.11+ runs them
# inlined, without re-entering the eval loop from C) and a recursion 500
# deep.
import gc
import sys

gc.disable()  # no collection at a random point


def level3(x):
    return x + 1


def level2(x):
    return level3(x) + 1


def level1(x):
    return level2(x) + 1


def down(n):
    if n == 0:
        return 0
    return down(n - 1) + 1


def main():
    level1(0)
    down(500)


sys.setrecursionlimit(2000)
main()
