"""Many small calls: Python functions calling Python functions."""


def add(a, b):
    return a + b


def inc(x):
    return add(x, 1)


def kw(x, y=2, z=3):
    return x + y + z


def main(n):
    total = 0
    for i in range(n):
        total = inc(total)
        total = kw(total, z=i & 1)
    return total


N = 50000
