import pytest

from zoo.registry import ALL_REGISTRIES, BACKBONES, ConfigError, Registry
from zoo.components import load_components


def test_unknown_type_lists_known_names():
    load_components()
    with pytest.raises(ConfigError, match=r"unknown backbone type 'vgg17'.*resnet_lite.*vgg16_reduced"):
        BACKBONES.build({"type": "vgg17"})


def test_missing_type_key():
    with pytest.raises(ConfigError, match="needs a 'type' key"):
        BACKBONES.build({"widths": [1]})


def test_a_config_that_is_not_a_mapping_says_what_was_expected():
    with pytest.raises(ConfigError, match=r"a backbone config must be a mapping like \{type: <name>, ...\}, got 'none'"):
        BACKBONES.build("none")


def test_unknown_key_names_the_key_and_the_accepted_ones():
    load_components()
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['widht'\].*widths"):
        BACKBONES.build({"type": "resnet_lite", "widht": [8]})


def test_missing_required_key():
    reg = Registry("thing")

    @reg.register("needs_a")
    def make(a, b=1):
        return a + b

    with pytest.raises(ConfigError, match=r"missing required key\(s\) \['a'\]"):
        reg.build({"type": "needs_a"})
    assert reg.build({"type": "needs_a", "a": 2}) == 3


def test_wired_keys_cannot_be_set_in_config():
    reg = Registry("thing")
    reg.register("f")(lambda in_channels: in_channels)
    with pytest.raises(ConfigError, match="wired automatically"):
        reg.build({"type": "f", "in_channels": 3}, in_channels=4)


def test_double_registration_fails():
    reg = Registry("thing")
    reg.register("x")(lambda: 1)
    with pytest.raises(KeyError, match="registered twice"):
        reg.register("x")(lambda: 2)


def test_every_kind_has_a_registry_and_ssd_parts_are_registered():
    load_components()
    assert set(ALL_REGISTRIES) == {"backbones", "necks", "heads", "losses", "samplers", "matchers", "coders",
                                   "priors", "detectors", "datasets", "transforms", "evaluators", "merges"}
    for kind, name in [("backbones", "vgg16_reduced"), ("necks", "ssd_extras"), ("necks", "none"),
                       ("heads", "ssd_head"), ("priors", "ssd_priors"), ("matchers", "max_iou"),
                       ("coders", "delta_xywh"), ("losses", "multibox"), ("detectors", "single_stage"),
                       ("datasets", "synthetic"), ("datasets", "voc"), ("datasets", "coco"),
                       ("evaluators", "voc"), ("evaluators", "coco"), ("merges", "box_voting")]:
        assert name in ALL_REGISTRIES[kind], (kind, name)
