"""Comprehensions: list, dict and set comprehensions, generator expressions."""


def main(n):
    total = 0
    data = list(range(100))
    for i in range(n):
        squares = [x * x for x in data if x % 3]
        index = {x: x + i for x in data[:50]}
        uniq = set(x % 7 for x in data)
        total += len(squares) + len(index) + len(uniq) + sum(x for x in data[:20])
        total += len([[y for y in range(3)] for x in range(5)])
    return total


N = 400
