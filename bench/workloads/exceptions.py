"""Exceptions: raised and caught locally and across frames."""


class Custom(Exception):
    pass


def fail(i):
    raise Custom(i)


def middle(i):
    try:
        return fail(i)
    finally:
        i += 1


def main(n):
    caught = 0
    d = {}
    for i in range(n):
        try:
            middle(i)
        except Custom:
            caught += 1
        try:
            d[i]
        except KeyError:
            caught += 1
        try:
            int("x")
        except ValueError:
            caught += 1
    return caught


N = 4000
