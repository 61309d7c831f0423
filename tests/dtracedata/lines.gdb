# Line markers of the fixture under test, in the suite's event format, for
# gdb.  @DIR@ and @OUT@ as in calls.gdb.
set pagination off
set confirm off
python
import gdb

OUT = open("@OUT@", "w")
DIR = "@DIR@"
CHAR_P = gdb.lookup_type("char").pointer()


def text(n):
    address = int(gdb.parse_and_eval("$_probe_arg%d" % n))
    if address == 0:
        return "(null)"
    return gdb.Value(address).cast(CHAR_P).string(errors="replace")


class Line(gdb.Breakpoint):
    def stop(self):
        filename = text(0)
        if filename.startswith(DIR):
            OUT.write("line %s %s %d\n" % (
                filename, text(1), int(gdb.parse_and_eval("$_probe_arg2"))))
            OUT.flush()
        return False


Line("-probe-stap python:line", internal=True)
end
run
