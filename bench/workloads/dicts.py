"""Dict work: inserts, lookups, updates, iteration, deletion."""


def main(n):
    total = 0
    for r in range(n):
        d = {}
        for i in range(200):
            d["k%d" % i] = i
        for k in d:
            total += d[k]
        for i in range(0, 200, 3):
            del d["k%d" % i]
        d.update(a=1, b=2)
        total += len(d) + sum(d.values()) + len(list(d.items()))
        if "k1" in d and "k3" not in d:
            total += 1
    return total


N = 100
