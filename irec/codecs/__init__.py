"""Image codecs built on the REC coder: ``compress(image) -> bytes`` and ``decompress(bytes) -> image``.

Paper, section 3: the lossless codec (bidirectional ResNet VAE latents, then pixels under p(x | z)) and the
lossy codec (the two-level VAE's latents; the decoder network gives the image). Both write the container of
:mod:`irec.codecs.container`; ``CODECS`` maps a file's ``kind`` to the class that decodes it.
"""

CODECS = {"lossless": "irec.codecs.lossless:LosslessCodec", "lossy": "irec.codecs.lossy:LossyCodec"}
