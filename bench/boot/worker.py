"""The runtime alone: a PyScript worker that imports NumPy, as the model worker does first."""
import numpy  # noqa: F401


def ready() -> bool:
    return True


__export__ = ["ready"]
