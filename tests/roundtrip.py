"""The one round-trip assertion shared by every coder and codec test (in the style of craystack's check_codec)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from irec.coder import LatentDecoder, LatentEncoder
from irec.coder.bitstream import ByteReader, ByteWriter, SymbolReader, SymbolWriter


def assert_identical(expected: Any, got: Any) -> None:
    """Same type, dtype, shape and bits (NaN-free data)."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), type(got)
        assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.shape)
        assert torch.equal(got.cpu(), expected.cpu()), f"max abs diff {(got.cpu() - expected.cpu()).abs().max()}"
    else:
        expected, got = np.asarray(expected), np.asarray(got)
        assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.shape)
        assert np.array_equal(got, expected), f"{np.count_nonzero(got != expected)} values differ"


def assert_roundtrip(encode: Callable[[], tuple[bytes, Any]], decode: Callable[[bytes], Any]) -> bytes:
    """``encode() -> (bytes, what the decoder must return)``; decoding must reproduce it bit for bit."""
    data, expected = encode()
    assert isinstance(data, bytes) and len(data) > 0
    assert_identical(expected, decode(data))
    return data


def latent_streams(encoder: LatentEncoder) -> tuple[bytes, bytes]:
    """The header bytes and the ANS payload of an encoder that has coded its levels (what a container stores)."""
    header, symbols = ByteWriter(), SymbolWriter()
    encoder.write_header(header)
    encoder.write_symbols(symbols)
    return header.getvalue(), symbols.finish()[0]


def latent_decoder(header: bytes, payload: bytes, shapes: list) -> LatentDecoder:
    """A decoder of ``latent_streams``' output, ready for ``decode_level`` (levels of the given shapes)."""
    decoder = LatentDecoder(ByteReader(header), shapes=shapes)
    decoder.attach(SymbolReader(payload))
    return decoder


def decode_in_fresh_process(script: str, inputs: dict, tmp: Path, threads: int = 1) -> Any:
    """Run ``script`` (which reads ``inputs`` from INPUT and torch.saves its result to OUTPUT) in a new
    interpreter limited to ``threads`` threads; return what it saved."""
    src, dst = tmp / "inputs.pt", tmp / "output.pt"
    torch.save(inputs, src)
    prologue = (
        "import sys, torch\n"
        f"torch.set_num_threads({threads})\n"
        "INPUT, OUTPUT = sys.argv[1], sys.argv[2]\n"
        "inputs = torch.load(INPUT, weights_only=False)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    subprocess.run([sys.executable, "-c", prologue + script, str(src), str(dst)], check=True, env=env, timeout=600)
    return torch.load(dst, weights_only=False)
