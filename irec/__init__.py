"""irec: a reproducibility suite for iREC.

Flamich, Havasi & Hernandez-Lobato, "Compressing Images by Encoding Their Latent Representations with
Relative Entropy Coding", NeurIPS 2020 (arXiv 2010.01185). The package holds the models, the relative
entropy coder, data loaders, metrics and plotting; the notebooks in ``notebooks/`` only call it.
"""

__version__ = "0.1.0"
