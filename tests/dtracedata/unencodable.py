# Names that are not valid UTF-8 (lone surrogates): the markers pass NULL,
# and the program runs on undisturbed.


def odd():
    return 1


odd.__code__ = odd.__code__.replace(co_name="odd\udcff")
scope = {"__name__": "mod\udcff"}
exec(compile("def inner():\n    return 2\n", __file__, "exec"), scope)


def main():
    odd()
    scope["inner"]()


main()
