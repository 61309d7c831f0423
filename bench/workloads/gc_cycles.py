"""Garbage collection: reference cycles created and collected."""
import gc


class Node(object):
    def __init__(self, parent):
        self.parent = parent
        self.children = []
        if parent is not None:
            parent.children.append(self)


def main(n):
    found = 0
    for i in range(n):
        root = Node(None)
        for j in range(50):
            Node(root)
        del root
        if i % 100 == 0:
            found += gc.collect()
    return found


N = 300
