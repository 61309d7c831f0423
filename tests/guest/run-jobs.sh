#!/usr/bin/env bash
# Runs in the test guest, in the host's root (tests/guest/init): every job of
# a run directory, one after the other.
#
#   run-jobs.sh RUN
#
# RUN/jobs.list names the jobs, one a line, in the order to run them.  A
# job is a directory RUN/jobs/NAME holding `command`, a shell command run
# with the job directory as working directory, and `limit`, its time limit
# in seconds.  The job's stdout, stderr and exit status (124: time limit)
# land in the same directory as stdout, stderr and status.  RUN/finished
# tells the host that the runner got through the list.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C.UTF-8

run=$1
while read -r name; do
    job=$run/jobs/$name
    limit=$(cat "$job/limit")
    start=$SECONDS
    status=0
    (cd "$job" && exec timeout -k 5 "$limit" bash -c "$(cat command)") \
        > "$job/stdout" 2> "$job/stderr" < /dev/null || status=$?
    echo "$status" > "$job/status"
    echo "guest: job $name: status $status, $((SECONDS - start)) s"
done < "$run/jobs.list"
sync
echo finished > "$run/finished"
