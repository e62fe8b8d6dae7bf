"""The iREC models: the lossless ResNet VAE (paper, Section 4.1) and the lossy two-level VAE (Section 4.2).

:mod:`irec.models.rvae` (with the discretized logistic of :mod:`irec.models.logistic`) and
:mod:`irec.models.vae2` (with GDN from :mod:`irec.models.gdn`); weight-normalized convolutions in
:mod:`irec.models.layers`. The decoders run their exact forms (:mod:`irec.models.exact`: integer weights, fixed-point
activations, the same bits on every machine): :mod:`irec.models.exact_rvae`, :mod:`irec.models.exact_vae2`, made
from float models by :mod:`irec.models.quantize`.
"""

from irec.models.logistic import DiscretizedLogistic
from irec.models.rvae import RVAE, RVAEConfig

__all__ = ["DiscretizedLogistic", "RVAE", "RVAEConfig"]
