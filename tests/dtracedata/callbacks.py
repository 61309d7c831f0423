# C calling Python calling C (sorted with a key function), a comprehension,
# a lambda, a class body, and code run by exec() and eval().
import gc

gc.disable()  # no collection at a random point


def key(word):
    return len(word)


def run_code():
    exec(compile("size = len('ab')", __file__, "exec"), {})
    return eval(compile("abs(-3)", __file__, "eval"))


class Shape(object):
    sides = 0


def main():
    sorted(["ccc", "a", "bb"], key=key)
    squares = [n * n for n in range(2)]
    double = lambda x: x * 2
    double(squares[1])
    run_code()


main()
