"""String work: formatting, joining, splitting, searching, replacing."""


def main(n):
    total = 0
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    for i in range(n):
        s = " ".join(words) + " %d %s" % (i, "x")
        parts = s.split()
        total += len(parts) + s.find("delta") + s.count("a")
        t = s.replace("a", "A").upper().lower().strip()
        total += len(t) + t.startswith("alpha") + len("{0}-{1}".format(i, t[:3]))
        total += len(str(i) + repr(t[:4]))
    return total


N = 3000
