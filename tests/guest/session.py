"""Runs SystemTap modules in the qemu guest: one boot for a whole test session.

The guest boots slowly and stap compiles slowly, so everything runs at
once, in the background from the start of the test session (conftest.py,
start()) while the host's tests go on: the guest's qemu takes one CPU, and
the host's tests mostly one.  A test that wants a result waits for it:

 1. the guest's pieces, cached under build/guest: Debian's kernel image for
    the installed 6.1 headers (fetch-kernel.sh), SystemTap's runtime made to
    compile against them (fix-runtime.sh), the initramfs (make-initramfs.sh),
    SystemTap's tapsets with our python.stp as `make install` leaves them
    (staptools.tapset_directory; stap runs with SYSTEMTAP_TAPSET set to them);
 2. a private run directory, build/guest/run.XXXXXX, shared writable with
    the guest at the same path;
 3. the jobs of jobs.PROVIDERS, each given that run directory;
 4. every Module the jobs use compiled on the host, one after the other or
    GUEST_COMPILE_JOBS (default 2) at a time, `stap -p4 -r HEADERS -R RUNTIME
    -m NAME`: stap's own cache makes a second session quick;
 5. one boot (boot.sh) running every job (run-jobs.sh), then each job's exit
    status, stdout, stderr and files are kept in memory, and the run
    directory goes (GUEST_KEEP_RUN=1 keeps it).

A module that does not compile fails only the jobs that use it; a boot that
fails or hangs fails them all, with the console's tail.
"""

import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import warnings

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST = os.path.join(harness.BUILD, "guest")

# Seconds: the guest must be up (init's "up" line) within UP_LIMIT; the whole
# boot is killed after BASE_LIMIT + the jobs' own limits, capped at
# GUEST_TIME_LIMIT: about 300 jobs take 15 to 25 minutes, in the background
# beside the host's tests (CI's budget is 90 minutes in all).
UP_LIMIT = 120
BASE_LIMIT = 120
TIME_LIMIT = int(os.environ.get("GUEST_TIME_LIMIT", "2400"))


class Module(object):
    """A stap script compiled on the host for the guest's kernel.

    name: the module's name (stap -m): letters, digits, _; one script per
    name.  script: the script's text, to which MARK_END adds a last end
    probe (run it with staprun_twice() when a test reads its output).
    options: more stap options (-I DIR, -DNAME=VALUE ...).  args: the
    script's arguments ($1 ...).  tapsets: SystemTap's tapset directory for
    this module (SYSTEMTAP_TAPSET), if not the session's copy.  Keep the
    text, options and arguments the same from run to run (pass what changes
    as module parameters, staprun NAME=VALUE): stap's cache then compiles
    each module once per machine.
    """

    def __init__(self, name, script, options=(), args=(), tapsets=None):
        if not re.match(r"^[a-z][a-z0-9_]*$", name) or len(name) > 55:
            raise ValueError("bad module name %r" % name)
        self.name = name
        self.script = script
        self.options = list(options) + MARK_END
        self.args = list(args)
        self.tapsets = tapsets

    def key(self):
        return (self.script, tuple(self.options), tuple(self.args), self.tapsets)


class Job(object):
    """A shell command run in the guest, in its own directory.

    name: letters, digits, ., _, -; unique in a session.  command: shell
    text (see Run for paths).  modules: the Modules it runs.  limit: seconds
    before the guest kills it.  data: anything the test reading the result
    needs to know (a fixture directory ...).  error: why the job cannot be
    made (a provider's problem with one build): it does not run, and its
    result says so.
    """

    def __init__(self, name, command, modules=(), limit=90, data=None, error=None):
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
            raise ValueError("bad job name %r" % name)
        self.name = name
        self.command = command
        self.modules = list(modules)
        self.limit = limit
        self.data = data or {}
        self.error = error


class Run(object):
    """Paths of one session's run directory, the same in host and guest."""

    def __init__(self, path):
        self.path = path

    def module(self, module):
        """Where the guest finds a compiled module."""
        return os.path.join(self.path, "modules", module.name + ".ko")

    def job_dir(self, name):
        return os.path.join(self.path, "jobs", name)

    def fixtures(self, name):
        """A private copy of tests/dtracedata's programs for job name: the
        directory, with its trailing slash."""
        path = os.path.join(self.job_dir(name), "fixtures")
        if not os.path.isdir(path):
            os.makedirs(path)
            for entry in os.listdir(harness.DATA):
                if entry.endswith(".py"):
                    shutil.copy(os.path.join(harness.DATA, entry), path)
        return path + "/"


# SystemTap 4.8's transport (stapio reading the module's relay buffers)
# now and then loses the end of a run's output: status 0, nothing reported,
# the first lines exact and the rest missing.  Seen on the fixture with the
# longest burst of events (deep_calls: 1000 in a few milliseconds; in one
# boot of 100 deep_calls runs on the -ft and -jit builds, one run's output
# stopped after 847 of 1016 events, the end probe's own line gone too: the
# loss is in the transport, after the probes, not in the markers), and in a
# CI run on top.stp (one screen of three, beside a busy host).  So a module
# (every Module: MARK_END) prints END_OF_TRACE after every other end probe;
# a job that runs it with staprun_twice() runs its target again when the
# first output lacks that line, and Result.trace() reads the whole one.
END_OF_TRACE = "end of trace"
MARK_END = ["-E", 'probe end(%d) { println("%s") }' % (1 << 30, END_OF_TRACE)]
SECOND_OUTPUT, SECOND_STDOUT = "out-2.txt", "stdout-2.txt"

# A session may rerun at most one job in RERUN_LIMIT: more means stap's
# transport, or our runtime fix, loses the end of outputs (test_guest.py).
RERUN_LIMIT = 20


def reruns_problem(again, jobs):
    """Why a session in which again (names) of jobs (a count) ran a second
    time fails, or None."""
    if len(again) * RERUN_LIMIT > jobs:
        return ("%d of %d guest jobs ran again (more than 1 in %d): stap lost the end of "
                "their first output: %s" % (len(again), jobs, RERUN_LIMIT, " ".join(again)))
    return None


def staprun_twice(ko, command, params=(), output="out.txt"):
    """staprun(ko, command, params, output) (output: the job directory's
    out.txt), and when the output's
    last line is not END_OF_TRACE, the same again into SECOND_OUTPUT, its
    stdout (the target's) into SECOND_STDOUT."""
    directory = os.path.dirname(output)
    return "%s && { tail -n 1 %s | grep -qxF %s || %s > %s; }" % (
        staprun(ko, command, params, output), shlex.quote(output), shlex.quote(END_OF_TRACE),
        staprun(ko, command, params, os.path.join(directory, SECOND_OUTPUT)),
        shlex.quote(os.path.join(directory, SECOND_STDOUT)))


def staprun(ko, command=None, params=(), output="out.txt"):
    """The shell command that runs the module file ko (staprun), with
    command as its target (-c), params as module parameters (name, value),
    its output into the file output."""
    words = ["staprun", "-o", output]
    if command is not None:
        words += ["-c", command]
    words.append(ko)
    words += ["%s=%s" % (name, value) for name, value in params]
    return " ".join(shlex.quote(w) for w in words)


class Result(object):
    """What became of a job: status (its exit status, None if it never
    ran), stdout, stderr, error (why it did not run: a module that did not
    compile, a failed boot), and files (name: text) it left in its
    directory."""

    def __init__(self, job, status=None, stdout="", stderr="", error=None, files=None):
        self.job = job
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.error = error
        self.files = files or {}

    def describe(self):
        if self.error:
            return "guest job %s did not run:\n%s" % (self.job.name, self.error)
        return ("guest job %s: exit status %s\ncommand: %s\nstdout:\n%s\nstderr:\n%s"
                % (self.job.name, self.status, self.job.command,
                   _tail(self.stdout), _tail(self.stderr)))

    def output(self, name="out.txt"):
        """The text of the job's file name; the job must have succeeded,
        and stap must not have lost anything."""
        assert self.error is None and self.status == 0, self.describe()
        assert not LOSSES.search(self.stderr), self.describe()
        assert name in self.files, "%s left no %s\n%s" % (self.job.name, name, self.describe())
        return self.files[name]

    def _whole_run(self):
        """Of a job run with staprun_twice(): 1 if its first run's output
        ends with END_OF_TRACE, else 2 if its second's does."""
        if self.output().splitlines()[-1:] == [END_OF_TRACE]:
            return 1
        assert self.output(SECOND_OUTPUT).splitlines()[-1:] == [END_OF_TRACE], \
            "stap lost the end of both runs\n" + self.describe()
        return 2

    def trace(self):
        """The output of a job run with staprun_twice(), less END_OF_TRACE:
        its first run's, or, when stap lost the end of that one, its
        second's (with a warning)."""
        if self._whole_run() == 1:
            text = self.output()
        else:
            warnings.warn("stap: SystemTap lost the end of the output of the first guest run "
                          "of %s (%d lines, no %r line); the second run is checked"
                          % (self.job.name, len(self.output().splitlines()), END_OF_TRACE))
            text = self.output(SECOND_OUTPUT)
        return text[:text.rstrip("\n").rfind("\n") + 1]

    def target_stdout(self):
        """What the target printed in the run trace() reads."""
        return self.stdout if self._whole_run() == 1 else self.output(SECOND_STDOUT)


# What staprun says when a probe did not run, or its output was lost.
LOSSES = re.compile(r"transport failures|skipped probes|^ERROR|Number of errors", re.M)


def _tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def _run(argv, what, timeout=600, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        raise GuestError("%s failed (exit status %d): %s\n%s"
                         % (what, proc.returncode, " ".join(argv), proc.stderr))
    return proc.stdout


class GuestError(Exception):
    pass


class Session(object):
    def __init__(self, providers):
        self.providers = providers
        self.results = None
        self.prepared = None
        self.failure = None
        self.selected = None    # names of the jobs to run; None: all
        self.report = []        # what the guest ran on, for the test summary
        self.thread = None      # the run in the background (start())
        self.preparing = threading.Lock()

    def select(self, names):
        """Run only these jobs (those the selected tests read: conftest.py)."""
        self.selected = set(names)

    def unavailable(self):
        """Why the guest cannot run here at all, or None."""
        needs = [("qemu-system-x86_64", "qemu-system-x86"), ("stap", "systemtap"),
                 ("staprun", "systemtap-runtime"), ("busybox", "busybox-static"),
                 ("cpio", "cpio"), ("modinfo", "kmod"), ("apt-get", "apt"),
                 ("dpkg-deb", "dpkg")]
        missing = ["%s (apt-get install %s)" % (tool, package)
                   for tool, package in needs if shutil.which(tool) is None]
        if missing:
            return "the qemu guest cannot run: missing " + ", ".join(missing)
        return None

    def start(self):
        """Run the selected jobs in the background, if the guest can run
        here (else the tests that read them fail or skip, as they would)."""
        if self.thread is None and self.results is None and self.unavailable() is None:
            self.thread = threading.Thread(target=self._run_once, name="guest", daemon=True)
            self.thread.start()

    def _run_once(self):
        try:
            self.results = self._run_all()
        except Exception as e:
            # Once: the tests that read results fail with it, without a rerun.
            self.failure = "the guest session failed: %s: %s" % (type(e).__name__, e)

    def result(self, name):
        if self.thread is not None:
            self.thread.join()
        elif self.results is None and self.failure is None:
            self._run_once()
        if self.failure is not None:
            raise AssertionError(self.failure)
        if name not in self.results:
            if self.selected is not None and name not in self.selected:
                raise AssertionError("guest job %s was not selected to run (conftest.py, "
                                     "guest_jobs_of)" % name)
            raise AssertionError("no guest job %s (jobs: %s)" % (name, sorted(self.results)))
        return self.results[name]

    def reruns(self):
        """(the names of the jobs that ran a second time because stap lost
        the end of their first output (staprun_twice), how many jobs ran)."""
        if self.thread is not None:
            self.thread.join()
        if self.failure is not None:
            raise AssertionError(self.failure)
        again = sorted(name for name, result in self.results.items()
                       if SECOND_OUTPUT in result.files)
        return again, len(self.results)

    # --- the session's one run ----------------------------------------

    def _run_all(self):
        reason = self.unavailable()
        if reason:
            raise AssertionError(reason)
        try:
            prepared = self._prepared()
        except (GuestError, subprocess.TimeoutExpired) as e:
            return self._failed_everything(str(e))
        run = Run(tempfile.mkdtemp(prefix="run.", dir=GUEST))
        try:
            results = self._run_in(run, *prepared)
            again = sorted(n for n, r in results.items() if SECOND_OUTPUT in r.files)
            self.report.append("guest: %d of %d jobs ran again (stap lost the end of their "
                               "first output)%s" % (len(again), len(results),
                                                    ": " + " ".join(again) if again else ""))
            return results
        finally:
            if os.environ.get("GUEST_KEEP_RUN") == "1":
                self.report.append("guest: run directory kept: %s" % run.path)
            else:
                shutil.rmtree(run.path, ignore_errors=True)

    def _failed_everything(self, error):
        """No jobs can run: every job a provider would make fails with error."""
        scratch = Run(tempfile.mkdtemp(prefix="run.", dir=GUEST))
        try:
            jobs = self._jobs(scratch)
        finally:
            shutil.rmtree(scratch.path, ignore_errors=True)
        return dict((job.name, Result(job, error=error)) for job in jobs)

    def boot_files(self):
        """The guest's kernel and initramfs, for a test that boots it itself."""
        kernel, initrd = self._prepared()[:2]
        return kernel, initrd

    def _prepared(self):
        with self.preparing:        # the background run, and a test's boot_files()
            if self.prepared is None:
                os.makedirs(GUEST, exist_ok=True)
                self.prepared = self._prepare()
            return self.prepared

    def _prepare(self):
        start = time.time()
        facts = {}
        out = _run([os.path.join(HERE, "fetch-kernel.sh"), os.path.join(GUEST, "kernel")],
                   "fetching the guest kernel")
        for line in out.splitlines():
            key, _, value = line.partition("=")
            facts[key] = value
        release, headers, root = facts["release"], facts["headers"], facts["root"]
        kernel = os.path.join(root, "boot", "vmlinuz-" + release)
        initrd = os.path.join(GUEST, "initramfs-%s.gz" % release)
        _run([os.path.join(HERE, "make-initramfs.sh"), root, release,
              os.path.join(HERE, "init"), initrd], "building the guest's initramfs")
        runtime = os.path.join(GUEST, "runtime-" + release)
        fixed = _run([os.path.join(HERE, "fix-runtime.sh"), headers, runtime],
                     "copying SystemTap's runtime").strip()
        import staptools
        tapsets = os.path.join(GUEST, "tapsets")
        self.report.append("guest: SYSTEMTAP_TAPSET=%s: %s" % (
            tapsets, staptools.tapset_directory(tapsets)))
        self.report += [
            "guest: kernel linux-image-%s %s (Debian, unpacked in %s)"
            % (release, facts["version"], root),
            "guest: modules compiled with stap -r %s (linux-headers-%s %s)"
            % (headers, release, facts["version"]),
            "guest: stap -R %s: a copy of %s" % (runtime, fixed),
            "guest: kernel, initramfs and runtime ready in %.0f s" % (time.time() - start),
        ]
        return kernel, initrd, headers, runtime, tapsets

    def _jobs(self, run):
        jobs = []
        for provider in self.providers:
            jobs += provider(run)
        if self.selected is not None:
            jobs = [job for job in jobs if job.name in self.selected]
        names = [job.name for job in jobs]
        duplicates = sorted(set(n for n in names if names.count(n) > 1))
        if duplicates:
            raise AssertionError("guest jobs with the same name: %s" % duplicates)
        return jobs

    def _run_in(self, run, kernel, initrd, headers, runtime, tapsets):
        jobs = self._jobs(run)

        modules = {}
        for job in jobs:
            if job.error:
                continue
            for module in job.modules:
                other = modules.setdefault(module.name, module)
                if other.key() != module.key():
                    raise AssertionError("two different scripts named %s" % module.name)
        start = time.time()
        errors = self._compile(run, list(modules.values()), headers, runtime, tapsets)
        self.report.append("guest: %d modules compiled in %.0f s (%d failed)"
                           % (len(modules), time.time() - start, len(errors)))

        results = {}
        runnable = []
        for job in jobs:
            if job.error:
                results[job.name] = Result(job, error=job.error)
                continue
            failed = [m.name for m in job.modules if m.name in errors]
            if failed:
                results[job.name] = Result(job, error="\n".join(
                    "stap could not compile %s:\n%s" % (name, errors[name]) for name in failed))
                continue
            runnable.append(job)
            directory = run.job_dir(job.name)
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "command"), "w") as f:
                f.write(job.command + "\n")
            with open(os.path.join(directory, "limit"), "w") as f:
                f.write("%d\n" % job.limit)
        if not runnable:
            return results
        with open(os.path.join(run.path, "jobs.list"), "w") as f:
            f.writelines(job.name + "\n" for job in runnable)

        limit = min(TIME_LIMIT, BASE_LIMIT + sum(job.limit for job in runnable))
        console = run.path + ".console"
        start = time.time()
        proc = harness.run_in_background(
            [os.path.join(HERE, "boot.sh"), kernel, initrd, run.path,
             str(UP_LIMIT), str(limit), console],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, timeout=limit + 120)
        self.report.append("guest: one boot, %d jobs, %.0f s (time limit %d s)"
                           % (len(runnable), time.time() - start, limit))
        boot_error = None
        if proc.returncode != 0:
            boot_error = proc.stdout
            self.report.append("guest: BOOT FAILED:\n" + proc.stdout)
        if os.path.exists(console):
            os.remove(console)

        for job in runnable:
            results[job.name] = self._collect(run, job, boot_error)
        return results

    def _compile(self, run, modules, headers, runtime, tapsets):
        """Compile modules into the run directory; {name: stap's errors}
        for those that failed."""
        build = os.path.join(run.path, "modules")
        os.makedirs(build, exist_ok=True)
        env = dict(os.environ)
        if tapsets:
            env["SYSTEMTAP_TAPSET"] = tapsets

        def one(module):
            directory = os.path.join(build, module.name)
            os.makedirs(directory)
            script = os.path.join(directory, module.name + ".stp")
            with open(script, "w") as f:
                f.write(module.script)
            argv = (["stap", "-p4", "-r", headers, "-R", runtime, "-m", module.name]
                    + module.options + [script] + module.args)
            own_env = dict(env, SYSTEMTAP_TAPSET=module.tapsets) if module.tapsets else env
            try:
                proc = harness.run_in_background(
                    argv, cwd=directory, env=own_env, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, universal_newlines=True, timeout=900)
            except subprocess.TimeoutExpired:
                return module.name, "stap timed out: %s" % " ".join(argv)
            ko = os.path.join(directory, module.name + ".ko")
            if proc.returncode != 0 or not os.path.exists(ko):
                return module.name, "%s\n%s" % (" ".join(argv), proc.stderr)
            os.rename(ko, run.module(module))
            shutil.rmtree(directory)
            return module.name, None

        workers = max(1, int(os.environ.get("GUEST_COMPILE_JOBS", "2")))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(one, modules))
        return dict((name, error) for name, error in done if error)

    def _collect(self, run, job, boot_error):
        directory = run.job_dir(job.name)
        texts = {}
        for entry in sorted(os.listdir(directory)):
            path = os.path.join(directory, entry)
            if os.path.isfile(path):
                with open(path, errors="replace") as f:
                    texts[entry] = f.read()
        status = texts.pop("status", None)
        stdout = texts.pop("stdout", "")
        stderr = texts.pop("stderr", "")
        for entry in ("command", "limit"):
            texts.pop(entry, None)
        if status is None:
            return Result(job, error=boot_error or "the guest did not run it",
                          stdout=stdout, stderr=stderr, files=texts)
        return Result(job, status=int(status), stdout=stdout, stderr=stderr, files=texts)


_SESSION = None


def session():
    """The test session's guest: the same object for every test."""
    global _SESSION
    if _SESSION is None:
        from guest import jobs
        _SESSION = Session(jobs.PROVIDERS)
    return _SESSION


def required():
    """The session's guest, or a skip (a failure under REQUIRE_ALL_CONSUMERS=1)
    where qemu cannot run at all."""
    reason = session().unavailable()
    if reason:
        harness.cannot_run(reason)
    return session()
