"""Image codecs built on the REC coder: ``compress(image) -> bytes`` and ``decompress(bytes) -> image``.

Paper, section 3: the lossless codec (bidirectional ResNet VAE latents, then pixels under p(x | z)) and the
lossy codec (the two-level VAE's latents; the decoder network gives the image). Both write the container of
:mod:`irec.codecs.container` and keep one contract: ``encode(image)`` gives an :class:`irec.codecs.encoding.Encoding`
(the file, what it decodes to, its real and ideal bits per part), ``compress(image)`` its bytes and
``decompress(bytes)`` the image; another model's file or one of the other kind raises ``WrongModelError``, damaged
bytes ``CorruptStreamError``. ``CODECS`` maps a file's ``kind`` to the class that decodes it; :func:`make_codec`
builds one for a model name or path.
"""

from __future__ import annotations

import dataclasses
import importlib

from irec import zoo

CODECS = {"lossless": "irec.codecs.lossless:LosslessCodec", "lossy": "irec.codecs.lossy:LossyCodec"}


def codec_class(kind: str) -> type:
    """The codec class for a file or model kind ("lossless" or "lossy"), imported lazily from CODECS."""
    if kind not in CODECS:
        raise ValueError(f"unknown codec kind {kind!r}; known: {', '.join(sorted(CODECS))}")
    module, _, name = CODECS[kind].partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as err:
        raise ValueError(f"the {kind} codec ({CODECS[kind]}) is not available in this installation: {err}") from err


def make_codec(model_ref: str, overrides: dict | None = None, kind: str | None = None, refine_steps: int | None = None,
               *, resolve=zoo.resolve_model):
    """A codec for a model name or path, and the model's registry info; ``overrides`` change fields of the codec's
    default coder parameters.

    ``kind``: the kind the model must have (a file's), checked before any codec is imported; ``refine_steps``: the
    encoder's refinement steps (irec.codecs.refine: the lossy codec's of q(z1)'s mean, the lossless codec's of every
    level's posterior; None: the codec's default); ``resolve``: ``model_ref -> (model, fingerprint, info)``
    (:func:`irec.zoo.resolve_model`, or a cached one).
    """
    model, fingerprint, info = resolve(model_ref)
    if kind is not None and info["kind"] != kind:
        from irec.codecs.container import WrongModelError

        raise WrongModelError(
            f"the file is {kind}, but model {info['name']} is a {info['kind']} model; pass a {kind} one")
    cls = codec_class(info["kind"])
    kwargs = {}
    if refine_steps is not None:  # each codec's default_refinement: the setting whose steps change
        kwargs["refinement"] = dataclasses.replace(cls.default_refinement, steps=refine_steps)
    if overrides:  # one setting for every image (the lossy codec's default also has one for low-rate images)
        kwargs["params"] = dataclasses.replace(cls.default_params, **overrides)
    return cls(model, fingerprint, **kwargs), info
