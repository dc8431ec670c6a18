"""The entry list of component packages: importing them registers their components. The registry never imports
them itself (that closed an import circle through every component module); commands call ``load_components``."""


def load_components() -> None:
    """Import every package that registers components (registration happens at import)."""
    import zoo.data  # noqa: F401
    import zoo.evaluation  # noqa: F401
    import zoo.models  # noqa: F401
    import zoo.task  # noqa: F401
    import zoo.tta  # noqa: F401
