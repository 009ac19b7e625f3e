"""`hasync check` and `hasync haresources import` (being built)."""


def register(sub) -> None:
    pass
