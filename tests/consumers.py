"""The consumers the tests run, one runner each, with the same stop rule
(interrupt): bpftrace, gdb, stap (in the qemu guest: tests/guest), bcc's
tools, perf.  Each says why it cannot run here (unavailable), which the
tests turn into a skip, or under REQUIRE_ALL_CONSUMERS=1 (CI) a failure
(harness.require).
"""

import glob
import os
import re
import shutil
import signal
import struct
import subprocess
import time

import harness


def interrupt(tracer, tries=4, wait=30):
    """Stop a consumer started with stderr=PIPE as Ctrl-C does: SIGINT,
    then its stderr once it exited.  A consumer that is still running
    after wait seconds gets SIGINT again, up to tries times (bpftrace 0.17
    has been seen here to miss one), then is killed, and that fails.  Not
    sooner: a second SIGINT while a consumer still detaches (slow beside
    the guest's qemu) cuts its clean-up short (bpftrace: exit status -2;
    bcc's tools: semaphores left set)."""
    for _ in range(tries):
        tracer.send_signal(signal.SIGINT)
        try:
            return tracer.communicate(timeout=wait)[1]
        except subprocess.TimeoutExpired:
            pass
    tracer.kill()
    raise AssertionError("%s did not stop on SIGINT: %s" % (tracer.args[0],
                                                             tracer.communicate()[1]))


def tracing_unavailable(who):
    """Why who (a consumer that defines uprobes through the kernel's
    tracing file system) cannot trace here, or None."""
    if os.geteuid() != 0:
        return "%s needs root" % who
    if not any(os.path.exists(p) for p in (
            "/sys/kernel/tracing/uprobe_events",
            "/sys/kernel/debug/tracing/uprobe_events")):
        return "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)"
    return None


def uprobe_tracers():
    """The uprobe tracers running here (bpftrace, bcc's tools, perf), as
    a line of what may have disturbed gdb, or ""."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        words = " ".join(os.path.basename(a) for a in argv[:2])
        if re.search(r"\b(bpftrace|perf|staprun|ucalls|uflow|ugc|ustat)\b|bpfcc", words):
            found.append("%s (%s)" % (pid, " ".join(argv[:3])))
    if not found:
        return ""
    return ("uprobe tracers running meanwhile, whose uprobes on the markers' sites "
            "take gdb's breakpoints away: " + ", ".join(found))


class Bpftrace(object):
    name = "bpftrace"
    suffix = ".bt"

    def unavailable(self):
        if shutil.which("bpftrace") is None:
            return "bpftrace is not installed (apt-get install bpftrace)"
        return tracing_unavailable("bpftrace")

    # Room for bursts: a recursion 500 deep is 1000 events at once.
    ENV = dict(os.environ, BPFTRACE_PERF_RB_PAGES="1024")

    def _script(self, d, build, script, pid="cpid"):
        """The script, filled in: @PID@ is the traced program's PID (cpid,
        bpftrace's name for the program it starts with -c).  The probes of
        markers the build does not claim are left out (bpftrace refuses a
        probe without a site)."""
        with open(os.path.join(harness.DATA, script + self.suffix)) as f:
            text = f.read()
        objects, counts = harness.marker_objects(build), harness.argument_counts(build)
        blocks = []
        for block in text.split("\n\n"):
            m = re.match(r"usdt:@OBJECT@:python:(\w+)", block)
            if m:
                if m.group(1) not in objects:
                    continue
                block = harness.absent_arguments(block.replace("@OBJECT@", objects[m.group(1)]),
                                         counts.get(m.group(1), 10))
            blocks.append(block)
        text = ("\n\n".join(blocks).replace("@OBJECT@", harness.marker_object(build))
                .replace("@DIRLEN@", str(len(d.inner)))
                .replace("@DIR@", d.inner)
                .replace("@PID@", str(pid)))
        path = os.path.join(d.path, script + self.suffix)
        with open(path, "w") as f:
            f.write(text)
        return path

    @staticmethod
    def _events(d, returncode, stderr, out):
        with open(out) as f:
            raw = f.read()
        assert returncode == 0, (stderr, raw)
        assert "Lost" not in stderr + raw, "bpftrace lost events"
        events = []
        for line in raw.splitlines():
            m = re.match(r"(\d+) (\d+) (.*)$", line)
            if m:
                events.append((int(m.group(1)), int(m.group(2)),
                               d.relative([m.group(3)])[0]))
        # Per-CPU buffers: order by time, not by arrival.
        events.sort()
        return [(tid, event) for _, tid, event in events]

    def trace(self, build, script, fixture):
        """Run fixture under script: its (thread id, event)s, oldest first."""
        with harness.FixtureDir(harness.root_of(build)) as d:
            out = os.path.join(d.path, "out.txt")
            program = harness.command(build, os.path.join(d.inner, fixture + ".py"))
            if harness.marker_object(build) == os.path.realpath(program[0]):
                bt = self._script(d, build, script)
                with open(out, "w") as f:
                    proc = subprocess.run(
                        ["bpftrace", "-c", " ".join(program), bt],
                        stdout=f, stderr=subprocess.PIPE, universal_newlines=True,
                        timeout=300, cwd=d.path, env=self.ENV)
                return self._events(d, proc.returncode, proc.stderr, out)
            # Markers in a shared library: bpftrace 0.17 cannot find them
            # for a process it starts with -c, which has not loaded the
            # library yet ("Error finding location for probe").  So trace
            # the library system-wide, and start the program held before
            # its exec: its PID is known to the script (@PID@) before it
            # loads anything.
            held = harness.Held(program, cwd=d.path, env=harness.environment(build))
            try:
                bt = self._script(d, build, script, held.pid)
                tracer = self.start(bt, out)
                try:
                    assert held.release(timeout=300) == 0, "%s failed" % program
                    # Let bpftrace drain its buffers before it is stopped.
                    harness.wait_until_still(out)
                finally:
                    stderr = self.interrupt(tracer)
            finally:
                held.kill()
            return self._events(d, tracer.returncode, stderr, out)

    @staticmethod
    def interrupt(tracer):
        """Stop a bpftrace started with stderr=PIPE as Ctrl-C does; its
        stderr (interrupt(), below)."""
        return interrupt(tracer)

    def start(self, script, out, pid=None, **popen):
        """bpftrace SCRIPT (on the process pid, else system-wide), its
        output into the file out, its stderr a pipe; once every probe is
        attached (the script's BEGIN printed "tracing").  Stop it with
        interrupt()."""
        with open(out, "w") as f:
            tracer = subprocess.Popen(
                ["bpftrace"] + (["-p", str(pid)] if pid is not None else []) + [script],
                stdout=f, stderr=subprocess.PIPE, universal_newlines=True,
                env=popen.pop("env", self.ENV), **popen)
        try:
            self._wait_attached(tracer, out)
        except BaseException:
            if tracer.poll() is None:
                tracer.kill()
                tracer.communicate()
            raise
        return tracer

    @staticmethod
    def _wait_attached(tracer, out, said="tracing", attached=lambda: True):
        """Wait until the output file out holds said: by default the line
        "tracing" that BEGIN prints once every probe is attached.  A script
        without one (examples/bpftrace) is waited for by bpftrace's own
        "Attaching N probes" line, then until attached() (its markers'
        semaphores set in the traced process)."""
        deadline = time.time() + 60
        while time.time() < deadline and tracer.poll() is None:
            if os.path.exists(out) and said in open(out).read() and attached():
                return
            time.sleep(0.1)
        raise AssertionError("bpftrace did not start: %s" % (tracer.stderr.read()
                             if tracer.poll() is not None else "timeout"))

    # Launched runs, and those run again (the session summary reports them)
    launched = 0
    reran = []

    def run_launched(self, script, build, fixture_dir, program, flags=(), env=None,
                     printed=None):
        """_run_launched(), run again (at most twice) when bpftrace 0.17
        failed to register a uprobe after its sites were armed ("cannot
        attach uprobe"): the program ran, the consumer did not."""
        Bpftrace.launched += 1
        for attempt in range(3):
            lines = []
            returncode, stderr, text = self._run_launched(
                script, build, fixture_dir, program, flags, env, lines)
            if returncode == 0 or attempt == 2 or "Error attaching probe" not in stderr:
                break
            Bpftrace.reran.append("%s %s" % (build, os.path.basename(program[-1])))
        assert returncode == 0, (stderr, text)
        assert "Lost" not in stderr + text, "bpftrace lost events"
        if printed is not None:
            printed.extend(lines)
        return text

    def _run_launched(self, script, build, fixture_dir, program, flags, env, printed):
        """bpftrace SCRIPT ELF -p PID for the process PYTHON [flags] program
        (a list) in harness.LAUNCHER, which waits for bpftrace to attach (the
        scripts trace every process of the ELF without -p, and other tests
        run Pythons too), pinned to one CPU so that the script's lines
        arrive whole and in order: (its exit status, stderr, output).  printed: a list
        to extend with the program's stdout lines."""
        out = os.path.join(fixture_dir, "out.txt")
        launcher = os.path.join(fixture_dir, "launch.py")
        with open(launcher, "w") as f:
            f.write(harness.LAUNCHER)
        python = subprocess.Popen(
            [harness.interpreter(build)] + list(flags) + [launcher] + program,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, cwd=fixture_dir, env=dict(os.environ, **(env or {})),
            preexec_fn=lambda: os.sched_setaffinity(0, {0}))
        tracer, stderr = None, ""
        try:
            ready = python.stdout.readline()
            assert ready == harness.READY + "\n", (ready, python.communicate())
            with open(script) as f:
                used = set(re.findall(r"^usdt:[^:]*:python:(\w+)", f.read(), re.M))
            elf = harness.marker_object(build)
            for attempt in range(3):
                tracer = subprocess.Popen(
                    ["bpftrace", "-p", str(python.pid), "-o", out, script, elf],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                    cwd=fixture_dir, env=self.ENV)
                try:
                    self._wait_attached(tracer, out, said="Attaching", attached=lambda: all(
                        semaphore(python.pid, elf, marker) > 0 and armed(python.pid, elf, marker)
                        for marker in used))
                    break
                except AssertionError as e:
                    # bpftrace 0.17 under load: "Error initializing context
                    # for probe ... for PID", "cannot attach uprobe": it
                    # exits before attaching, the program still waits.
                    if attempt == 2 or tracer.poll() is None or \
                            not re.search(r"Error (initializing context|attaching probe)",
                                          str(e)):
                        raise
            said, err = python.communicate("go\n", timeout=300)
            assert python.returncode == 0, err
            if printed is not None:
                printed.extend(said.splitlines())
            harness.wait_until_still(out)
        finally:
            if python.poll() is None:
                python.kill()
                python.communicate()
            if tracer is not None:
                stderr = self.interrupt(tracer) if tracer.poll() is None else \
                    tracer.communicate()[1]
        with open(out) as f:
            text = f.read()
        return tracer.returncode, stderr, text

    def run(self, build, script, fixture):
        """Run fixture under script: its events, oldest first."""
        return [event for _, event in self.trace(build, script, fixture)]

    def attach(self, build, script, fixture):
        """Start fixture; once it says "ready", attach script to it, then
        let it go on by creating the file its argument names.  Its events,
        oldest first."""
        with harness.FixtureDir() as d:
            bt = self._script(d, build, script)
            out = os.path.join(d.path, "out.txt")
            go = os.path.join(d.path, "go")
            program = subprocess.Popen(
                [harness.interpreter(build), os.path.join(d.path, fixture + ".py"), go],
                stdout=subprocess.PIPE, universal_newlines=True)
            tracer = None
            try:
                assert program.stdout.readline() == "ready\n"
                tracer = self.start(bt, out, pid=program.pid)
                open(go, "w").close()
                assert program.wait(timeout=60) == 0
                _, stderr = tracer.communicate(timeout=60)
            finally:
                for p in (program, tracer):
                    if p is not None and p.poll() is None:
                        p.kill()
            return [e for _, e in self._events(d, tracer.returncode, stderr, out)]


# gdb as the tests run it: no init files, quiet, batch, and no debugging
# information read (--readnever: the markers' notes and the ELF symbols are
# all it needs; reading libpython's DWARF costs about half a second a run).
GDB = ["gdb", "-nx", "-q", "-batch", "--readnever"]


class Gdb(object):
    """gdb, with breakpoints on the markers (-probe-stap) whose commands,
    in gdb's Python, write the events to a file and never stop."""
    name = "gdb"
    suffix = ".gdb"

    def unavailable(self):
        if shutil.which("gdb") is None:
            return "gdb is not installed (apt-get install gdb)"
        return None

    def run(self, build, script, fixture):
        """Run fixture under script; the events, in order.  With usdtmon
        (B+usdtmon), the breakpoints are on its shared object's markers
        alone; in a root (a stock interpreter's), gdb reads the program's
        libraries there (sysroot) and starts it as harness.command does."""
        root = harness.root_of(build)
        with harness.FixtureDir(root) as d:
            out = os.path.join(d.path, "out.txt")
            where = "python:"
            if harness.is_module(build):
                where = os.path.basename(harness.marker_object(build)) + ":python:"
            with open(os.path.join(harness.DATA, script + self.suffix)) as f:
                text = (f.read().replace("@DIR@", d.inner).replace("@OUT@", out)
                        .replace("-probe-stap python:", "-probe-stap " + where))
            path = os.path.join(d.path, script + self.suffix)
            with open(path, "w") as f:
                f.write(text)
            proc = subprocess.run(
                GDB + ["-ex", "set breakpoint pending on"]
                + (["-ex", "set sysroot " + root] if root else [])
                + ["-x", path, "--args"]
                + harness.command(build, os.path.join(d.inner, fixture + ".py")),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=harness.environment(build),
                universal_newlines=True, timeout=600, cwd=d.path)
            assert proc.returncode == 0, proc.stdout
            assert "exited normally" in proc.stdout, proc.stdout
            # What could have taken gdb's breakpoints (test_sites.py,
            # test_gdb_loses_a_site_to_a_uprobe).
            self.details = uprobe_tracers()
            with open(out) as f:
                return d.relative(f.read().splitlines())


class Stap(object):
    """SystemTap with its module runtime, in a qemu guest (tests/guest): the
    scripts are dtracedata/*.stp; every stap run of a test session shares
    one boot, done when the first result is wanted."""
    name = "stap"
    suffix = ".stp"

    def unavailable(self):
        from guest.session import session
        return session().unavailable()

    def run(self, build, script, fixture):
        """Run fixture under script; the events, oldest first."""
        from guest import jobs
        from guest.session import session
        result = session().result(jobs.semantics_name(build, script, fixture))
        self.details = result.describe()
        prefix = result.job.data["fixtures"]
        return [line.replace(prefix, "") for line in result.trace().splitlines()]


CONSUMERS = [Bpftrace(), Gdb(), Stap()]




def _process_bytes(pid, elf, offset, size):
    """size bytes of process pid's memory where it maps offset of the ELF
    file elf (a file offset)."""
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if len(fields) < 6 or os.path.realpath(fields[5]) != elf:
                continue
            start, end = (int(a, 16) for a in fields[0].split("-"))
            mapped = int(fields[2], 16)
            if mapped <= offset < mapped + end - start:
                with open("/proc/%d/mem" % pid, "rb") as mem:
                    mem.seek(start + offset - mapped)
                    return mem.read(size)
    raise AssertionError("offset %#x of %s is not mapped in process %d" % (offset, elf, pid))


def semaphore(pid, elf, marker):
    """The value of marker's semaphore (its first site's) in process pid,
    for the ELF file elf that process maps: what a consumer that attached
    to the marker has made it (the kernel counts it up for each)."""
    import usdt
    site = [s for s in usdt.read_sites(elf) if s.name == marker][0]
    return struct.unpack("<H", _process_bytes(
        pid, elf, usdt.file_offset(elf, site.semaphore), 2))[0]


def armed(pid, elf, marker):
    """Whether every site of marker in process pid holds a uprobe: its
    first byte is no longer the file's (an int3, or the jump the kernel
    may optimise it into).  A consumer sets the semaphore before it
    registers the uprobes, and the registration can still fail."""
    import usdt
    with open(elf, "rb") as f:
        for site in usdt.read_sites(elf):
            if site.name == marker:
                offset = usdt.file_offset(elf, site.address)
                f.seek(offset)
                if _process_bytes(pid, elf, offset, 1) == f.read(1):
                    return False
    return True


def default_sigint():
    """For a consumer written in Python (bcc's tools): it turns SIGINT into
    KeyboardInterrupt only if SIGINT is not ignored, as it is in a
    background job of a script."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Bcc(object):
    """bcc's tools for Python (ucalls, uflow, ugc, ustat: -l python), which
    compile their BPF programs against the kernel headers of a scratch
    tree (scripts/bcc-headers.sh, build/bcc-headers); stopped with
    interrupt()."""
    name = "bcc"
    HEADERS_SCRIPT = os.path.join(harness.REPO, "scripts", "bcc-headers.sh")
    HEADERS = os.path.join(harness.BUILD, "bcc-headers")
    TOOL_DIRS = ("/usr/sbin", "/usr/share/bcc/tools/lib", "/usr/share/bcc/tools")
    _why = []

    def tool_path(self, name):
        """bcc's tool NAME (ucalls, uflow, ugc, ustat), or None."""
        for d in self.TOOL_DIRS:
            path = os.path.join(d, name)
            if os.access(path, os.X_OK):
                return path
        return shutil.which(name)

    def env(self):
        # Unbuffered: the tests read the tool's "Tracing..." line as it comes.
        return dict(os.environ, BCC_KERNEL_SOURCE=self.HEADERS, PYTHONUNBUFFERED="1")

    def unavailable(self):
        """Why bcc's tools cannot run here, or None; makes the header tree
        (once a session)."""
        if not self._why:
            self._why.append(self._unavailable())
        return self._why[0]

    def _unavailable(self):
        missing = [name for name in ("ucalls", "uflow", "ugc", "ustat")
                   if self.tool_path(name) is None]
        if missing:
            return ("bcc's %s not installed (apt-get install bpfcc-tools python3-bpfcc)"
                    % ", ".join(missing))
        if subprocess.run(["/usr/bin/python3", "-c", "import bcc"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            return "python3 cannot import bcc (apt-get install python3-bpfcc)"
        reason = tracing_unavailable("bcc's tools")
        if reason:
            return reason
        if not [d for d in glob.glob("/usr/src/linux-headers-*-amd64")
                if os.path.isdir(d[:-len("amd64")] + "common")]:
            return ("no kernel headers to compile bcc's programs against "
                    "(apt-get install linux-headers-amd64)")
        made = subprocess.run([self.HEADERS_SCRIPT, self.HEADERS], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True)
        assert made.returncode == 0, made.stderr
        # bcc compiles and loads a program (BPF allowed, headers usable)?
        probe = subprocess.run(
            ["/usr/bin/python3", "-c", "from bcc import BPF\n"
             "BPF(text='int f(void *ctx) { return 0; }').load_func('f', BPF.KPROBE)"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            env=self.env(), timeout=300)
        if probe.returncode != 0:
            return ("bcc cannot compile and load a BPF program here "
                    "(BCC_KERNEL_SOURCE=%s): %s" % (self.HEADERS, probe.stdout.strip()[-500:]))
        return None


class Perf(object):
    """perf: its SDT events (perf probe, buildid-cache) and, for string
    arguments, uprobe events written to tracefs; perf record runs the
    program itself (-- COMMAND), so nothing is interrupted."""
    name = "perf"
    UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"

    def unavailable(self):
        if shutil.which("perf") is None:
            return "perf is not installed (apt-get install linux-perf)"
        # The tests write /sys/kernel/tracing/uprobe_events themselves.
        if not os.path.exists(self.UPROBE_EVENTS):
            return "tracefs is not mounted on /sys/kernel/tracing"
        return tracing_unavailable("perf probe")

    def run(self, buildid_dir, *args, **kw):
        """perf --buildid-dir BUILDID_DIR ARGS: its stdout; it must succeed."""
        proc = subprocess.run(["perf", "--buildid-dir", buildid_dir] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=300, **kw)
        assert proc.returncode == 0, "perf %s: %s" % (" ".join(args), proc.stderr)
        return proc.stdout
