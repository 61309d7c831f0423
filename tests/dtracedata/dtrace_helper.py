# Imported by gc_import.py.


def hello():
    return "hello"
