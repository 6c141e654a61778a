"""One stream scheme for every draw: child generators keyed by what they are for, not by call order.

A result for a unit (a model, a model x group cell, a claim specification) must not change when
another unit is added to or removed from the data. A generator shared across a loop breaks that: the
draws of unit C depend on how many draws units A and B took before it. Here each unit gets its own
stream, derived from the user's seed and a *key* (the unit's labels and the purpose of the draws), so
it is the same whichever other units are present, in whatever order they are visited, on whatever
executor they run.

The key is hashed (BLAKE2b of a canonical text form) into four 32-bit words appended to the seed's
spawn key; ``numpy.random.SeedSequence`` then mixes them into an independent stream. Two keys that
differ in any label give independent streams; the same seed and key give bit-identical draws.

Public names
------------
keyed_stream
    A Generator for ``(seed, *key)``.
key_words
    The 32-bit words a key hashes to (recorded in provenance).
"""

from __future__ import annotations

import hashlib

import numpy as np

from robustalign._rng import RngLike, as_generator

__all__ = ["key_words", "keyed_seed", "keyed_stream"]


def _canonical(part: object) -> str:
    if isinstance(part, (tuple, list)):
        return "(" + ",".join(_canonical(p) for p in part) + ")"
    if isinstance(part, (np.integer, int)) and not isinstance(part, bool):
        return f"i{int(part)}"
    if isinstance(part, (np.floating, float)):
        return f"f{float(part)!r}"
    return "s" + str(part).replace("\\", "\\\\").replace("|", "\\|")


def key_words(*key: object) -> tuple[int, ...]:
    """Four 32-bit words that identify ``key`` (any nesting of strings, numbers and tuples).

    >>> key_words("stability", "model_a") == key_words("stability", "model_a")
    True
    >>> key_words("stability", "model_a") == key_words("stability", "model_b")
    False
    """
    text = "|".join(_canonical(k) for k in key).encode("utf-8")
    digest = hashlib.blake2b(text, digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def keyed_seed(rng: RngLike, *key: object) -> np.random.SeedSequence:
    """The SeedSequence for ``key`` under the seed ``rng`` (None, int, SeedSequence or Generator).

    A Generator contributes its *seed* (its ``SeedSequence``), not its current state, so the stream of a
    key does not depend on what was drawn from the generator before. ``rng=None`` draws fresh entropy:
    pass an int to repeat a run.
    """
    gen, record = as_generator(rng)
    ss = gen.bit_generator.seed_seq
    if not isinstance(ss, np.random.SeedSequence):  # pragma: no cover - exotic bit generators
        ss = np.random.SeedSequence(int(gen.integers(0, 2**63)))
    return np.random.SeedSequence(entropy=ss.entropy, spawn_key=tuple(ss.spawn_key) + key_words(*key))


def keyed_stream(rng: RngLike, *key: object) -> np.random.Generator:
    """An independent Generator for ``key`` under the seed ``rng``.

    Parameters
    ----------
    rng : None, int, SeedSequence or Generator
        The user's seed, as every public function takes it.
    *key
        What the draws are for: a purpose string first, then the unit's labels, e.g.
        ``keyed_stream(rng, "stability.bootstrap", model, group)``.

    Examples
    --------
    >>> a = keyed_stream(1, "boot", "model_a").random(3)
    >>> b = keyed_stream(1, "boot", "model_a").random(3)
    >>> bool((a == b).all())
    True
    >>> bool((keyed_stream(1, "boot", "model_b").random(3) == a).any())
    False
    """
    return np.random.default_rng(keyed_seed(rng, *key))
