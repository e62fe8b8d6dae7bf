"""The lossy iREC codec (irec.codecs.lossy): exact round trips, fresh processes, bad files, rate accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from irec.checkpoint import save_model, weights_fingerprint
from irec.codecs.container import PIN_EXACT, PIN_ONE_THREAD, WrongModelError, peek_header
from irec.codecs.encoding import HEADER, TAIL
from irec.models.exact_vae2 import ExactTwoLevelVAE
from irec.codecs.lossy import LEVELS, LossyCodec
from irec.codecs.refine import refine_posterior
from irec.coder import CorruptStreamError
from irec.models.vae2 import TwoLevelVAE
from irec.settings import LOSSY_DEFAULT, LOSSY_LOW_RATE, NO_REFINEMENT, PAPER_LOSSY, Refinement
from tests.models import small_lossy
from tests.roundtrip import assert_identical, assert_roundtrip, decode_in_fresh_process

SIZES = [(64, 64), (70, 100)]


@pytest.fixture(scope="module")
def model() -> TwoLevelVAE:
    return small_lossy(seed=0)


@pytest.fixture(scope="module")
def codec(model) -> LossyCodec:
    return LossyCodec(model, weights_fingerprint(model.state_dict()), PAPER_LOSSY)


def _image(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth random image (a few gradients plus noise), so reconstructions differ between seeds."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in rng.uniform(0, 3, 3)], axis=-1)
    return np.clip(127.5 + 100 * base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", SIZES)
def test_decoding_gives_exactly_the_encoders_reconstruction_at_the_true_size(codec, size):
    image = _image(size)
    encoding = codec.encode(image)
    data = assert_roundtrip(lambda: (encoding.data, encoding.image), codec.decompress)
    assert codec.decompress(data).shape == image.shape
    header = peek_header(data)
    assert (header.kind, header.height, header.width) == ("lossy", *size)
    assert header.pinned & PIN_ONE_THREAD and header.pinned & PIN_EXACT


def test_a_fresh_single_thread_process_decodes_a_two_thread_encoding_exactly(model, codec, tmp_path):
    path = tmp_path / "model.pt"
    fingerprint = save_model(model, path)
    image = _image((70, 100), seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        encoding = codec.encode(image)
    finally:
        torch.set_num_threads(threads)
    script = (
        "from irec.checkpoint import load_model\n"
        "from irec.codecs.lossy import LossyCodec\n"
        "model, fingerprint = load_model(inputs['path'])\n"
        "torch.save(LossyCodec(model, fingerprint).decompress(inputs['data']), OUTPUT)\n"
    )
    decoded = decode_in_fresh_process(script, {"path": str(path), "data": encoding.data}, tmp_path, threads=1)
    assert fingerprint == codec.fingerprint
    assert_identical(encoding.image, decoded)


def test_the_thread_count_and_training_mode_are_restored_after_coding(model, codec):
    threads = torch.get_num_threads()
    model.train()
    try:
        codec.decompress(codec.compress(_image((64, 64))))
        assert model.training and torch.get_num_threads() == threads
    finally:
        model.eval()


@pytest.mark.parametrize("cut", [1, 4, 9])
def test_decoding_a_truncated_file_raises_a_clear_error(codec, cut):
    data = codec.compress(_image((64, 64)))
    with pytest.raises(CorruptStreamError):
        codec.decompress(data[:-cut])


def test_decoding_a_corrupted_file_raises_a_clear_error(codec):
    data = bytearray(codec.compress(_image((64, 64))))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(CorruptStreamError, match="checksum"):
        codec.decompress(bytes(data))


def test_decoding_with_another_model_raises_wrong_model_error(codec):
    other = small_lossy(seed=1)
    data = codec.compress(_image((64, 64)))
    with pytest.raises(WrongModelError, match="fingerprint"):
        LossyCodec(other, weights_fingerprint(other.state_dict())).decompress(data)


def test_the_encoding_splits_the_file_bits_exactly_into_header_z2_z1_and_tail(codec):
    image = _image((70, 100), seed=1)
    encoding = codec.encode(image)
    bits, details = encoding.bits, encoding.details
    assert list(bits) == [HEADER, *LEVELS, TAIL] and encoding.levels == LEVELS == ("z2", "z1")
    assert sum(bits.values()) == pytest.approx(8 * encoding.n_bytes, abs=1e-9)
    assert encoding.bpp == pytest.approx(8 * encoding.n_bytes / (70 * 100)) and encoding.n_pixels == 70 * 100
    assert all(bits[part] > 0 for part in (HEADER, *LEVELS)) and bits[TAIL] >= 0
    assert list(encoding.ideal_bits) == list(LEVELS)
    assert encoding.ideal_bpp == pytest.approx(sum(encoding.ideal_bits.values()) / (70 * 100))
    assert set(details["kl_coded_bits"]) == set(details["log_ratio_minus_kl_nats"]) == set(LEVELS)
    assert details["x_float"].shape == image.shape and details["x_float"].dtype == np.float32
    assert np.array_equal(np.round(details["x_float"] * 255).astype(np.uint8), encoding.image)
    assert details["low_rate"] is False and encoding.params == PAPER_LOSSY and encoding.encode_seconds > 0
    assert not encoding.image.flags.writeable  # what the decoder gives, fixed once encoded


def test_a_posterior_sample_is_reconstructed_at_the_true_size_and_the_codec_measures_no_quality(codec):
    image = _image((70, 100), seed=1)
    sample, x_float = codec.posterior_sample(image)
    assert sample.shape == x_float.shape == image.shape and sample.dtype == np.uint8
    assert np.array_equal(codec.posterior_sample(image)[0], sample)  # seeded by params.seed
    assert not any(hasattr(codec, name) for name in ("report", "compress_with_report", "last_report"))


def test_the_decoder_takes_the_seed_and_the_blocks_from_the_file_not_from_its_own_params(model, codec):
    fingerprint = weights_fingerprint(model.state_dict())
    encoding = LossyCodec(model, fingerprint, PAPER_LOSSY.with_(seed=7)).encode(_image((64, 64)))
    assert encoding.params.seed == 7
    assert_identical(encoding.image, codec.decompress(encoding.data))
    # the codec's default (adaptive blocks) reads fixed blocks, and the paper's setting reads adaptive ones
    assert LOSSY_DEFAULT.steps_per_block > 0
    assert_identical(encoding.image, LossyCodec(model, fingerprint).decompress(encoding.data))
    adaptive = LossyCodec(model, fingerprint, LOSSY_DEFAULT.with_(steps_per_block=0.5, block_size=999))
    encoding = adaptive.encode(_image((64, 64)))
    assert_identical(encoding.image, codec.decompress(encoding.data))


def test_an_image_cheap_enough_to_cap_the_blocks_is_coded_with_the_low_rate_setting_which_any_decoder_reads(model):
    fingerprint = weights_fingerprint(model.state_dict())
    image, low = _image((64, 64), seed=4), PAPER_LOSSY.with_(kl_per_step=2.0, block_size=64, steps_per_block=4.0)
    # blocks of at most 1 dimension and 1000 steps: any image's z1 would cap them (KL below 3,000 nats a dimension)
    capped = LossyCodec(model, fingerprint, PAPER_LOSSY.with_(block_size=1, steps_per_block=1000.0),
                        low_rate_params=low)
    encoding = capped.encode(image)
    assert encoding.params == low and encoding.details["low_rate"]
    assert_identical(encoding.image, capped.decompress(encoding.data))
    assert_identical(encoding.image, LossyCodec(model, fingerprint, PAPER_LOSSY).decompress(encoding.data))
    # blocks of a million dimensions for 1e-6 steps are never capped, and fixed blocks never switch
    for params in (PAPER_LOSSY.with_(block_size=10**6, steps_per_block=1e-6), PAPER_LOSSY.with_(block_size=1)):
        codec = LossyCodec(model, fingerprint, params, low_rate_params=low)
        encoding = codec.encode(image)
        assert encoding.params == params and not encoding.details["low_rate"]
    default = LossyCodec(model, fingerprint)
    assert (default.params, default.low_rate_params) == (LOSSY_DEFAULT, LOSSY_LOW_RATE)
    assert LossyCodec(model, fingerprint, LOSSY_DEFAULT).low_rate_params is None


@pytest.mark.parametrize("image_seed", [0, 1, 2])
def test_choosing_the_final_sample_by_mse_never_reconstructs_worse_than_best_q(model, codec, image_seed):
    image = _image((64, 128), seed=image_seed)
    by_mse = LossyCodec(model, codec.fingerprint, PAPER_LOSSY, final="mse", n_seeds=3)
    chosen = by_mse.encode(image)

    def mse(x: np.ndarray) -> float:
        return float(np.mean((x.astype(np.float64) - image) ** 2))

    assert mse(chosen.image) <= mse(codec.encode(image).image)
    assert chosen.params.seed in (42, 43, 44)
    assert_identical(chosen.image, codec.decompress(chosen.data))


@pytest.mark.parametrize("image_seed", [0, 3])
def test_choosing_among_the_final_beams_by_mse_keeps_the_rate_and_never_reconstructs_worse(model, codec, image_seed):
    image = _image((64, 128), seed=image_seed)
    by_beams = LossyCodec(model, codec.fingerprint, PAPER_LOSSY, final="beams")
    chosen, default = by_beams.encode(image), codec.encode(image)

    def mse(x: np.ndarray) -> float:
        return float(np.mean((x.astype(np.float64) - image) ** 2))

    assert mse(chosen.image) <= mse(default.image)
    assert chosen.details["n_steps"] == default.details["n_steps"]  # same indices, same rate
    assert abs(len(chosen.data) - len(default.data)) <= 8
    assert_identical(chosen.image, codec.decompress(chosen.data))


def test_choosing_the_final_sample_by_rd_loss_never_costs_more_than_best_q(model, codec):
    image = _image((64, 128), seed=4)
    by_rd = LossyCodec(model, codec.fingerprint, PAPER_LOSSY, final="rd", n_seeds=3)
    chosen, default = by_rd.encode(image), codec.encode(image)
    beta = model.config.beta
    mse = [float(np.mean((e.image.astype(np.float64) - image) ** 2)) for e in (chosen, default)]
    loss = [beta * m + 8 * len(e.data) / image[..., 0].size for m, e in zip(mse, (chosen, default))]
    assert loss[0] <= loss[1]
    assert by_rd.cost(image, chosen) == pytest.approx(loss[0] / beta)
    assert_identical(chosen.image, codec.decompress(chosen.data))


def test_bad_arguments_raise_clear_errors(model, codec):
    fingerprint = codec.fingerprint
    with pytest.raises(ValueError, match="uint8"):
        codec.compress(np.zeros((64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="hex"):
        LossyCodec(model, "not-hex")
    with pytest.raises(ValueError, match="final"):
        LossyCodec(model, fingerprint, final="best-psnr")
    with pytest.raises(ValueError, match="pfr"):
        LossyCodec(model, fingerprint, PAPER_LOSSY.with_(sampler="pfr"))
    with pytest.raises(ValueError, match="MSE"):
        LossyCodec(small_lossy(distortion="ms_ssim"), fingerprint, final="rd")
    with pytest.raises(ValueError, match="TwoLevelVAE"):
        LossyCodec(torch.nn.Linear(2, 2), fingerprint)
    with pytest.raises(ValueError, match="seed"):
        LossyCodec(model, fingerprint, PAPER_LOSSY, low_rate_params=PAPER_LOSSY.with_(seed=1))
    with pytest.raises(ValueError, match="goes with params"):
        LossyCodec(model, fingerprint, low_rate_params=PAPER_LOSSY)


def test_the_refinement_steps_downhill_on_its_objective_and_leaves_the_scales(model):
    x = torch.from_numpy(_image((64, 64)).transpose(2, 0, 1).copy()).unsqueeze(0).float() / 255.0
    refinement = Refinement(steps=4, step_size=0.05, kl_weight=1.5)
    with torch.no_grad():
        enc = model.analysis(x)
        p1 = model.prior_z1(model.posterior_z2(enc).loc)
        q1 = model.posterior_z1(enc, p1)

    def objective(loc):
        with torch.no_grad():
            distortion = model.distortion(x, model.synthesis(loc)) * model.config.beta * 64 * 64 * math.log(2.0)
            return float(distortion + refinement.kl_weight * (((loc - p1.loc) / p1.scale) ** 2).sum() / 2)

    refined = refine_posterior(model, x, q1, p1, refinement)
    assert objective(refined.loc) < objective(q1.loc)
    assert torch.equal(refined.scale, q1.scale) and not torch.equal(refined.loc, q1.loc)
    assert refine_posterior(model, x, q1, p1, NO_REFINEMENT) is q1


def test_an_unrefined_encoding_codes_the_amortized_posterior_and_a_refined_one_reports_both_rates(model):
    fingerprint = weights_fingerprint(model.state_dict())
    image = _image((64, 64), seed=3)
    plain = LossyCodec(model, fingerprint, PAPER_LOSSY, refinement=NO_REFINEMENT)
    refined = LossyCodec(model, fingerprint, PAPER_LOSSY, refinement=Refinement(steps=2, step_size=0.05))
    unrefined = plain.encode(image)
    assert unrefined.details["kl_coded_bits"] == pytest.approx(unrefined.ideal_bits)
    encoding = refined.encode(image)
    assert_identical(encoding.image, refined.decompress(encoding.data))
    assert encoding.ideal_bits == pytest.approx(unrefined.ideal_bits)  # the model's posterior, either way
    assert encoding.details["kl_coded_bits"]["z1"] != pytest.approx(encoding.ideal_bits["z1"])
    assert encoding.data != unrefined.data
    assert_identical(plain.decompress(encoding.data), refined.decompress(encoding.data))  # the decoder needs none


def test_a_refinement_with_negative_steps_or_step_size_is_rejected():
    with pytest.raises(ValueError, match="steps"):
        Refinement(steps=-1)
    with pytest.raises(ValueError, match="step_size"):
        Refinement(step_size=float("nan"))


def test_a_float64_model_in_training_mode_is_coded_as_an_exact_copy_and_the_callers_model_is_untouched(codec):
    model = small_lossy(seed=0).double().train()
    copy = LossyCodec(model, codec.fingerprint, PAPER_LOSSY)
    assert isinstance(copy.model, ExactTwoLevelVAE) and not copy.model.training
    image = _image((64, 64))
    assert copy.compress(image) == codec.compress(image)  # the same weights in float32: the same file
    assert model.training and next(model.parameters()).dtype == torch.float64
