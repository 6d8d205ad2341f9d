"""Deterministic seeds from integers, the same in every process and on every machine.

Python's `hash()` of a tuple is salted per process for strings and is not a mixing function, so
seeds for "example i of epoch e" are made here with the SplitMix64 finaliser (Steele, Lea and
Flood, 2014), which spreads nearby inputs (epoch 3 vs 4, example 17 vs 18) over unrelated seeds.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """One SplitMix64 step: a 64-bit integer -> a well-mixed 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """Combine integers into one seed in [0, 2**63), fit for `torch.Generator.manual_seed`."""
    x = 0
    for v in values:
        x = splitmix64(x ^ (int(v) & MASK64))
    return x >> 1
