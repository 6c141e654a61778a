"""One way to turn ``rng=`` into a generator, with a record that reproduces it (SPEC 7)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: What every ``rng=`` accepts: None (fresh entropy, recorded), an int seed, a SeedSequence or a Generator.
RngLike = None | int | np.random.SeedSequence | np.random.Generator


@dataclass(frozen=True)
class RngRecord:
    """What is needed to redraw the same numbers: the seed entropy and the spawn key."""

    entropy: int | tuple[int, ...] | None
    spawn_key: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"entropy": self.entropy, "spawn_key": list(self.spawn_key)}


def as_generator(rng: RngLike = None) -> tuple[np.random.Generator, RngRecord]:
    """Normalise ``rng`` (None, int, SeedSequence or Generator) to a Generator and its record.

    With ``rng=None`` fresh entropy is drawn and recorded, so even an unseeded run can be repeated.
    """
    if isinstance(rng, np.random.Generator):
        ss = rng.bit_generator.seed_seq
        if not isinstance(ss, np.random.SeedSequence):  # pragma: no cover - exotic bit generators
            return rng, RngRecord(None, ())
        return rng, RngRecord(_entropy(ss), tuple(ss.spawn_key))
    if isinstance(rng, np.random.SeedSequence):
        ss = rng
    elif rng is None or isinstance(rng, (int, np.integer)):
        if rng is not None and int(rng) < 0:
            raise ValueError(f"`rng` must be a non-negative integer seed, a Generator or None; got {rng}.")
        ss = np.random.SeedSequence(None if rng is None else int(rng))
    else:
        raise TypeError(
            f"`rng` must be None, a non-negative int, a numpy SeedSequence or a numpy Generator; "
            f"got {type(rng).__name__}."
        )
    return np.random.default_rng(ss), RngRecord(_entropy(ss), tuple(ss.spawn_key))


def spawn(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """Independent child generators (one per task, chain or replicate)."""
    return list(rng.spawn(n))


def _entropy(ss: np.random.SeedSequence) -> int | tuple[int, ...]:
    e = ss.entropy
    assert e is not None  # a SeedSequence draws fresh entropy when given none
    return int(e) if isinstance(e, (int, np.integer)) else tuple(int(x) for x in e)
