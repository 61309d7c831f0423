# Calls for a while: spin() until SECONDS (default 2.5) have passed, for
# the examples that report periodically (top.stp redraws every second) or
# rank what runs most (lines.stp).  Python 2 and 3.
import sys
import time


def spin():
    return sum(range(100))


def main(seconds):
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        spin()
        n += 1
    return n


main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.5)
