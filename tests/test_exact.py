"""The exact arithmetic of irec.models.exact: integer sums, tabulated functions, quantized models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from irec.checkpoint import load_model, save_model
from irec.models import exact
from irec.models.exact import ACT_LIMIT, QConv, QGDN, Tables, from_fixed, to_fixed
from irec.models.exact_rvae import ExactRVAE
from irec.models.exact_vae2 import ExactTwoLevelVAE
from irec.models.quantize import as_exact
from tests.models import small_lossless, small_lossy

TABLES = Tables()


def _fixed(values) -> torch.Tensor:
    return to_fixed(torch.as_tensor(values, dtype=torch.float64))


def _int64_conv(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """The same convolution in int64 arithmetic (im2col and integer matrix product), the reference."""
    cols = F.unfold(x, w.shape[-1], padding=padding).to(torch.int64)  # (N, C*k*k, L): exact small integers
    out = w.reshape(w.shape[0], -1).to(torch.int64) @ cols
    return out.reshape(x.shape[0], w.shape[0], x.shape[2], x.shape[3])


def test_an_integer_convolution_in_float64_equals_its_int64_reference_at_the_largest_values():
    g = torch.Generator().manual_seed(0)
    conv = QConv(64, 8, 3)
    limit = exact.weight_limit(conv.fan_in, conv.bits)
    conv.weight.copy_(torch.randint(-limit, limit + 1, conv.weight.shape, generator=g).to(conv.weight.dtype))
    conv.weight[0].fill_(limit)  # one channel at the bound with every activation at its limit
    x = torch.randint(-int(ACT_LIMIT), int(ACT_LIMIT) + 1, (1, 64, 5, 6), generator=g).to(torch.float64)
    x[..., 2, 2] = ACT_LIMIT
    conv.check_bound()
    with exact.exact_kernels():
        got = F.conv2d(x, conv.weight.to(torch.float64), padding=1)
    assert torch.equal(got.to(torch.int64), _int64_conv(x, conv.weight, 1))


def test_weights_beyond_the_exact_range_are_refused():
    conv = QConv(512, 1, 3)
    conv.weight.fill_(32767)
    with pytest.raises(ValueError, match="exact range"):
        conv.check_bound()


def test_exp_is_within_its_interpolation_error_of_math_exp():
    x = torch.linspace(-30, 30, 4001, dtype=torch.float64)
    fixed = to_fixed(x)
    got = exact.exp(fixed, TABLES.exp2)
    want = torch.exp(from_fixed(fixed))
    assert float(((got - want) / want).abs().max()) < 1e-7


def test_elu_and_softplus_tables_follow_the_float_functions():
    x = _fixed(torch.linspace(-25, 25, 5001))
    elu = from_fixed(exact.elu(x, TABLES.elu))
    assert float((elu - F.elu(from_fixed(x))).abs().max()) <= 2.0 ** -15
    softplus = exact.softplus(x, TABLES.softplus)
    assert float((softplus - F.softplus(from_fixed(x))).abs().max()) < 1e-5


def test_fixed_point_activations_are_clamped_to_the_documented_range():
    assert float(_fixed([1e6]).item()) == ACT_LIMIT and float(_fixed([-1e6]).item()) == -ACT_LIMIT


def test_igdn_keeps_its_sum_exact_at_the_square_limit():
    gdn = QGDN(4)
    gdn.quantize_from(torch.full((4, 4), 0.1), torch.ones(4))
    x = torch.full((1, 4, 1, 1), ACT_LIMIT, dtype=torch.float64)
    y = gdn(x)  # squares clamp at square_limit, so the sum stays below 2^53
    assert gdn.square_limit * 4 * int(gdn.gamma.abs().max()) < 2**53 and bool(torch.isfinite(y).all())


def test_a_quantized_lossless_model_stays_close_to_its_float_model():
    model = small_lossless()
    quantized = as_exact(model, "lossless")
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    torch.manual_seed(1)
    want = model.negative_elbo(x).bpd
    torch.manual_seed(1)
    got = quantized.negative_elbo(x).bpd.to(want.dtype)  # through the exact top-down path, in float64
    assert torch.allclose(got, want, rtol=5e-3)


def test_the_exact_top_down_path_gives_the_same_bits_twice_and_at_any_batch_position():
    model = as_exact(small_lossless(), "lossless")
    z = [torch.randn(2, model.config.latent_channels, 4, 4, generator=torch.Generator().manual_seed(i))
         for i in range(model.n_levels)]

    def run(batch: slice):
        state = model.top_down_init(len(range(2)[batch]), (8, 8))
        for level in range(model.n_levels):
            p, _ = model.level_distributions(state, level)
            state = model.top_down_step(state, level, z[level][batch])
        return p.loc, p.scale, torch.from_numpy(model.pixel_params(state).probabilities())

    both, second = run(slice(0, 2)), run(slice(1, 2))
    for a, b in zip(both, second):
        assert torch.equal(a[1:], b)


def test_exact_models_are_saved_and_loaded_as_any_irec_model(tmp_path):
    for model in (as_exact(small_lossless(), "lossless"), as_exact(small_lossy(), "lossy")):
        fingerprint = save_model(model, tmp_path / "m.pt")
        loaded, loaded_fingerprint = load_model(tmp_path / "m.pt")
        assert type(loaded) is type(model) and loaded_fingerprint == fingerprint
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_the_exact_lossy_decoder_matches_the_float_twin_to_quantization_error():
    model = as_exact(small_lossy(), "lossy")
    assert isinstance(model, ExactTwoLevelVAE)
    twin = model.float_model()
    z1 = torch.randn(1, model.config.n_channels, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = model.synthesis(z1), twin.synthesis(z1).double()
        z2 = torch.randn(1, model.config.m_channels, 1, 1, generator=torch.Generator().manual_seed(1))
        p_got, p_want = model.prior_z1(z2), twin.prior_z1(z2)
    assert float((got - want).abs().max()) < 1e-3
    assert float((p_got.loc - p_want.loc).abs().max()) < 1e-3
    assert float((p_got.scale / p_want.scale - 1).abs().max()) < 1e-3


def test_an_exact_model_given_to_the_codec_is_used_as_it_is():
    model = as_exact(small_lossless(), "lossless")
    assert isinstance(model, ExactRVAE) and as_exact(model, "lossless") is model
    with pytest.raises(ValueError, match="lossy codec needs"):
        as_exact(model, "lossy")



def test_the_exact_path_gives_the_same_bits_at_one_and_at_two_threads():
    model = as_exact(small_lossy(), "lossy")
    z1 = torch.randn(1, model.config.n_channels, 6, 5, generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.no_grad():
                results.append(model.synthesis(z1))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])


def test_the_compiled_logistic_cdf_equals_the_torch_operations_bit_for_bit():
    from irec.models.exact_logistic import ExactLogistic

    g = torch.Generator().manual_seed(5)
    loc = from_fixed(_fixed(torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64) * 1.4 - 0.7))
    log_scale = from_fixed(_fixed(torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64) * 14 - 12))
    log_scale[0, 0, 0, :3] = from_fixed(_fixed([-40.0, 30.0, 0.0]))  # saturated and extreme scales
    d = ExactLogistic(loc, log_scale, TABLES)
    compiled, reference = d.cdf_table(), d.cdf_table_torch()
    assert compiled.shape == (2, 3, 5, 7, 257) and np.array_equal(compiled, reference)
    assert np.array_equal(d[1, :, 2:4].cdf_table(), reference[1, :, 2:4])
