# A generator: iterated to exhaustion, resumed by next(), closed.  Every
# resumption is a frame start, every suspension a frame exit.


def counter(n):
    i = 0
    while i < n:
        yield i
        i += 1


def main():
    total = 0
    for v in counter(2):
        total += v
    g = counter(5)
    next(g)
    g.close()


main()
