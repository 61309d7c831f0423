# A loop: backward jumps, lines reached again and again, a branch.


def loop(n):
    total = 0
    for i in range(n):
        if i % 2:
            total += i
        else:
            total -= 1
    return total


loop(3)
