# An explicit collection of known garbage, an import that loads a module and
# one that finds nothing.  The module level sets up: no automatic
# collections, no garbage left from start-up.
import gc

gc.disable()


def make_cycles(n):
    for _ in range(n):
        cycle = []
        cycle.append(cycle)


def main():
    make_cycles(3)
    gc.collect()
    import dtrace_helper
    dtrace_helper.hello()
    try:
        import dtrace_no_such_module
    except ImportError:
        pass


gc.collect()
main()
