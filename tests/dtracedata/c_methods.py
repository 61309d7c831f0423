# C methods and C calls that raise.  list.append called on an instance of a
# Python subclass of list, through the method and through a bound method
# taken first, is list's (module builtins).  A method descriptor applied to
# an object of another type raises before anything is called, so neither
# marker fires (the profiler sees no event either); a C function that
# raises returns all the same (c_exception).  A method of a static type
# whose name has a dot, datetime.date, is of the module the name gives.
import datetime
import gc

gc.disable()  # no collection at a random point


class Items(list):
    pass


def main():
    items = Items()
    items.append(1)
    add = items.append
    add(2)
    try:
        str.upper(1)
    except TypeError:
        pass
    try:
        len(1)
    except TypeError:
        pass
    day = datetime.date(2000, 1, 1)
    day.isoformat()
    return len(items)


main()
