import math

import pytest
import torch

from zoo.task.priors import AnchorGenerator, SSDPriorGenerator

SSD300_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]


def test_ssd300_has_8732_priors():
    gen = SSDPriorGenerator(SSD300_RATIOS)
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert gen(sizes, (300, 300)).shape == (8732, 4)
    assert gen.num_anchors_per_level() == [4, 6, 6, 6, 4, 4]


def test_ssd512_has_24564_priors():
    gen = SSDPriorGenerator([[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]], s_min=0.15, first_scale=0.07)
    sizes = [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert gen(sizes, (512, 512)).shape == (24564, 4)


def test_ssd_scales_follow_the_paper_rule():
    gen = SSDPriorGenerator(SSD300_RATIOS)
    # conv4_3 at 0.1, then s_min..s_max linearly over the other five levels, then one step past s_max.
    assert gen.scales == pytest.approx([0.1, 0.2, 0.375, 0.55, 0.725, 0.9, 1.075])
    shapes = gen.cell_shapes(1, (300, 300))
    assert shapes[0].tolist() == pytest.approx([60.0, 60.0])
    assert shapes[1].tolist() == pytest.approx([300 * math.sqrt(0.2 * 0.375)] * 2)
    assert shapes[2].tolist() == pytest.approx([60 * math.sqrt(2), 60 / math.sqrt(2)])


def test_prior_layout_is_cell_major_then_anchor():
    gen = SSDPriorGenerator([[2]], s_min=0.5, s_max=0.5, first_scale=None, clip="none")
    priors = gen([(2, 2)], (100, 100))
    assert priors.shape == (16, 4)
    centres = (priors[:, :2] + priors[:, 2:]) / 2
    # First four anchors share the first cell's centre (25, 25), the next four the cell to its right.
    assert torch.allclose(centres[:4], torch.tensor([[25.0, 25.0]] * 4))
    assert torch.allclose(centres[4:8], torch.tensor([[75.0, 25.0]] * 4))


def test_clip_modes():
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    boxed = SSDPriorGenerator(SSD300_RATIOS, clip="box")(sizes, (300, 300))
    assert boxed.min() >= 0 and boxed.max() <= 300
    sized = SSDPriorGenerator(SSD300_RATIOS, clip="size")(sizes, (300, 300))
    wh = sized[:, 2:] - sized[:, :2]
    assert wh.max() <= 300 + 1e-4 and sized.min() < 0  # sizes capped, corners may leave the image
    with pytest.raises(ValueError, match="clip must be one of"):
        SSDPriorGenerator(SSD300_RATIOS, clip="yes")


def test_steps_place_centres_like_the_ports():
    gen = SSDPriorGenerator(SSD300_RATIOS, steps=[8, 16, 32, 64, 100, 300])
    priors = gen([(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)], (300, 300))
    second_cell = priors[4]  # conv4_3 has 4 priors per cell
    assert ((second_cell[0] + second_cell[2]) / 2).item() == pytest.approx(1.5 * 8)


def test_anchor_generator_refinedet_counts_and_areas():
    gen = AnchorGenerator(sizes=[[32], [64], [128], [256]], ratios=[0.5, 1.0, 2.0])
    anchors = gen([(40, 40), (20, 20), (10, 10), (5, 5)], (320, 320))
    assert anchors.shape == (6375, 4)  # RefineDet320
    wh = anchors[:3, 2:] - anchors[:3, :2]
    assert torch.allclose(wh.prod(dim=1), torch.full((3,), 32.0 * 32.0))
    assert torch.allclose(wh[:, 1] / wh[:, 0], torch.tensor([0.5, 1.0, 2.0]))


def test_the_cache_keeps_only_the_recent_image_sizes():
    # keep-ratio resizing pads every batch to a new size: caching each one would grow without end
    from zoo.task.priors import CACHE_SIZE

    gen = AnchorGenerator(sizes=[[32]], ratios=[1.0], steps=[16])
    first = gen([(4, 4)], (64, 64))
    assert gen([(4, 4)], (64, 64)) is first  # a repeat is served from the cache
    for h in range(CACHE_SIZE + 3):
        gen([(4 + h, 4)], (64 + 16 * h, 64))
    assert len(gen._cache) == CACHE_SIZE and torch.equal(gen([(4, 4)], (64, 64)), first)


def test_ssd300_config_has_the_authors_caffe_default_boxes():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from zoo.config.paths import CONF_DIR
    from zoo.registry import PRIORS
    from zoo.components import load_components

    load_components()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        node = compose("train", overrides=["model=ssd300"]).model.priors
    gen = PRIORS.build(OmegaConf.to_container(node))
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    priors = gen(sizes, (300, 300))
    # ssd_pascal.py: min sizes 30, 60, 111, 162, 213, 264 and max sizes 60, 111, ..., 315 (the square boxes)
    min_sizes, max_sizes = [30, 60, 111, 162, 213, 264], [60, 111, 162, 213, 264, 315]
    for level, (lo, hi) in enumerate(zip(min_sizes, max_sizes)):
        shapes = gen.cell_shapes(level, (300, 300))
        assert shapes[0].tolist() == pytest.approx([lo, lo])
        assert shapes[1].tolist() == pytest.approx([math.sqrt(lo * hi)] * 2)
    # centres on steps of 8 px at conv4_3 (not 300 / 38), and boxes past the image left unclipped
    centres = (priors[:4 * 38, :2] + priors[:4 * 38, 2:]) / 2
    assert centres[::4, 0].tolist() == pytest.approx([4.0 + 8 * i for i in range(38)])
    assert priors.min() < 0 and priors.max() > 300


def test_centre_size_clamps_the_centres_the_ssd_ports_clamp():
    """ssd.pytorch clamps each default box's (cx, cy, w, h) into [0, 1]: at 300 px the 10x10 level's last row and
    column (step 32) centre at 304 px, pulled back to 300."""
    from zoo.task.priors import SSDPriorGenerator

    settings = dict(aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                    scales=[0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05], steps=[8, 16, 32, 64, 100, 300])
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    capped = SSDPriorGenerator(clip="size", **settings)(sizes, (300, 300))
    clamped = SSDPriorGenerator(clip="centre_size", **settings)(sizes, (300, 300))
    centres = (clamped[:, :2] + clamped[:, 2:]) / 2
    assert centres.max() <= 300 and (centres - (capped[:, :2] + capped[:, 2:]) / 2).abs().max() == 4
    moved = ((clamped - capped).abs().max(dim=1).values > 0).sum()
    assert moved == (10 * 10 - 9 * 9) * 6  # the level's 19 edge cells, 6 boxes each
