# Two threads running Python code at the same time: every thread's entries
# and returns must nest and balance on their own.
import threading


def work(n):
    if n:
        work(n - 1)


def run():
    for _ in range(50):
        work(10)


threads = [threading.Thread(target=run) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
