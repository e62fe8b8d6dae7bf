"""The iREC models: the lossless ResNet VAE (paper, Section 4.1) and the lossy two-level VAE (Section 4.2).

:mod:`irec.models.rvae` (with the discretized logistic of :mod:`irec.models.logistic`) and
:mod:`irec.models.vae2` (with GDN from :mod:`irec.models.gdn`); weight-normalized convolutions in
:mod:`irec.models.layers`.
"""

from irec.models.logistic import DiscretizedLogistic
from irec.models.rvae import RVAE, RVAEConfig

__all__ = ["DiscretizedLogistic", "RVAE", "RVAEConfig"]
