# Nested calls, recursion, a class body and a method, C builtins and a
# method of a C type.  Python 2 and 3.


def leaf(x):
    return x + 1


def middle(x):
    return leaf(x) * 2


def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


class Point(object):
    def __init__(self, x):
        self.x = x

    def norm(self):
        return abs(self.x)


def builtins_user(items):
    n = len(items)
    return sorted(items)[0] + n


def main():
    middle(1)
    fact(3)
    Point(-2).norm()
    builtins_user([3, 1, 2])
    "abc".upper()


main()
