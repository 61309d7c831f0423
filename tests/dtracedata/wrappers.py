# Imported by wrapped.py: a decorator whose wrapper, made by functools.wraps,
# carries the wrapped function's __module__ but runs in this module's
# globals.
import functools


def logged(func):
    @functools.wraps(func)
    def wrapper(*args):
        return func(*args)
    return wrapper
