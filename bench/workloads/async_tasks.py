"""Async: coroutines awaiting coroutines, driven by asyncio (Python 3)."""
# requires: 3
import asyncio


async def leaf(i):
    return i + 1


async def middle(i):
    a = await leaf(i)
    b = await leaf(a)
    return a + b


async def worker(k, n):
    total = 0
    for i in range(n):
        total += await middle(i + k)
        if i % 64 == 0:
            await asyncio.sleep(0)
    return total


async def run(n):
    results = await asyncio.gather(*[worker(k, n // 8) for k in range(8)])
    return sum(results)


def main(n):
    return asyncio.run(run(n))


N = 6000
