# A program that is already running when its consumer attaches: it says it
# is ready, waits for the file named by its argument, then calls after().
import os
import sys
import time


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)


def after():
    return 1


def main():
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    wait_for(sys.argv[1])
    after()


main()
