"""Generator delegation: trees of generators that `yield from` each other,
walked recursively, and values sent down a chain of delegating generators.
Every value crosses each level of the tree: a send, a resumption and a
yield per level (SEND_GEN, RESUME, YIELD_VALUE), the path the markers'
hooks must leave alone while idle."""
# requires: 3 (yield from)


def tree(depth):
    """A binary tree of generators: each leaf yields its depth's value."""
    if depth == 0:
        yield 1
        return
    yield from tree(depth - 1)
    yield from tree(depth - 1)


def echo():
    """The end of a chain: sends back what it receives, doubled."""
    value = yield
    while True:
        value = yield value * 2


def chain(depth):
    """depth delegating generators in front of echo()."""
    if depth == 0:
        return (yield from echo())
    return (yield from chain(depth - 1))


def main(n):
    total = 0
    for _ in range(n):
        for x in tree(8):
            total += x
        c = chain(20)
        next(c)
        for i in range(50):
            total += c.send(i)
        c.close()
    return total


N = 400
