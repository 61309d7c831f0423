"""The markers' semaphores as the traced Python itself sees them: before,
while and after a SystemTap module runs.  The semaphore test runs this in
the guest, under the patched interpreter (Python 2.7 and 3).

    PYTHON semaphores.py OBJECT LOAD NAME=ADDR... -- STAPRUN...

OBJECT is the ELF file holding the markers (the interpreter, or libpython),
LOAD the address its first PT_LOAD segment is linked at, each NAME=ADDR a
marker and the link-time address of its semaphore (.note.stapsdt).
STAPRUN... runs the module, which must print "ready" from its begin probe
and stop on SIGINT.

Prints three lines, "before", "during" and "after", each with NAME=VALUE for
every marker, the semaphores' values read from this process's memory:
before staprun starts; once the module has set them; after staprun exited.

SystemTap sets the semaphores of a process that runs already (this one)
from that process's own context, a little after the module starts (its task
finder), all of a module's at once: "during" waits, after "ready", until no
semaphore reads 0, for up to WAIT seconds, and then shows what it reads.
On exit the module clears them before staprun returns: "after" reads once.
"""

import os
import signal
import struct
import subprocess
import sys
import time

WAIT = 60


def mapped_at(obj):
    """Where this process maps the start of the file obj."""
    real = os.path.realpath(obj)
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
                return int(fields[0].split("-")[0], 16)
    sys.exit("semaphores.py: %s is not mapped in this process" % real)


def values(start, load, semaphores):
    words = []
    # Unbuffered: read the two bytes and nothing around them.
    with open("/proc/self/mem", "rb", 0) as mem:
        for name, address in semaphores:
            mem.seek(start + address - load)
            words.append("%s=%d" % (name, struct.unpack("<H", mem.read(2))[0]))
    return " ".join(words)


def main(argv):
    if "--" not in argv or argv.index("--") < 3:
        sys.exit(__doc__)
    split = argv.index("--")
    obj, load = argv[1], int(argv[2], 0)
    semaphores = []
    for word in argv[3:split]:
        name, address = word.split("=")
        semaphores.append((name, int(address, 0)))
    command = argv[split + 1:]
    start = mapped_at(obj)

    print("before " + values(start, load, semaphores))
    sys.stdout.flush()
    stap = subprocess.Popen(command, stdout=subprocess.PIPE)
    first = stap.stdout.readline()
    if first.strip() != b"ready":
        stap.send_signal(signal.SIGINT)
        stap.communicate()
        sys.exit("semaphores.py: the module printed %r, not ready (status %r)"
                 % (first, stap.wait()))
    deadline = time.time() + WAIT
    during = values(start, load, semaphores)
    while "=0 " in during + " " and time.time() < deadline:
        time.sleep(0.05)
        during = values(start, load, semaphores)
    print("during " + during)
    sys.stdout.flush()
    stap.send_signal(signal.SIGINT)
    stap.communicate()
    status = stap.wait()
    print("after " + values(start, load, semaphores))
    if status != 0:
        sys.exit("semaphores.py: %s exited with status %d" % (command[0], status))


if __name__ == "__main__":
    main(sys.argv)
