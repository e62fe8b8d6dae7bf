"""Float models to exact ones: the integer-weight models that every codec evaluates (irec.models.exact).

Shipped models are stored exact. A float model (one just trained, or a test's small model) is quantized here
when a codec is built from it: per-channel integer weights of :data:`WEIGHT_BITS` bits, activations on the 2^-16
grid (post-training; the cost in rate and quality is measured by ``python -m irec.bench exact``).
"""

from __future__ import annotations

import copy

from torch import nn

from irec.models.exact_rvae import ExactRVAE
from irec.models.exact_vae2 import ExactTwoLevelVAE
from irec.models.rvae import RVAE
from irec.models.vae2 import TwoLevelVAE

WEIGHT_BITS = 16  # int16 weights: no measurable cost (8 bits cost 0.8% in -ELBO and 0.04-0.06 dB)
EXACT_CLASSES = {"lossless": ExactRVAE, "lossy": ExactTwoLevelVAE}
FLOAT_CLASSES = {"lossless": RVAE, "lossy": TwoLevelVAE}


def model_kind(model_class: str) -> str:
    """"lossless" or "lossy" for a model's qualified class name (float or exact)."""
    return "lossless" if model_class.rsplit(".", 1)[-1] in ("RVAE", "ExactRVAE") else "lossy"


def as_exact(model: nn.Module, kind: str, weight_bits: int = WEIGHT_BITS) -> nn.Module:
    """``model`` as an exact CPU model of ``kind``: itself if it is one, else a quantized copy (the caller's float
    model is never changed)."""
    exact_class, float_class = EXACT_CLASSES[kind], FLOAT_CLASSES[kind]
    if isinstance(model, exact_class):
        if any(t.device.type != "cpu" for t in model.state_dict().values()):
            model = copy.deepcopy(model).cpu()
        return model.eval()
    if not isinstance(model, float_class):
        raise ValueError(f"the {kind} codec needs a {float_class.__name__} or {exact_class.__name__} "
                         f"({float_class.__module__}), got {type(model).__name__}")
    return exact_class.from_float(model, weight_bits)
