"""Imports: pure-Python standard modules, imported afresh each round
(dropped from sys.modules), so that the import system finds and loads them
from their cached bytecode every time."""
import sys

MODULES = ["colorsys", "fnmatch", "shlex", "bisect", "keyword", "textwrap",
           "string", "glob", "difflib", "calendar", "sched", "copy"]


def main(n):
    loaded = 0
    for i in range(n):
        for name in MODULES:
            sys.modules.pop(name, None)
            __import__(name)
            loaded += 1
    return loaded


N = 2
