# An audit event raised by Python code, with arguments: the audit marker
# passes its name and the arguments' tuple.  Python 3.8 and later.
import sys


def main():
    sys.audit("python_systemtap.fixture", 1, "two")


main()
