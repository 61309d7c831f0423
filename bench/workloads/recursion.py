"""Deep recursion: a recursive fib and chains of frames ~800 deep."""
import sys


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def down(n):
    if n == 0:
        return 0
    return 1 + down(n - 1)


def main(n):
    sys.setrecursionlimit(3000)
    total = 0
    for i in range(n):
        total += fib(15) + down(800)
    return total


N = 30
