"""Two libraries loaded without the optional extras they would pull into every worker.

Imported first by ``backend.app``, so each worker loads them once, here:

- PyJWT with no ``cryptography`` (about 8 MiB a worker): access tokens are HS256 only, which needs
  nothing but ``hmac``; the asymmetric algorithms it would register are ones no token may use.
- structlog with no ``rich`` and ``pygments`` (about 4 MiB): they only colour tracebacks on a
  developer's console, which then prints them plain.

Either library already imported with its extras (a test process that loaded them first) stays as
it is; nothing else in the process loses ``cryptography`` or ``rich``, which import normally after.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("absent",)


@contextmanager
def absent(*names: str) -> Iterator[None]:
    """Within the block, importing any of ``names`` fails as if it were not installed
    (``ModuleNotFoundError``), unless the process holds it already."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not here"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


with absent("cryptography"):
    import jwt  # noqa: F401
with absent("rich"):
    import structlog  # noqa: F401
