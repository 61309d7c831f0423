# A generator driven by send(), throw() and close(): each resumption is a
# frame start, each suspension or exit a frame exit.


def echo():
    received = None
    while True:
        try:
            received = yield received
        except ValueError:
            received = "recovered"


def main():
    g = echo()
    next(g)
    g.send(1)
    g.throw(ValueError)
    g.close()


main()
