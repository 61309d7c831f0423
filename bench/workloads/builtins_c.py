"""C builtin calls: len, isinstance, min/max, abs, list and dict methods."""


def main(n):
    total = 0
    items = [3, 1, 4, 1, 5, 9, 2, 6]
    d = {"a": 1}
    for i in range(n):
        lst = []
        lst.append(i)
        lst.extend(items)
        total += len(lst) + max(items) + min(items) + abs(-i)
        if isinstance(i, int):
            total += d.get("a", 0) + d.get("b", 1)
        total += sorted(items)[0] + divmod(i, 7)[1] + hash(i) % 3
        total += ord(chr(i % 128)) + int(round(1.5))
    return total


N = 5000
