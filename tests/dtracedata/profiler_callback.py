# The program installs a profile function that calls Python functions of its
# own.  sys.setprofile does not report the frames of its own callback, and
# neither do the markers.  The callback passes every event on to the profile
# function it found (the oracle's, when the oracle runs this fixture).
import gc
import sys

gc.disable()  # no collection at a random point


def tally(counts, event):
    counts[event] = counts.get(event, 0) + 1


def work():
    return 1


def main():
    outer = sys.getprofile()
    counts = {}

    def profiler(frame, event, arg):
        if outer is not None:
            outer(frame, event, arg)
        tally(counts, event)

    sys.setprofile(profiler)
    work()
    sys.setprofile(outer)
    return counts


main()
