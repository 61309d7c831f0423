"""SystemTap's module runtime, run for real in a disposable qemu guest.

This machine's kernel cannot load modules, so the tests compile each stap
script on the host for Debian's 6.1 kernel and run it in a guest booted on
that kernel:

  fetch-kernel.sh     the linux-image package matching the installed headers
  fix-runtime.sh      a copy of SystemTap's runtime that compiles against them
  make-initramfs.sh   busybox, the virtio/9p modules and init, as an initramfs
  init                the guest's /init: host root over 9p, then run-jobs.sh
  boot.sh             one qemu boot (TCG) under a hard time limit
  run-jobs.sh         in the guest: every job of a run directory
  session.py          the Python side: compile, one boot for all jobs, results
  jobs.py             which jobs a test session runs
  semaphores.py       in the guest: the markers' semaphores, seen by a Python
"""
