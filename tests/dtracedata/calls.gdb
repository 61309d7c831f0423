# Function, C-function, GC and import markers of the fixture under test, in
# the suite's event format, for gdb.  gdb stops the program at each marker,
# so events come in order; it prints no time or thread.  The harness fills
# in @DIR@ and @OUT@ (the output file).  As in calls.bt, only code from
# @DIR@ is shown, and GC and import events while a fixture function runs
# (two fixture frames deep).  The work is done in gdb's Python: reading
# strings with ptrace only, and never stopping.
set pagination off
set confirm off
python
import gdb

OUT = open("@OUT@", "w")
DIR = "@DIR@"
CHAR_P = gdb.lookup_type("char").pointer()
depth = [0]


def arg(n):
    return int(gdb.parse_and_eval("$_probe_arg%d" % n))


def text(n):
    address = arg(n)
    if address == 0:
        return "(null)"
    return gdb.Value(address).cast(CHAR_P).string(errors="replace")


class Marker(gdb.Breakpoint):
    def __init__(self, name, show):
        gdb.Breakpoint.__init__(self, "-probe-stap python:" + name, internal=True)
        self.name, self.show = name, show

    def stop(self):
        line = self.show(self.name)
        if line:
            OUT.write(line + "\n")
            OUT.flush()
        return False


def code(name):
    filename = text(0)
    if not filename.startswith(DIR):
        return None
    if name == "function__entry":
        depth[0] += 1
    elif name == "function__return":
        depth[0] -= 1
    return "%s %s %s %d %s" % (name, filename, text(1), arg(2), text(3))


def inside(show):
    return lambda name: show(name) if depth[0] >= 2 else None


for marker in ("function__entry", "function__return",
               "cfunction__entry", "cfunction__return"):
    Marker(marker, code)
Marker("gc__start", inside(lambda n: "%s %d" % (n, arg(0))))
Marker("gc__done", inside(lambda n: "%s %d" % (n, arg(0))))
Marker("import__find__load__start", inside(lambda n: "%s %s" % (n, text(0))))
Marker("import__find__load__done",
       inside(lambda n: "%s %s %d" % (n, text(0), arg(1))))
end
run
