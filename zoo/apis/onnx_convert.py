"""A ``torch.export`` program of a detector as ONNX (its whole test-time path, NMS included, in one graph), converted
to OpenVINO IR, or quantised to int8: the formats ``zoo-export`` writes besides ``.pt2``.

torch's ONNX exporter translates the program (torchvision's NMS and RoIAlign included) at opset 18; the one operator it
has no translation for is ``aten.cummax`` (CornerNet's corner pooling), given one here. OpenVINO reads the ONNX file
with its own converter (``openvino.convert_model``). int8 is ONNX Runtime's static quantisation: weights per channel,
activations calibrated on images given by the caller, QDQ nodes around the convolutions and matrix products (the
decoding and NMS stay in float32).
"""
from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

OPSET = 18
OUTPUT_KEYS = ("boxes", "scores", "labels")  # per image, in this order, in the ONNX file's outputs
QUANTISED_OPS = ("Conv", "MatMul", "Gemm")


def deploy_module(name: str):
    """Imports one of the deployment packages (the ``deploy`` extra), or says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ValueError(f"{name} is not installed; ONNX and OpenVINO export and runtimes need the deploy extra: "
                         "pip install -e '.[deploy]'") from None


def output_names(batch: int) -> list[str]:
    """The ONNX file's outputs: ``boxes_0, scores_0, labels_0, boxes_1, ...``, one triple per image of the batch."""
    return [f"{key}_{i}" for i in range(batch) for key in OUTPUT_KEYS]


def _running_max(x, dim: int):
    """``aten.cummax`` in ONNX, which has no running maximum: ceil(log2(L)) steps of ``x = max(x, x shifted by 2^k
    along dim)`` (shifted in from -inf). Max is exact, so the values equal torch's; the indices output, which the
    zoo's corner pooling does not read, is given as zeros of the right shape."""
    from onnxscript import opset18 as op

    rank = len(x.shape)
    dim = dim % rank
    length = x.shape[dim]
    if not isinstance(length, int):
        raise ValueError(f"export: cummax over a dimension of unknown size ({length}) cannot be unrolled")
    lowest = op.CastLike(op.Constant(value_float=float("-inf")), x)
    step = 1
    while step < length:
        pads = [0] * (2 * rank)
        pads[dim] = step  # pad at the start of dim...
        shifted = op.Pad(x, op.Constant(value_ints=pads), lowest)
        shifted = op.Slice(shifted, op.Constant(value_ints=[0]), op.Constant(value_ints=[length]),
                           op.Constant(value_ints=[dim]))  # ...and keep the first L: x moved by `step`
        x = op.Max(x, shifted)
        step *= 2
    return x, op.Cast(op.ConstantOfShape(op.Shape(x)), to=7)  # 7: INT64


def program_to_onnx(program: torch.export.ExportedProgram, example: torch.Tensor, path: str | Path) -> None:
    """Writes ``program`` (one input, ``pixels``; per image a boxes/scores/labels triple) as an ONNX file."""
    deploy_module("onnxscript")  # torch's exporter translates through it
    # their INFO lines (each pass, each initializer) would flood the run; onnx_ir warns of each empty list attribute
    # a translation writes (typed as ints, which is what they are)
    for name, level in (("torch.onnx", logging.WARNING), ("onnxscript", logging.WARNING), ("onnx_ir", logging.ERROR)):
        logging.getLogger(name).setLevel(level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's meta kernels warn of a renamed torch function on every call
        onnx_program = torch.onnx.export(
            program, (example,), dynamo=True, opset_version=OPSET, input_names=["pixels"],
            output_names=output_names(example.shape[0]), verbose=False,
            custom_translation_table={torch.ops.aten.cummax.default: _running_max})
    onnx_program.save(str(path))


def onnx_to_openvino(onnx_path: str | Path, xml_path: str | Path) -> None:
    """Converts an ONNX file to OpenVINO IR (``.xml`` and its ``.bin``), weights kept in float32."""
    ov = deploy_module("openvino")
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)


def quantise_int8(onnx_path: str | Path, out_path: str | Path, calibration: Iterable[np.ndarray]) -> None:
    """Static int8 quantisation of an ONNX file with ONNX Runtime: ``calibration`` yields input batches (pixels, the
    file's input shape) whose activation ranges (min-max) set the scales."""
    deploy_module("onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"pixels": batch}

    root = logging.getLogger()  # where ONNX Runtime's quantiser logs its advice to pre-process (the graph is already
    was, root.disabled = root.disabled, True  # folded by torch's ONNX optimiser: no BatchNormalization left)
    try:
        quantize_static(str(onnx_path), str(out_path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(QUANTISED_OPS))
    finally:
        root.disabled = was


def split_outputs(arrays: Sequence[np.ndarray], count: int) -> list[dict[str, torch.Tensor]]:
    """A runtime's flat outputs (boxes, scores, labels per image) as the zoo's per-image dicts, for ``count`` images."""
    return [{key: torch.from_numpy(np.asarray(arrays[3 * i + k])) for k, key in enumerate(OUTPUT_KEYS)}
            for i in range(count)]
