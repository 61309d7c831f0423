# A chain of coroutines under asyncio.run(): each await that suspends is a
# frame exit, each resumption a frame start.
import asyncio
import gc

gc.disable()  # no collection at a random point


async def leaf():
    await asyncio.sleep(0)
    return 1


async def middle():
    return await leaf() + 1


async def top():
    return await middle() + 1


asyncio.run(top())
