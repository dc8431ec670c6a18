"""load_weights: a weights file that is not a torch state dict, or a folder, is named and said to be one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.models.layers import load_weights


def on_meta() -> nn.Module:
    with torch.device("meta"):
        return nn.Linear(3, 2)


@pytest.fixture(params=["real", "meta"])
def module(request) -> nn.Module:
    return nn.Linear(3, 2) if request.param == "real" else on_meta()


@pytest.fixture
def saved(tmp_path):
    source = nn.Linear(3, 2)
    torch.save(source.state_dict(), tmp_path / "fc.pt")
    return source, tmp_path / "fc.pt"


def test_a_state_dict_file_loads(saved):
    source, path = saved
    target = nn.Linear(3, 2)
    load_weights(target, str(path), "fc")
    torch.testing.assert_close(target.weight, source.weight)
    load_weights(on_meta(), str(path), "fc")  # the preflight only checks the file is there


def test_a_missing_file_is_not_found(module, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^fc: weights file '.*nothing\.pt' not found$"):
        load_weights(module, str(tmp_path / "nothing.pt"), "fc")


def test_a_folder_is_said_to_be_a_folder(module, tmp_path):
    with pytest.raises(ValueError) as err:
        load_weights(module, str(tmp_path), "fc")
    message = str(err.value)
    assert message.startswith(f"fc: weights file '{tmp_path}' is a folder") and "not found" not in message
    assert "\n" not in message


@pytest.mark.parametrize("content", [b"", b"hello, these are not weights\n", b"PK\x03\x04 not a zip at all" * 4,
                                     bytes(range(256)) * 8], ids=["empty", "text", "fake-zip", "binary"])
def test_a_file_that_is_not_a_torch_file_is_named_in_one_line(tmp_path, content):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_weights(nn.Linear(3, 2), str(path), "fc")
    message = str(err.value)
    assert message.startswith(f"fc: weights file '{path}' is not a torch state-dict file")
    assert "\n" not in message and "weights_only" not in message


def test_a_pickled_module_is_not_a_state_dict_and_no_unsafe_load_is_suggested(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(nn.Linear(3, 2), path)  # the whole module, pickled: refused by a weights-only load
    with pytest.raises(ValueError) as err:
        load_weights(nn.Linear(3, 2), str(path), "fc")
    message = str(err.value)
    assert message.startswith(f"fc: weights file '{path}' is not a torch state-dict file")
    assert "\n" not in message and "weights_only" not in message and "state_dict()" in message


def test_a_torch_file_holding_a_tensor_is_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match=r"^fc: weights file '.*tensor\.pt' is not a torch state-dict file: it holds "
                                         r"a Tensor"):
        load_weights(nn.Linear(3, 2), str(path), "fc")
