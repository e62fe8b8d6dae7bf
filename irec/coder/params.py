"""The relative entropy coder's parameters, in the paper's notation.

Paper, section 3 and appendix; the original code's names map as ``n_beams`` = B, ``extra_samples`` = 1+epsilon,
``kl_per_partition`` = Omega (``kl_per_step`` here: nats of KL per auxiliary step). A block of KL_b nats takes
K_b = ceil(KL_b / Omega) steps. Named settings (the paper's, the codecs' defaults) live in :mod:`irec.settings`.
"""

from __future__ import annotations

import math
import warnings
import functools
from dataclasses import dataclass, replace

SAMPLERS = ("beam", "greedy", "sample", "pfr")
DEPRECATED_KL_PER_BLOCK = "kl_per_block is the old name of kl_per_step (Omega, nats of KL per step); use kl_per_step"


@dataclass(frozen=True)
class CoderParams:
    """Settings of the relative entropy coder. Only ``n_candidates``, the block sizes and ``seed`` reach the file."""

    kl_per_step: float = 3.0  # Omega: nats of KL carried by each auxiliary step (paper: 3)
    n_beams: int = 10  # B: beams kept by the search (paper: 20 lossless, 10 lossy); greedy forces 1
    extra_samples: float = 1.0  # 1+epsilon: N = floor(exp(extra_samples * kl_per_step)) candidates per step
    block_size: int = 1000  # dimensions per block, before the near-equal split (paper: 1000); the most, if adaptive
    steps_per_block: float = 0.0  # adaptive blocks: size each level's blocks to take about this many steps K_b; 0: off
    seed: int = 0  # seed of the shared randomness (and of the encoder's Gumbel noise for "sample")
    sampler: str = "beam"  # "beam" (iREC), "greedy" (B = 1), "sample" (Gumbel-top-B), "pfr" (exact reference)
    # Encoder only: dimensions whose KL(q || p) is below this many nats are left out of the search's scores, as if
    # q = p there (their sample follows the prior); most of a VAE's top levels are such dimensions. 0: score all.
    ignore_kl_below: float = 0.0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if not (math.isfinite(self.kl_per_step) and self.kl_per_step > 0):
            raise ValueError(f"kl_per_step (Omega) must be a positive number of nats, got {self.kl_per_step}")
        if not (math.isfinite(self.extra_samples) and self.extra_samples > 0):
            raise ValueError(f"extra_samples (1+eps) must be positive, got {self.extra_samples}")
        if self.n_beams < 1:
            raise ValueError(f"n_beams (B) must be at least 1, got {self.n_beams}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {self.block_size}")
        if not (math.isfinite(self.steps_per_block) and self.steps_per_block >= 0):
            raise ValueError(f"steps_per_block must be 0 (fixed blocks) or positive, got {self.steps_per_block}")
        if not (math.isfinite(self.ignore_kl_below) and self.ignore_kl_below >= 0):
            raise ValueError(f"ignore_kl_below must be 0 (score every dimension) or a positive number of nats, "
                             f"got {self.ignore_kl_below}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.sampler != "pfr" and not 2 <= self.n_candidates < 2**24:
            raise ValueError(
                f"exp(extra_samples * kl_per_step) = {math.exp(self.extra_samples * self.kl_per_step):.3g} gives "
                f"{self.n_candidates} candidates per step; it must be in [2, 2**24)"
            )

    @property
    def n_candidates(self) -> int:
        """N = floor(exp((1 + eps) * Omega)), the number of candidates per step."""
        return int(math.floor(math.exp(self.extra_samples * self.kl_per_step)))

    @property
    def beams(self) -> int:
        """The number of beams actually kept (1 for the greedy sampler)."""
        return 1 if self.sampler == "greedy" else self.n_beams

    @property
    def blocks_label(self) -> str:
        """The block sizes in words: "384", or "at most 384 dimensions, about 45 steps each" when adaptive."""
        if not self.steps_per_block:
            return f"{self.block_size}"
        return f"at most {self.block_size} dimensions, about {self.steps_per_block:g} steps each"

    def with_(self, **changes) -> "CoderParams":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def __getattr__(self, name: str):
        if name == "kl_per_block":  # only reached for names that are not attributes
            warnings.warn(DEPRECATED_KL_PER_BLOCK, DeprecationWarning, stacklevel=2)
            return self.kl_per_step
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _accept_kl_per_block(init):
    """Let ``CoderParams(kl_per_block=...)`` keep working for a while, with a DeprecationWarning."""

    @functools.wraps(init)
    def __init__(self, *args, kl_per_block: float | None = None, **kwargs) -> None:
        if kl_per_block is not None:
            warnings.warn(DEPRECATED_KL_PER_BLOCK, DeprecationWarning, stacklevel=2)
            if "kl_per_step" in kwargs:
                raise ValueError("give kl_per_step alone (kl_per_block is its deprecated name)")
            kwargs["kl_per_step"] = kl_per_block
        init(self, *args, **kwargs)

    return __init__


CoderParams.__init__ = _accept_kl_per_block(CoderParams.__init__)
