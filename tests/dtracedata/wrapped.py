# A functools.wraps wrapper defined in another module (wrappers.py): its
# frames report that module, the __name__ of the globals they run in, not
# the __module__ that wraps copied from the function it wraps.
import functools  # loaded here, outside any function: no import events
import gc

import wrappers

gc.disable()  # no collection at a random point


@wrappers.logged
def double(n):
    return n * 2


def main():
    return double(2)


main()
