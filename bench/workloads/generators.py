"""Generators: pipelines of generator functions and send()."""


def numbers(n):
    i = 0
    while i < n:
        yield i
        i += 1


def evens(it):
    for x in it:
        if x % 2 == 0:
            yield x


def squares(it):
    for x in it:
        yield x * x


def accumulator():
    total = 0
    while True:
        value = yield total
        total += value


def main(n):
    total = 0
    for x in squares(evens(numbers(n))):
        total += x
    acc = accumulator()
    next(acc)
    for i in range(n // 4):
        total += acc.send(i)
    return total


N = 30000
