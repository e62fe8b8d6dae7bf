"""The lossless iREC codec (paper, section 3; irec-method.md sections 2 and 4): bit-exact round trips, real files."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from irec.checkpoint import load_model, save_model
from irec.codecs.container import WrongModelError, pinned
from irec.codecs.encoding import HEADER, PIXELS, TAIL
from irec.codecs.lossless import LosslessCodec
from irec.coder import CorruptStreamError
from irec.models.exact_rvae import ExactRVAE
from irec.models.rvae import RVAE
from irec.settings import LOSSLESS_DEFAULT
from tests.models import small_lossless
from tests.roundtrip import assert_identical, assert_roundtrip, decode_in_fresh_process


def make_model(seed: int) -> RVAE:
    """An untrained smoke RVAE whose inference biases are perturbed, so that q differs from p (real latent bits)."""
    model = small_lossless(seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        for layer in model.up:
            layer.conv1.bias.add_(0.5 * torch.randn_like(layer.conv1.bias))
    return model.eval()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "smoke.pt"
    save_model(make_model(0), path)
    return path


@pytest.fixture(scope="module")
def codec(saved_model) -> LosslessCodec:
    model, fingerprint = load_model(saved_model)
    return LosslessCodec(model, fingerprint)


@pytest.fixture(scope="module")
def cifar(shared_data) -> np.ndarray:
    return np.load(shared_data / "cifar10" / "cifar10_test.npz")["images"][:2]


def test_a_32x32_image_round_trips_bit_exactly(codec, cifar):
    assert_roundtrip(lambda: (codec.compress(cifar[0]), cifar[0]), codec.decompress)
    encoding = codec.encode(cifar[0])
    assert sum(encoding.ideal_bits[level] for level in encoding.levels) > 100  # the latents carry real information


def test_an_odd_sized_image_round_trips_at_its_true_size(codec, cifar):
    image = np.ascontiguousarray(cifar[1][:13, :21])
    encoding = codec.encode(image)
    data = assert_roundtrip(lambda: (encoding.data, image), codec.decompress)
    assert encoding.n_pixels == 13 * 21 and encoding.n_bytes == len(data)
    assert encoding.bpd == pytest.approx(8 * len(data) / (13 * 21 * 3))


def test_the_encodings_parts_add_up_to_the_file_and_sit_near_the_ideal_rate(codec, cifar):
    encoding = codec.encode(cifar[0])
    bits, ideal = encoding.bits, encoding.ideal_bits
    assert sum(bits.values()) == pytest.approx(8 * encoding.n_bytes, abs=1e-6)
    assert list(bits) == [HEADER, *encoding.levels, PIXELS, TAIL] and bits[TAIL] >= 0 and bits[HEADER] > 0
    assert encoding.levels == codec.levels == tuple(f"level {i}" for i in range(codec.model.n_levels))
    assert list(ideal) == [*encoding.levels, PIXELS]
    assert bits[PIXELS] == pytest.approx(ideal[PIXELS], rel=0.01)
    assert encoding.bpd == pytest.approx(8 * encoding.n_bytes / (3 * 32 * 32))
    assert encoding.bpd > encoding.ideal_bpd
    assert encoding.details["negative_elbo_bpd"] > 0 and encoding.encode_seconds > 0
    assert encoding.params == codec.params


def test_the_codec_keeps_no_state_between_images_and_leaves_the_callers_model_as_it_was(cifar):
    model = make_model(0).double().train()  # float64, in training mode: the codec codes an exact (integer) copy
    codec = LosslessCodec(model, "ab" * 32)
    assert isinstance(codec.model, ExactRVAE) and not codec.model.training
    first = codec.compress(cifar[0])
    codec.compress(cifar[1])
    assert codec.compress(cifar[0]) == first and codec.decompress(first).shape == cifar[0].shape
    assert model.training and next(model.parameters()).dtype == torch.float64
    assert not any(hasattr(codec, name) for name in ("last_report", "last_decode_seconds", "compress_with_report"))


def test_a_file_written_with_two_threads_decodes_identically_in_a_fresh_single_thread_process(
    codec, saved_model, cifar, tmp_path
):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = codec.compress(cifar[0])
    finally:
        torch.set_num_threads(previous)
    script = (
        "from irec.checkpoint import load_model\n"
        "from irec.codecs.lossless import LosslessCodec\n"
        "model, fingerprint = load_model(inputs['model'])\n"
        "torch.save(LosslessCodec(model, fingerprint).decompress(inputs['data']), OUTPUT)\n"
    )
    got = decode_in_fresh_process(script, {"model": str(saved_model), "data": data}, tmp_path, threads=1)
    assert_identical(cifar[0], got)


def test_the_same_image_always_gives_the_same_bytes(codec, cifar):
    assert codec.compress(cifar[1]) == codec.compress(cifar[1])


@pytest.mark.parametrize("damage", ["truncate", "flip a payload byte", "drop the checksum", "empty"])
def test_damaged_files_raise_a_corrupt_stream_error(codec, cifar, damage):
    data = bytearray(codec.compress(cifar[0]))
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip a payload byte":
        data[len(data) // 2] ^= 0x40
    elif damage == "drop the checksum":
        data = data[:-4]
    else:
        data = bytearray()
    with pytest.raises(CorruptStreamError):
        codec.decompress(bytes(data))


def test_decoding_with_another_model_raises_wrong_model_error(codec, cifar, tmp_path):
    save_model(make_model(1), tmp_path / "other.pt")
    other = LosslessCodec(*load_model(tmp_path / "other.pt"))
    with pytest.raises(WrongModelError, match="fingerprint"):
        other.decompress(codec.compress(cifar[0]))


def test_coder_settings_reach_the_file_and_still_round_trip(codec, cifar):
    params = LOSSLESS_DEFAULT.with_(n_beams=4, extra_samples=1.0, block_size=300, seed=7)
    small = LosslessCodec(codec.model, codec.fingerprint, params)
    data = assert_roundtrip(lambda: (small.compress(cifar[1]), cifar[1]), small.decompress)
    assert data != codec.compress(cifar[1]) and small.encode(cifar[1]).params == params


@pytest.mark.parametrize("image", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3))])
def test_images_that_are_not_8bit_rgb_are_refused_with_a_clear_error(codec, image):
    with pytest.raises(ValueError, match="uint8 RGB"):
        codec.compress(image)


def test_a_non_rvae_model_and_a_fingerprint_that_is_not_hex_are_refused(codec):
    with pytest.raises(ValueError, match="RVAE"):
        LosslessCodec(torch.nn.Linear(2, 2), codec.fingerprint)
    with pytest.raises(ValueError, match="hex"):
        LosslessCodec(codec.model, "not-hex")


def test_pinning_restores_the_thread_count_and_the_determinism_flag():
    previous, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with pinned():
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        assert not torch.is_grad_enabled()
    assert torch.get_num_threads() == previous
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_pinning_sets_the_determinism_flag_without_importing_torch_compile_in_a_fresh_process():
    code = ("import sys, torch; from irec.codecs.container import pinned\n"
            "with pinned():\n    assert torch.are_deterministic_algorithms_enabled()\n"
            "print('torch._inductor' in sys.modules, 'torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]  # their import took 3 s of every irec command's start-up


def test_a_decode_that_gives_other_pixels_than_the_encoders_raises_a_clear_error_instead_of_returning_them():
    from irec.codecs.container import MAGIC, PIXEL_CHECK_BYTES

    codec = LosslessCodec(small_lossless(0), "ab" * 32)
    image = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    data = bytearray(codec.compress(image))
    at = len(MAGIC) + 1 + 1 + 4 + 1 + 1  # magic, version, kind, fingerprint, height 8, width 8: the pixel check
    data[at:at + PIXEL_CHECK_BYTES] = bytes(b ^ 0xFF for b in data[at:at + PIXEL_CHECK_BYTES])
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")  # intact bytes, as another machine reads them
    with pytest.raises(CorruptStreamError, match="fail the file.s pixel check.*model is not the encoder.s"):
        codec.decompress(bytes(data))


def test_the_refinement_lowers_its_objective_under_fixed_noise_and_is_off_with_zero_steps(codec, cifar):
    from irec.codecs.lossless import _padded_tensor
    from irec.codecs.refine import _lossless_objective, refine_levels
    from irec.settings import LosslessRefinement

    twin, x = codec.model.float_model(), _padded_tensor(cifar[0])
    up = codec.model.bottom_up(x)
    refinement = LosslessRefinement(steps=5, lr=0.01)
    refined = refine_levels(twin, x, up, refinement)

    def objective(terms) -> float:
        with pinned(twin):
            return float(_lossless_objective(twin, x, terms, refinement.kl_weight, torch.Generator().manual_seed(1)))

    assert refined is not up and objective(refined) < objective(up)
    assert refine_levels(twin, x, up, LosslessRefinement(steps=0)) is up


def test_a_refined_file_decodes_bit_exactly_with_a_codec_that_does_not_refine(saved_model, codec, cifar):
    from irec.settings import LosslessRefinement

    model, fingerprint = load_model(saved_model)
    refining = LosslessCodec(model, fingerprint, refinement=LosslessRefinement(steps=5, lr=0.01))
    encoding = refining.encode(cifar[0])
    plain = codec.encode(cifar[0])
    assert encoding.data != plain.data  # another posterior was coded
    assert_identical(cifar[0], codec.decompress(encoding.data))  # the decoder needs no refinement
    assert refining.compress(cifar[0]) == encoding.data  # seeded: the same file every time
    assert encoding.details["negative_elbo_bpd"] == plain.details["negative_elbo_bpd"]  # the model's own -ELBO


def test_a_lossless_refinement_with_negative_steps_or_learning_rate_is_rejected():
    from irec.settings import LosslessRefinement

    with pytest.raises(ValueError, match="steps must be 0"):
        LosslessRefinement(steps=-1)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        LosslessRefinement(lr=float("nan"))
