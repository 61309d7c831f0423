# An exception raised two frames below the frame that catches it.


def inner():
    raise ValueError("boom")


def middle():
    inner()


def outer():
    try:
        middle()
    except ValueError:
        return "caught"


def main():
    outer()


main()
