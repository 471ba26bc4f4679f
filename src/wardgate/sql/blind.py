"""What literal-blind classification is built on (``pg_shapes``, ``mysql_shapes``).

Owns ``LiteralRead`` and ``raise_on_every_use``: a stand-in for a value the classifier
must not look at raises ``LiteralRead`` from every operator and built-in that could reveal
something about the value it replaced.
"""

from __future__ import annotations

from typing import NoReturn, TypeVar


class LiteralRead(BaseException):
    """The walk needed a value that a literal-blind classification does not have: a
    literal's value, a source offset, or the statement's text.

    A ``BaseException``, so that no ``except Exception`` in a classifier can swallow it: a
    classification that completes without raising it did not depend on those values.
    """


def _read(self: object, *args: object) -> NoReturn:
    raise LiteralRead("a literal's value or a source offset")


# Operators and built-ins look these up on the type, not through __getattribute__. The
# reflected ones matter too: "1 + x" must raise LiteralRead, not a TypeError that an
# "except Exception" could take for an ordinary failure.
_USES = (
    *("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__"),
    *("__str__", "__repr__", "__format__", "__bytes__", "__fspath__", "__call__"),
    *("__int__", "__float__", "__complex__", "__index__", "__trunc__", "__floor__"),
    *("__ceil__", "__round__", "__neg__", "__pos__", "__abs__", "__invert__"),
    *("__len__", "__length_hint__", "__iter__", "__reversed__", "__contains__"),
    *("__getitem__", "__setitem__", "__delitem__", "__enter__", "__exit__"),
    *("__reduce__", "__reduce_ex__", "__copy__", "__deepcopy__", "__setattr__", "__delattr__"),
    *(
        f"__{side}{op}__"
        for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod")
        for side in ("", "r", "i")
    ),
    *(
        f"__{side}{op}__"
        for op in ("pow", "lshift", "rshift", "and", "or", "xor")
        for side in ("", "r", "i")
    ),
)

_C = TypeVar("_C", bound=type)


def raise_on_every_use(cls: _C) -> _C:
    """Class decorator: every operator and built-in on an instance raises LiteralRead
    (the class's ``__getattribute__`` decides about plain attributes)."""
    for name in _USES:
        setattr(cls, name, _read)
    return cls
