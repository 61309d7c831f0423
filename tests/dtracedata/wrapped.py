# A functools.wraps wrapper defined in another module (wrappers.py): its
# frames report that module, the __name__ of the globals they run in, not
# the __module__ that wraps copied from the function it wraps.  And globals
# whose __name__ is their first key (as a module's) or not, each changed
# between two calls: every event reports __name__ as it is then.
import functools  # loaded here, outside any function: no import events
import gc

import wrappers

gc.disable()  # no collection at a random point


@wrappers.logged
def double(n):
    return n * 2


early = {"__name__": "early"}
late = {"first": None, "__name__": "late"}
for scope in (early, late):
    exec(compile("def f():\n    return 3\n", __file__, "exec"), scope)


def main():
    for scope in (early, late):
        scope["f"]()
        scope["__name__"] += "2"
        scope["f"]()
    return double(2)


main()
