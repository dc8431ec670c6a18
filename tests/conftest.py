import pytest
import torch
from hydra import compose, initialize_config_dir

from zoo.config.paths import CONF_DIR
from zoo.components import load_components


@pytest.fixture(autouse=True, scope="session")
def _components():
    load_components()
    torch.set_num_threads(1)  # tests run in parallel workers; threads inside them only contend


@pytest.fixture(autouse=True, scope="session")
def _proposals_cache(tmp_path_factory):
    """Selective search's cached proposals (model.proposals=selective_search) go to a folder of the session, not the
    user's cache: each test session computes its own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ZOO_CACHE", str(tmp_path_factory.mktemp("zoo_cache")))
    yield
    patch.undo()


@pytest.fixture
def compose_cfg():
    """Compose the train config with overrides, as `zoo-train` would."""

    def make(*overrides: str, config_name: str = "train"):
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            return compose(config_name, overrides=list(overrides))

    return make


TINY = ("data.train.num_images=16", "data.val.num_images=8", "data.train.image_size=128", "data.val.image_size=128",
        "data.num_workers=0", "trainer.batch_size=4", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.plots=false", "trainer.log_every=1")


def free_port() -> int:
    """A TCP port free on localhost now, for a torchrun rendezvous (fixed ports collide between concurrent tests)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
