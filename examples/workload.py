# A small program to trace: a word count, with a generator, a class, an
# exception handled two frames up, and C builtins.  Python 2 and 3.  It
# prints nothing, so that its tracer's output stands alone.

TEXT = """the quick brown fox jumps over the lazy dog
the dog sleeps"""


def words(text):
    for line in text.splitlines():
        for word in line.split():
            yield word


class Counter(object):
    def __init__(self):
        self.counts = {}

    def add(self, word):
        self.counts[word] = self.counts.get(word, 0) + 1

    def top(self, n):
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:n]


def parse_limit(text):
    return int(text)


def limit(text, default):
    try:
        return parse_limit(text)
    except ValueError:
        return default


def main():
    counter = Counter()
    for word in words(TEXT):
        counter.add(word)
    top = counter.top(limit("two", 2))
    assert top == [("the", 3), ("dog", 2)], top


main()
