"""Bad input ends a command with one line naming the problem and exit status 2."""
import pytest
import torch
from omegaconf import OmegaConf
from torch._utils import ExceptionWrapper

from zoo.cli import reports_bad_input
from zoo.data.errors import DataError
from zoo.engine.distributed import local_device


def _run(raises, capsys) -> str:
    @reports_bad_input("zoo-test")
    def main():
        raises()

    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_a_missing_required_option_is_named_as_the_override_that_gives_it(capsys):
    cfg = OmegaConf.create({"checkpoint": "???"})
    err = _run(lambda: cfg.checkpoint, capsys)
    assert err.startswith("zoo-test: error: 'checkpoint' is required: pass checkpoint=<value>\n")


def test_an_error_in_a_loader_worker_keeps_its_own_words_without_the_worker_traceback(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    try:
        raise DataError("/data/x.jpg: cannot read the image")
    except DataError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")  # what torch re-raises in the main process
    err = _run(wrapped.reraise, capsys)
    assert err.splitlines()[0] == "zoo-test: error: /data/x.jpg: cannot read the image"
    assert "Traceback" not in err


def test_a_bad_device_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"device 'gpu' is not a device: use auto, cpu, cuda or cuda:<index>"):
        local_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available; use device=auto or cpu"):
            local_device("cuda")


def test_precision_names_are_one_vocabulary_for_training_and_evaluation():
    from zoo.engine.precision import autocast_dtype

    assert autocast_dtype("bf16", "precision") is autocast_dtype("bfloat16", "trainer.amp_dtype") is torch.bfloat16
    assert autocast_dtype("fp16", "precision") is torch.float16 and autocast_dtype("float32", "precision") is None
    with pytest.raises(ValueError, match=r"trainer.amp_dtype must be one of \['fp32', 'float32', 'bf16'.*got 'half'"):
        autocast_dtype("half", "trainer.amp_dtype")
