# The program profiles itself for a while (sys.setprofile), as profilers and
# debuggers do: the markers must see the same events before, during and
# after, and the program's own profile function exactly its own events.  It
# passes every event on to the profile function it found (the oracle's, when
# the oracle runs this fixture), and reports what it saw by the function it
# calls at the end: verdict_right() or verdict_wrong().
import gc
import sys

gc.disable()  # no collection at a random point


def leaf(n):
    return n + 1


def work():
    leaf(1)
    return leaf(2)


def verdict_right():
    pass


def verdict_wrong(seen):
    pass


def main():
    outer = sys.getprofile()
    seen = []

    def profiler(frame, event, arg):
        if outer is not None:
            outer(frame, event, arg)
        if event in ("call", "return"):
            seen.append((event, frame.f_code.co_name))

    work()
    sys.setprofile(profiler)
    work()
    sys.setprofile(outer)
    work()
    if seen == [("call", "work"), ("call", "leaf"), ("return", "leaf"),
                ("call", "leaf"), ("return", "leaf"), ("return", "work")]:
        verdict_right()
    else:
        verdict_wrong(seen)


main()
