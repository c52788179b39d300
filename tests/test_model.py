"""The VAR predictor's parts, on a tiny configuration (fast, untrained unless stated)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from napari_var_emitter.errors import InputError
from napari_var_emitter.model.checkpoint import load_model, save_model
from napari_var_emitter.model.config import ModelConfig
from napari_var_emitter.model.head import BACKGROUND, BACKGROUND_SCALE, head_channels, head_maps
from napari_var_emitter.predict.postprocess import find_detections, maps_to_table
from napari_var_emitter.model.predictor import VAREmitterPredictor
from napari_var_emitter.model.quantizer import ResidualQuantizer
from napari_var_emitter.model.targets import map_to_photons, render_target
from napari_var_emitter.model.transformer import attend_windows, token_levels
from napari_var_emitter.model.windows import attention_mask, local_scales
from napari_var_emitter.model.head import DX, DY, LOGIT, PHOTONS, SIG_DX, SIG_DY
from napari_var_emitter.train.losses import ProgressiveScaleWeights, mixture_localisation_loss

TINY = ModelConfig(vocab_size=64, cvq=8, embed_dim=32, num_heads=2, num_layers=2, image_channels=8,
                   tokenizer_channels=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = VAREmitterPredictor(TINY).eval()
    with torch.no_grad():  # non-trivial weights everywhere (AdaLN starts at zero)
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.1)
    return m


def test_config_strides_and_grids():
    config = ModelConfig()
    assert config.token_strides_px == (32, 16, 8, 4)
    assert config.grids(160, 160) == [(5, 5), (10, 10), (20, 20), (40, 40)]
    assert config.grids(64, 96) == [(2, 3), (4, 6), (8, 12), (16, 24)]
    assert ModelConfig(patch_nums=(10, 20, 40, 80)).token_strides_px == (16, 8, 4, 2)
    with pytest.raises(InputError, match="multiple of 32"):
        config.grids(100, 100)
    with pytest.raises(InputError, match="patch_nums"):
        ModelConfig(patch_nums=(3, 10, 20, 40))


def test_block_causal_mask():
    grids = [(1, 1), (2, 2), (4, 4)]
    mask = attention_mask(grids, (32, 16, 8), 0, token_levels([1, 4, 16]))
    assert mask.shape == (21, 21)
    assert mask[0, :1].all() and not mask[0, 1:].any()  # coarsest sees only itself
    assert mask[1:5, :5].all() and not mask[1:5, 5:].any()  # scale 1 sees 0 and 1
    assert mask[5:].all()  # finest sees everything


def test_local_windows_mask():
    """64 x 32 px tile, strides (32, 16, 8, 4), windows of 32 px: scales 2 and 3 are local, two
    windows side by side."""
    strides, grids = (32, 16, 8, 4), [(1, 2), (2, 4), (4, 8), (8, 16)]
    assert local_scales(strides, 32) == (False, False, True, True) and local_scales(strides, 0) == (False,) * 4
    level = token_levels([h * w for h, w in grids])
    mask = attention_mask(grids, strides, 32, level)
    start = [0, 2, 10, 42]
    fine = start[3] + torch.arange(128).view(8, 16)  # scale 3 tokens, raster order
    left, right = fine[:, :8].flatten(), fine[:, 8:].flatten()
    assert mask[left][:, :start[2]].all()  # every global token is seen
    assert mask[left][:, left].all() and not mask[left][:, right].any()  # own window only
    mid = start[2] + torch.arange(32).view(4, 8)  # scale 2, seen only from its own window
    assert mask[left][:, mid[:, :4].flatten()].all() and not mask[left][:, mid[:, 4:].flatten()].any()
    assert not mask[:start[2], start[2]:].any()  # block-causal still


def test_window_attention_is_each_windows_own():
    """attend_windows joins the windows to the heads (PyTorch's fused kernels take 4-D inputs):
    each window attends to its own keys only."""
    torch.manual_seed(2)
    q = torch.randn(2, 4, 16, 64, 24)  # (batch, heads, windows, queries, channels)
    k, v = torch.randn(2, 2, 4, 16, 400, 24)  # e.g. 336 global keys + 64 of the window
    expected = torch.softmax(q @ k.transpose(-1, -2) / 24**0.5, dim=-1) @ v
    torch.testing.assert_close(attend_windows(q, k, v), expected, atol=1e-5, rtol=1e-5)


def test_residual_quantisation(model):
    torch.manual_seed(1)
    grids = TINY.grids(64, 64)
    # identity Phi and a codebook holding the zero vector: the finest scale (per-cell nearest
    # code, no resampling) can only lower the residual
    quantizer = ResidualQuantizer(TINY.vocab_size, TINY.cvq, len(grids), quant_resi=0.0)
    with torch.no_grad():
        quantizer.codebook.weight.copy_(torch.randn(TINY.vocab_size, TINY.cvq) * 0.5)
        quantizer.codebook.weight[0] = 0
    f = torch.randn(2, TINY.cvq, 16, 16)
    idx = quantizer.tokens(f, grids)
    assert [tuple(i.shape[1:]) for i in idx] == grids
    f_hats = quantizer.f_hats(idx, (16, 16))
    errors = [(f - fh).square().sum().item() for fh in f_hats]
    assert errors[-1] <= errors[-2] and errors[-1] < f.square().sum().item()
    # inference's next_input accumulates exactly like f_hats (the trained model's Phi too)
    trained = model.tokenizer.quantizer
    idx = trained.tokens(f, grids)
    f_hat = torch.zeros_like(f)
    for si in range(len(grids)):
        f_hat, nxt = trained.next_input(si, f_hat, idx[si], grids)
        if nxt is not None:
            assert nxt.shape == (2, grids[si + 1][0] * grids[si + 1][1], TINY.cvq)
    assert torch.allclose(f_hat, trained.f_hats(idx, (16, 16))[-1])


@pytest.mark.parametrize("window_px", [0, 32])
def test_kv_cache_generation_equals_teacher_forcing(model, window_px):
    """Scale-by-scale generation with the cache (and, with windows, attention window by window)
    is the teacher-forced pass under the training mask."""
    if window_px:
        torch.manual_seed(5)
        model = VAREmitterPredictor(dataclasses.replace(TINY, window_px=window_px)).eval()
    x = torch.rand(2, 1, 96, 128) * 200 + 30  # 3 x 4 windows of 32 px
    quantizer = model.tokenizer.quantizer
    seen, original = [], quantizer.next_input

    def spy(si, f_hat, idx, grids):
        seen.append(idx.clone())
        return original(si, f_hat, idx, grids)

    quantizer.next_input = spy
    try:
        probs_g, head_g = model.generate(x)
    finally:
        quantizer.next_input = original
    with torch.no_grad():
        logits, probs_t, head_t = model(x, seen, TINY.grids(96, 128))
    predicted = model._split(logits.argmax(-1), TINY.grids(96, 128))
    assert all(torch.equal(a, b) for a, b in zip(predicted, seen))
    assert torch.allclose(head_g, head_t, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(probs_g, probs_t))


def test_generation_is_deterministic_and_sampling_varies(model):
    x = torch.rand(1, 1, 64, 64) * 200 + 30
    a, b = model.generate(x)[1], model.generate(x)[1]
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(0)
    sampled = [model.generate(x, temperature=1.0, generator=g)[1] for _ in range(2)]
    assert not torch.equal(sampled[0], sampled[1])


def test_any_tile_size_and_scale_maps(model):
    probs, head = model.generate(torch.rand(1, 1, 96, 160) * 100)
    assert [tuple(p.shape[-2:]) for p in probs] == TINY.grids(96, 160)
    assert head.shape[-2:] == (192, 320)
    assert all(((p >= 0) & (p <= 1)).all() for p in probs)



def test_a_u_net_encoder_keeps_the_camera_grid_at_any_tile_size_and_round_trips(tmp_path):
    """encoder_levels 2: image features on the camera grid for any tile (sides that do not halve
    evenly too); the file loads back to the same outputs."""
    torch.manual_seed(0)
    unet = VAREmitterPredictor(dataclasses.replace(TINY, var_prior=False, encoder_levels=2)).eval()
    for h, w in [(64, 64), (96, 160), (37, 50)]:
        assert unet.encode_image(torch.rand(2, 1, h, w) * 100)[1].shape == (2, TINY.image_channels, h, w)
    path = tmp_path / "unet.safetensors"
    save_model(path, unet, {})
    loaded, _ = load_model(path)
    tile = torch.rand(1, 1, 64, 96) * 100
    assert loaded.config.encoder_levels == 2
    assert torch.equal(loaded.generate(tile)[1], unet.generate(tile)[1])


def test_refinement_scale_repeats_the_finest_grid():
    """patch_nums may repeat the finest scale: a second residual step on the same grid."""
    config = ModelConfig(**{**TINY.to_dict(), "patch_nums": (5, 10, 20, 40, 40)})
    assert config.token_strides_px == (32, 16, 8, 4, 4)
    refined = VAREmitterPredictor(config).eval()
    probs, head = refined.generate(torch.rand(2, 1, 64, 64) * 100)
    assert [tuple(p.shape[-2:]) for p in probs] == [(2, 2), (4, 4), (8, 8), (16, 16), (16, 16)]
    assert head.shape == (2, 8, 128, 128)

def test_target_rendering_and_decoding_round_trip():
    x_px, y_px = np.array([10.26, 40.9]), np.array([5.5, 60.01])
    target = render_target(x_px, y_px, np.array([2000.0, 500.0]), np.zeros(2), (64, 64), 2, False, dense=True)
    assert target[0].sum() == 2 and target[0, 11, 20] == 1 and target[0, 120, 81] == 1
    maps = {"prob": torch.from_numpy(target[None, 0]), "dx": torch.from_numpy(target[None, 1]),
            "dy": torch.from_numpy(target[None, 2]), "photons": torch.from_numpy(target[None, 3])}
    table = maps_to_table(maps, 0.5, cell_nm=50.0, frames=[7])
    table = table.sort_values("x_nm", ignore_index=True)
    np.testing.assert_allclose(table["x_nm"], x_px * 100, atol=1e-3)
    np.testing.assert_allclose(table["y_nm"], y_px * 100, atol=1e-3)
    np.testing.assert_allclose(table["photons"], [2000, 500], rtol=1e-5)
    assert (table["frame"] == 7).all()
    assert map_to_photons(target[3, 11, 20]) == pytest.approx(2000)
    assert map_to_photons(-0.01) == 0.0  # a head's value under that of 0 photons: none, never negative


def test_offsets_fused_over_neighbours_by_precision():
    x_px, y_px = 10.3, 20.8
    target = torch.from_numpy(render_target(np.array([x_px]), np.array([y_px]), np.array([1000.0]), np.zeros(1),
                                            (32, 32), 2, False, dense=True))[None]
    occupied = target[:, :1]
    prob = (0.1 * torch.nn.functional.max_pool2d(occupied, 3, 1, 1) + 0.4 * occupied)[:, 0]  # neighbours see it too
    maps = {"prob": prob, "dx": target[:, 1].clone(), "dy": target[:, 2], "photons": target[:, 3],
            "sigma_dx": torch.ones_like(prob), "sigma_dy": torch.ones_like(prob)}
    row, col = int(y_px * 2), int(x_px * 2)

    def x_error_nm(bad_sigma):
        maps["sigma_dx"][0, row, col + 1] = maps["sigma_dy"][0, row, col + 1] = bad_sigma
        table = maps_to_table(maps, 0.5, cell_nm=50.0, frames=[0])
        assert len(table) == 1 and table["y_nm"].iloc[0] == pytest.approx(y_px * 100, abs=1e-3)
        return abs(table["x_nm"].iloc[0] - x_px * 100)

    assert x_error_nm(1.0) < 1e-3  # every neighbour agrees: exact
    maps["dx"][0, row, col + 1] += 0.5  # one neighbour is 25 nm off
    assert x_error_nm(1.0) > 1.0  # ... and counts fully when it claims the same precision
    assert x_error_nm(10.0) < 0.05  # ... and hardly at all when it says it is 10x less sure


def test_probability_integration_in_detections():
    prob = torch.zeros(1, 8, 8)
    prob[0, 3, 3], prob[0, 3, 4] = 0.3, 0.28  # one emitter split over two cells
    b, r, c, p = find_detections(prob, threshold=0.5)
    assert (r.tolist(), c.tolist()) == ([3], [3]) and p.item() == pytest.approx(0.58)
    assert len(find_detections(prob, threshold=0.5, occupied=0.5)[0]) == 1  # neither cell is occupied itself


def test_maxima_pointing_at_one_emitter_are_one_detection_and_a_close_pair_stays_two():
    """Two maxima two cells apart whose offsets place their emitter within one cell (50 nm) of
    each other are one row at the probability-weighted position; two emitters 150 nm apart stay
    two rows."""
    prob, dx, dy = torch.zeros(1, 16, 16), torch.zeros(1, 16, 16), torch.zeros(1, 16, 16)
    prob[0, 5, 5], prob[0, 5, 7] = 0.6, 0.4  # both point at x = 6.6 cells (+- 0.1)
    dx[0, 5, 5], dx[0, 5, 7] = 1.0, -0.8
    prob[0, 12, 3], prob[0, 12, 6] = 0.9, 0.9  # a pair 3 cells (150 nm) apart
    maps = {"prob": prob, "dx": dx, "dy": dy, "photons": torch.ones(1, 16, 16)}
    table = maps_to_table(maps, 0.3, cell_nm=50.0, frames=[0]).sort_values("y_nm", ignore_index=True)
    assert len(table) == 3
    assert table.loc[0, "x_nm"] == pytest.approx(50 * (0.6 * 6.5 + 0.4 * 6.7)) and table.loc[0, "probability"] == 1.0
    assert table.loc[1:, "x_nm"].tolist() == pytest.approx([175.0, 325.0])


def test_occupied_cells_keep_adjacent_emitters_apart():
    prob = torch.zeros(1, 8, 8)
    prob[0, 3, 3], prob[0, 3, 4] = 0.99, 0.97  # two emitters in adjacent cells of a tokenizer map
    assert len(find_detections(prob, threshold=0.5)[0]) == 1  # the local maximum alone merges them
    b, r, c, p = find_detections(prob, threshold=0.5, occupied=0.5)
    assert (r.tolist(), c.tolist()) == ([3, 3], [3, 4])


def _head_firing_at(cells, target, p=0.98):
    """(1, 8, H, W) a head that puts probability p in `cells` [(row, col)], each pointing at the
    nearest emitter of `target` (render_target, dense) with sd 0.1 cells, and nothing elsewhere."""
    head = torch.zeros(1, head_channels(False), *target.shape[-2:])
    head[0, LOGIT] = -12.0
    head[0, [SIG_DX, SIG_DY]] = float(np.log(0.1))
    for r, c in cells:
        head[0, LOGIT, r, c] = float(np.log(p / (1 - p)))
        head[0, [DX, DY, PHOTONS], r, c] = torch.from_numpy(target[1:4, r, c])
    return head


def test_mixture_loss_counts_emitters_and_keeps_close_pairs_apart():
    """The detection-first loss: two emitters 150 nm apart are best told as two detections, each
    at its own emitter, not one at their midpoint nor two where there is one; each part is finite
    and has a gradient for every head channel it reads."""
    x_px, y_px = np.array([10.3, 11.8]), np.array([20.4, 20.4])  # 150 nm apart: 3 output cells
    sparse = render_target(x_px, y_px, np.full(2, 1000.0), np.zeros(2), (32, 32), 2, False, dense=False)
    dense = render_target(x_px, y_px, np.full(2, 1000.0), np.zeros(2), (32, 32), 2, False, dense=True)
    background = torch.full((1, 32, 32), 10.0)
    own = [(40, 20), (40, 23)]

    def loss(cells, p=0.98):
        head = _head_firing_at(cells, dense, p)
        total, parts = mixture_localisation_loss(head, torch.from_numpy(sparse)[None], background, False)
        return total.item(), parts

    pair, parts = loss(own)
    assert all(np.isfinite(v.item()) for v in parts.values())
    assert pair < loss([(40, 21)], p=0.999)[0]  # one detection between them (merged)
    assert pair < loss(own + [(30, 10)])[0]  # one more detection where there is nothing
    assert pair < loss([(40, 20), (41, 20)])[0]  # two detections at the same emitter
    head = _head_firing_at(own, dense).requires_grad_()
    mixture_localisation_loss(head, torch.from_numpy(sparse)[None], background, False)[0].backward()
    assert all(head.grad[0, k].abs().sum() > 0 for k in (LOGIT, DX, DY, PHOTONS, SIG_DX, SIG_DY, BACKGROUND))


def test_progressive_scale_weights():
    weights = ProgressiveScaleWeights((0.5, 0.7, 0.9, 1.0))
    assert weights.weights.tolist() == pytest.approx([1.0, 0.9, 0.7, 0.5])
    weights.set_epoch(50, 100)
    assert weights.weights.tolist() == pytest.approx([0.75, 0.8, 0.8, 0.75])
    weights.set_epoch(100, 100)
    assert weights.weights.tolist() == pytest.approx([0.5, 0.7, 0.9, 1.0])


def test_checkpoint_round_trip_and_bad_files(tmp_path, model):
    path = tmp_path / "m.safetensors"
    save_model(path, model, {"note": "test"})
    loaded, card = load_model(path)
    assert card == {"note": "test"} and loaded.config == TINY
    x = torch.rand(1, 1, 64, 64) * 100
    assert torch.equal(loaded.generate(x)[1], model.generate(x)[1])
    # another architecture: the card says one thing, the weights are another's
    other = tmp_path / "other.safetensors"
    save_model(other, VAREmitterPredictor(ModelConfig(vocab_size=32, cvq=8, embed_dim=32, num_heads=2,
                                                      num_layers=1, image_channels=8, tokenizer_channels=8)), {})
    other.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    shape = r"\(\d+(, \d+)*,?\)"
    with pytest.raises(InputError, match=r"do not fit the architecture in other.json \((\d+ missing \(e\.g\. \S+\); )?"
                                         r"(\d+ not in it \(e\.g\. \S+\); )?\d+ of another shape \(e\.g\. \S+: "
                                         rf"{shape} in the file, {shape} in the architecture\)\);") as caught:
        load_model(other)
    assert len(str(caught.value)) < 400  # it listed every tensor's name (~200): too tall to read in napari
    # damaged weights
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="damaged or not a safetensors"):
        load_model(path)
    # a JSON from elsewhere
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(data)
    foreign.with_suffix(".json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not a napari-var-emitter model"):
        load_model(foreign)
    with pytest.raises(InputError, match="needs both"):
        load_model(tmp_path / "missing.safetensors")


def test_the_head_never_states_a_negative_background():
    head = torch.zeros(1, head_channels(False), 4, 4)
    head[:, BACKGROUND] = torch.linspace(-1, 1, 16).view(4, 4)  # a camera baseline set too high: below 0
    background = head_maps(head)["background"]
    assert background.min() == 0 and background.max() == pytest.approx(BACKGROUND_SCALE)
