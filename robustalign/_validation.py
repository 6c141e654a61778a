"""Argument checks shared across robustalign (resampling, claims, validity).

Every check raises ``ValueError`` (or ``TypeError`` for a wrong kind of object) whose message names
the argument, states the constraint, shows the value received and, where possible, says the fix.
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np

INTERVAL_METHODS = ("percentile", "bca")
ALTERNATIVES = ("two-sided", "greater", "less")


def check_confidence_level(value, name: str = "confidence_level") -> float:
    """A probability strictly between 0 and 1 (``95`` gets a 'did you mean 0.95?' hint)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number in (0, 1); got {value!r}.")
    v = float(value)
    if not 0.0 < v < 1.0:
        hint = f" Did you mean {v / 100:g}?" if 1.0 < v < 100.0 else ""
        raise ValueError(f"`{name}` must be in (0, 1); got {value!r}.{hint}")
    return v


def resolve_level(confidence_level, level: float | None = None, default: float = 0.95) -> float:
    """The confidence level from ``confidence_level`` (the name every result uses) or the older ``level``.

    ``level=`` still works with a DeprecationWarning; giving both is an error.
    """
    if level is not None:
        if confidence_level is not None:
            raise ValueError("give `confidence_level` only (`level` is its old name).")
        import warnings

        warnings.warn("`level=` is now `confidence_level=`; `level` will be removed.", DeprecationWarning,
                      stacklevel=3)
        confidence_level = level
    return check_confidence_level(default if confidence_level is None else confidence_level)


def check_n_resamples(value, name: str = "n_resamples", minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_resampling_args(confidence_level, n_resamples, n_permutations=None) -> tuple[float, int, int | None]:
    """The arguments every assessment shares, checked in one place (like scipy's ``_bootstrap_iv``):
    ``(confidence_level, n_resamples, n_permutations)``; ``n_permutations`` stays None when not given."""
    level = check_confidence_level(confidence_level)
    n_resamples = check_n_resamples(n_resamples)
    n_perm = None if n_permutations is None else check_n_resamples(n_permutations, "n_permutations")
    return level, n_resamples, n_perm


def check_chunk_size(value, name: str = "chunk_size") -> int | None:
    if value is None:
        return None
    return check_n_resamples(value, name=name, minimum=1)


def check_method(value, allowed=INTERVAL_METHODS, name: str = "method") -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}; got {value!r}.")
    return value.lower()


def check_alternative(value, name: str = "alternative") -> str:
    if value not in ALTERNATIVES:
        raise ValueError(f"`{name}` must be one of {list(ALTERNATIVES)}; got {value!r}.")
    return value


def as_float_array(value, name: str, ndim: tuple[int, ...]) -> np.ndarray:
    """A float array with one of the allowed numbers of dimensions."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a numeric array; got {type(value).__name__}.") from None
    if arr.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"`{name}` must be a {want} array; got shape {arr.shape}.")
    return arr


def check_columns(df, cols, name: str = "data") -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"`{name}` has no column(s) {missing}; found {list(df.columns)}.")


def _physical_memory() -> int | None:
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_resample_memory(n_resamples: int, n_units: int, name: str = "n_resamples", *, width: int = 1,
                          budget: int | None = None) -> None:
    """Refuse a number of resamples whose arrays cannot fit in memory, before anything is allocated.

    A resampling run holds at least one (``n_resamples``, ``n_units``) array of 8-byte indices or
    weights per statistic column (``width``); the estimate is ``8 * n_resamples * n_units * width``
    bytes. It must fit in half the machine's physical memory (or ``budget`` bytes).
    """
    need = 8.0 * int(n_resamples) * max(int(n_units), 1) * max(int(width), 1)
    cap = budget if budget is not None else _physical_memory()
    if cap is None:
        cap = 8 * 1024**3
    limit = cap // 2 if budget is None else cap
    if need > limit:
        most = max(int(limit // (8 * max(int(n_units), 1) * max(int(width), 1))), 1)
        raise ValueError(
            f"`{name}` = {int(n_resamples):,} would need about {_bytes(need)} of memory "
            f"({int(n_units) * max(int(width), 1):,} values of 8 bytes per resample), more than the "
            f"{_bytes(limit)} available. Use at most {most:,} (2,000 is the default; 10,000 gives stable 95% "
            "intervals)."
        )


def check_choice(value, allowed, name: str) -> str:
    """``value`` is one of ``allowed``; otherwise the error lists every choice and the closest one."""
    allowed = sorted(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    near = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"`{name}` must be one of {allowed}; got {value!r}.{hint}")


def check_instance(obj, cls, name: str, fix: str):
    """``obj`` is a ``cls``; otherwise a message that names what was passed and how to make a ``cls``."""
    if not isinstance(obj, cls):
        raise TypeError(f"`{name}` must be a robustalign {cls.__name__}; got a {type(obj).__name__}. {fix}")
    return obj
