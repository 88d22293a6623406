"""ONNX export of fer_hf models and an onnxruntime classifier that stands in for the PyTorch model.

- `export_onnx`: any fer_hf model (every family, every preset, the ensemble) -> one self-contained ``.onnx``
  file: input ``pixel_values`` (batch, C, H, W) float32 with a dynamic batch axis, output ``logits``
  (batch, num_labels) float32. The model config (``id2label`` included) and the image processor config
  are embedded in the file's ``metadata_props``, so the file alone is usable; ``config.json`` and
  ``preprocessor_config.json`` are also written beside it. Optional int8 quantisation
  (`QUANTIZE_MODES`).
- `OnnxImageClassifier`: an onnxruntime ``InferenceSession`` with the calling convention of a fer_hf
  model (``model(pixel_values=...).logits``), so `FaceExpressionRecognizer`, `fer_hf.inference.tta` and
  `fer_hf.training.ensembling.predict_probabilities` run on it unchanged.
- `cached_onnx_export`: the export `FaceExpressionRecognizer.from_pretrained(..., backend="onnx")` uses,
  cached under ``$FER_HF_CACHE/onnx`` (default ``~/.cache/fer_hf/onnx``), keyed by the model's files.

Exporters: the dynamo-based ``torch.onnx.export(..., dynamo=True)`` with ``dynamic_shapes`` (every fer_hf
family exports with it, the LSTM of ``fer_acnn_alstm`` as one ONNX ``LSTM`` node); ``exporter="auto"``
falls back to the TorchScript-based exporter (``dynamo=False`` with ``dynamic_axes``) if it fails, with a
warning, and records which one was used in the metadata (``fer_hf.exporter``).

int8 (`QUANTIZE_MODES`, measured on the default model in benchmarks/results/onnx_benchmark.md):

- ``"int8"``: static quantisation, QDQ format, int8 activations and per-channel int8 weights, activation
  ranges calibrated (min/max) on real faces (``calibration_data``, e.g. 512 FER2013 training faces). The
  fastest and as accurate as fp32 on the default model; ops without an int8 kernel (the LSTM) stay float.
- ``"int8-dynamic"``: dynamic quantisation (int8 weights, activation ranges computed per batch at run
  time); needs no calibration data but is much slower than fp32 for convolutional models on CPU
  (ConvInteger), so it only pays off for models that are mostly linear / LSTM layers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from .. import caching
from ..data import dataset_to_uint8, load_fer2013
from ..image_processing_fer import FerImageProcessor
from ..models import FER_MODEL_TYPES, load_fer_model
from ..models.hub import resolve_model

ONNX_INPUT_NAME = "pixel_values"
ONNX_OUTPUT_NAME = "logits"
#: Default ONNX opset of `export_onnx` (the dynamo exporter's native opset in torch 2.x).
DEFAULT_OPSET = 18
#: ``quantize`` values of `export_onnx` (None: float32).
QUANTIZE_MODES = ("int8", "int8-dynamic")
#: ``exporter`` values of `export_onnx`.
EXPORTERS = ("auto", "dynamo", "torchscript")
#: Default number of calibration faces for ``quantize="int8"``.
DEFAULT_CALIBRATION_SAMPLES = 512
#: Bumped whenever the exported graph or its metadata change, so that cached exports are redone.
EXPORT_FORMAT_VERSION = "1"

_META_CONFIG = "fer_hf.config"
_META_PROCESSOR = "fer_hf.preprocessor_config"
_META_ID2LABEL = "id2label"
_META_EXPORTER = "fer_hf.exporter"
_META_QUANTIZATION = "fer_hf.quantization"


class _LogitsOnly(torch.nn.Module):
    """``pixel_values -> logits`` (the ONNX graph has one input and one output)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits.float()


def _default_processor(config):
    """`FerImageProcessor` for a model object given without its processor: the model's channels and size,
    and the ensemble's own mean / std (other models: the processor defaults, mean 0.5, std 0.25)."""
    kwargs = {}
    if getattr(config, "image_mean", None) is not None and getattr(config, "image_std", None) is not None:
        kwargs = {"image_mean": list(config.image_mean), "image_std": list(config.image_std)}
    if config.model_type == "fer_ensemble":  # 3 input channels only when a member reads colour: keep it
        kwargs["do_grayscale"] = False
    return FerImageProcessor(num_channels=config.num_channels,
                             size={"height": config.image_size, "width": config.image_size}, **kwargs)


def load_model_and_processor(model_or_path, image_processor=None):
    """(model, image processor, source folder or None) of a fer_hf model object or model location.

    Args:
        model_or_path: a fer_hf `PreTrainedModel`, or a model folder, released model name (a folder under
            ``model_cards/``) or Hub id; only fer_hf model types are loaded, weights from safetensors only.
        image_processor: the processor to use; default: the folder's, or for a model object a
            `FerImageProcessor` with the model's channels and size.
    Raises:
        FileNotFoundError: for a path that does not exist.
        ValueError: for a folder that is not a fer_hf model (no config.json, or another model type).
        OSError: for a Hub id that cannot be reached (e.g. offline) or a folder without model.safetensors.
    """
    if isinstance(model_or_path, torch.nn.Module):
        if not hasattr(model_or_path, "config"):
            raise ValueError("export_onnx needs a fer_hf PreTrainedModel (with a .config), got "
                             f"{type(model_or_path).__name__}")
        return model_or_path, image_processor or _default_processor(model_or_path.config), None
    from transformers import AutoImageProcessor

    location = resolve_model(model_or_path)
    path = Path(location)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{model_or_path} is not a fer_hf model folder: it has no config.json")
    elif path.exists():
        raise ValueError(f"{model_or_path} is a file, not a fer_hf model folder (or released model name)")
    elif not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", str(model_or_path)):
        raise FileNotFoundError(f"model {model_or_path!r} not found: no such folder, and not a released model "
                                "name (a folder under model_cards/) or a Hub id")
    try:
        model = load_fer_model(location)
    except OSError as error:
        if path.is_dir():
            raise
        raise OSError(f"model {model_or_path!r} not found: not a folder, not a released model name (a folder "
                      f"under model_cards/), and not loadable as a Hub id ({str(error).splitlines()[0]})") from error
    processor = image_processor or AutoImageProcessor.from_pretrained(location, trust_remote_code=False)
    return model, processor, (path if path.is_dir() else None)


def _calibration_pixel_values(calibration_data, processor, num_samples: int, input_shape) -> np.ndarray:
    """Calibration ``pixel_values`` (N, C, H, W) float32 from the forms `export_onnx` accepts."""
    if calibration_data is None:
        raise ValueError('quantize="int8" (static quantisation) needs calibration_data: real faces, e.g. the '
                         'FER2013 data (zip / csv); or use quantize="int8-dynamic", which needs none')
    if isinstance(calibration_data, (str, os.PathLike)):
        calibration_data = load_fer2013(str(calibration_data))["train"]
    if hasattr(calibration_data, "column_names"):  # a datasets.Dataset with an "image" column
        if "image" not in calibration_data.column_names:
            raise ValueError("calibration dataset has no 'image' column")
        count = min(num_samples, len(calibration_data))
        subset = calibration_data.shuffle(seed=0).select(range(count))
        images, _ = dataset_to_uint8(subset, processor, desc="calibration faces")
        calibration_data = images
    array = calibration_data.numpy() if isinstance(calibration_data, torch.Tensor) else np.asarray(calibration_data)
    if array.dtype == np.uint8:
        array = np.asarray(processor.rescale_and_normalize(array))
    array = np.ascontiguousarray(array[:num_samples], dtype=np.float32)
    expected = tuple(input_shape[1:])
    if array.ndim != 4 or tuple(array.shape[1:]) != expected or len(array) == 0:
        raise ValueError(f"calibration data must be (N, {', '.join(map(str, expected))}) pixel_values (float32) "
                         f"or uint8 faces; got shape {array.shape}")
    return array


def _torch_export(wrapper, example, path: Path, opset: int, exporter: str) -> str:
    """Write ``wrapper`` to ``path`` with a dynamic batch axis; returns the exporter used."""
    errors = []
    if exporter in ("auto", "dynamo"):
        try:
            batch = torch.export.Dim("batch", min=1, max=1 << 20)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, (example,), str(path), input_names=[ONNX_INPUT_NAME],
                                  output_names=[ONNX_OUTPUT_NAME], dynamo=True, external_data=False,
                                  dynamic_shapes={"pixel_values": {0: batch}}, opset_version=opset,
                                  verbose=False, report=False)
            return "dynamo"
        except Exception as error:
            if exporter == "dynamo":
                raise
            errors.append(error)
            warnings.warn(f"dynamo ONNX export failed ({type(error).__name__}: {str(error)[:300]}); "
                          "falling back to torch.onnx.export(dynamo=False)", RuntimeWarning, stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(path), input_names=[ONNX_INPUT_NAME],
                          output_names=[ONNX_OUTPUT_NAME], dynamo=False, opset_version=opset,
                          dynamic_axes={ONNX_INPUT_NAME: {0: "batch"}, ONNX_OUTPUT_NAME: {0: "batch"}})
    return "torchscript"


def _quantize(fp32_path: Path, output_path: Path, mode: str, calibration: Optional[np.ndarray], workdir: Path) -> str:
    """Quantise ``fp32_path`` into ``output_path``; returns the description stored in the metadata."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = workdir / "prepared.onnx"
    try:  # shape inference + graph optimisation, as onnxruntime recommends before quantising
        quant_pre_process(str(fp32_path), str(prepared))
    except Exception:
        try:
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        except Exception:
            shutil.copy(fp32_path, prepared)
    if mode == "int8-dynamic":
        quantize_dynamic(str(prepared), str(output_path), weight_type=QuantType.QInt8)
        return "int8 dynamic (int8 weights, activation ranges per batch at run time)"

    class _CalibrationReader(CalibrationDataReader):
        """Fixed ``pixel_values`` batches of 64 faces."""

        def __init__(self, pixel_values: np.ndarray, batch_size: int = 64):
            self._batches = iter([{ONNX_INPUT_NAME: pixel_values[i:i + batch_size]}
                                  for i in range(0, len(pixel_values), batch_size)])

        def get_next(self):
            return next(self._batches, None)

    reader = _CalibrationReader(calibration)
    quantize_static(str(prepared), str(output_path), reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    # 7-bit weights: onnxruntime's int8 kernels on x86 CPUs without VNNI (AVX2, AVX-512F)
                    # can saturate with full-range weights, and an exported file runs on either kind
                    reduce_range=True, calibrate_method=CalibrationMethod.MinMax)
    return (f"int8 static QDQ (per-channel int8 weights in 7-bit range, int8 activations, min/max calibration on "
            f"{len(calibration)} faces)")


def export_onnx(model_or_path, output_path: Union[str, os.PathLike], opset: int = DEFAULT_OPSET,
                quantize: Optional[str] = None, image_processor=None, calibration_data=None,
                calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, exporter: str = "auto",
                write_configs: bool = True) -> Path:
    """Export a fer_hf model to one self-contained ONNX file with a dynamic batch axis.

    The graph: input ``pixel_values`` float32 (batch, C, H, W) (C, H, W: the model's ``num_channels`` and
    ``image_size``; ``batch`` dynamic, >= 1), normalized exactly as the model's image processor does;
    output ``logits`` float32 (batch, num_labels) (for the ensemble: log of the averaged probabilities),
    so ``softmax(logits)`` are the class probabilities in ``id2label`` order. ``metadata_props`` hold the
    model config (``fer_hf.config``, JSON), ``id2label`` (JSON, ids as strings), the image processor
    config (``fer_hf.preprocessor_config``), the exporter and the quantisation. With ``write_configs``,
    ``config.json`` and ``preprocessor_config.json`` are also written into the output folder (unless it
    is the model's own folder), so that the folder loads like an Optimum ONNX folder.

    Args:
        model_or_path: a fer_hf `PreTrainedModel` (any family or the ensemble) or a model location (see
            `load_model_and_processor`).
        output_path: the ``.onnx`` file to write (parent folders are created; an existing file is replaced).
        opset: ONNX opset version (default `DEFAULT_OPSET`).
        quantize: None (float32) or one of `QUANTIZE_MODES`; the file at ``output_path`` is then the
            quantised model.
        image_processor: the model's processor (default: the folder's; see `load_model_and_processor`).
        calibration_data: for ``quantize="int8"``: a FER2013 location (zip / csv / Hub id; its training
            split is used), a `datasets.Dataset` with an ``image`` column, uint8 faces (N, C, H, W) or
            ``pixel_values`` (N, C, H, W) float32; a random subset (seed 0) of ``calibration_samples`` faces
            (first ``calibration_samples`` of arrays) calibrates the activation ranges.
        calibration_samples: number of calibration faces (default `DEFAULT_CALIBRATION_SAMPLES`).
        exporter: ``"auto"`` (dynamo, falling back to TorchScript with a `RuntimeWarning`), ``"dynamo"`` or
            ``"torchscript"``.
        write_configs: also write ``config.json`` / ``preprocessor_config.json`` beside the file.
    Returns:
        the path of the written ``.onnx`` file.
    Raises:
        ValueError: for an unknown ``quantize`` / ``exporter``, a model that is not a fer_hf model, missing
            or mis-shaped calibration data, or an export whose batch axis is not dynamic.
        FileNotFoundError / OSError: for a model location that cannot be found (see
            `load_model_and_processor`).
    """
    import onnx

    if quantize not in (None, *QUANTIZE_MODES):
        raise ValueError(f"Unknown quantize {quantize!r}; choose None or one of {QUANTIZE_MODES}")
    if exporter not in EXPORTERS:
        raise ValueError(f"Unknown exporter {exporter!r}; choose one of {EXPORTERS}")
    model, processor, source_dir = load_model_and_processor(model_or_path, image_processor)
    config = model.config
    input_shape = (2, int(config.num_channels), int(config.image_size), int(config.image_size))
    calibration = None
    if quantize == "int8":  # before the (slow) export, so that a missing data set fails fast
        calibration = _calibration_pixel_values(calibration_data, processor, calibration_samples, input_shape)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".onnx_export_") as tmp:
            workdir = Path(tmp)
            fp32_path = workdir / "model_fp32.onnx"
            wrapper = _LogitsOnly(model).eval()
            generator = torch.Generator().manual_seed(0)
            example = torch.randn(input_shape, generator=generator)
            with torch.no_grad():
                used = _torch_export(wrapper, example, fp32_path, opset, exporter)
            quantization = "none (float32)"
            final = fp32_path
            if quantize is not None:
                final = workdir / "model_quantized.onnx"
                quantization = _quantize(fp32_path, final, quantize, calibration, workdir)
            proto = onnx.load(str(final))
            batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
            if batch_dim.HasField("dim_value"):
                raise ValueError(f"the {used} export fixed the batch axis to {batch_dim.dim_value}")
            metadata = {_META_CONFIG: config.to_json_string(use_diff=False),
                        _META_PROCESSOR: processor.to_json_string(),
                        _META_ID2LABEL: json.dumps({str(k): v for k, v in config.id2label.items()}),
                        _META_EXPORTER: used, _META_QUANTIZATION: quantization,
                        "fer_hf.export_format_version": EXPORT_FORMAT_VERSION,
                        "fer_hf.model_type": config.model_type}
            kept = [p for p in proto.metadata_props if p.key not in metadata]
            del proto.metadata_props[:]
            proto.metadata_props.extend(kept)
            for key, value in metadata.items():
                proto.metadata_props.add(key=key, value=value)
            proto.doc_string = (f"fer_hf {config.model_type} facial expression classifier: pixel_values (batch, "
                                f"{input_shape[1]}, {input_shape[2]}, {input_shape[3]}) float32 -> logits (batch, "
                                f"{len(config.id2label)}); quantisation: {quantization}")
            staged = workdir / "final.onnx"
            onnx.save(proto, str(staged))
            os.replace(staged, output_path)
    finally:
        model.train(was_training)
    if write_configs and (source_dir is None or source_dir.resolve() != output_path.parent.resolve()):
        config.to_json_file(str(output_path.parent / "config.json"), use_diff=False)
        processor.to_json_file(str(output_path.parent / "preprocessor_config.json"))
    return output_path


def _config_from_dict(config_dict: dict):
    """A config object from plain JSON (never code): the fer_hf class of its model_type, else
    `PretrainedConfig`."""
    from transformers import PretrainedConfig

    model_type = config_dict.get("model_type")
    config_class = FER_MODEL_TYPES[model_type][0] if model_type in FER_MODEL_TYPES else PretrainedConfig
    return config_class.from_dict({k: v for k, v in config_dict.items() if k != "auto_map"})


class OnnxImageClassifier:
    """A fer_hf classifier exported by `export_onnx`, run by onnxruntime (CPU).

    Call it like the PyTorch model: ``classifier(pixel_values=x).logits`` with ``x`` a float32 tensor or
    array (batch, C, H, W) gives a float32 torch tensor (batch, num_labels). ``config`` (with
    ``id2label``) and ``image_processor`` (a `FerImageProcessor`) come from the file's metadata (or a
    ``config.json`` / ``preprocessor_config.json`` beside it), so that `FaceExpressionRecognizer` can use it
    in place of the model (``eval()`` and ``to("cpu")`` are no-ops).

    Args:
        path: the ``.onnx`` file.
        intra_op_num_threads: onnxruntime threads inside one operator (None / 0: onnxruntime's default, one
            per physical core).
        inter_op_num_threads: threads across operators (default 1).
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        allow_spinning: let idle intra-op threads spin-wait (onnxruntime's default, True); False is faster
            with several threads on a CPU shared with other processes (measured in benchmarks/results/onnx_benchmark.md).
    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an ONNX file without a ``pixel_values`` input, or without an ``id2label``
            (neither in its metadata nor in a config.json beside it).
    """

    backend = "onnx"

    def __init__(self, path: Union[str, os.PathLike], intra_op_num_threads: Optional[int] = None,
                 inter_op_num_threads: int = 1, providers: Optional[list] = None, allow_spinning: bool = True):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} not found")
        options = ort.SessionOptions()
        if intra_op_num_threads:
            options.intra_op_num_threads = int(intra_op_num_threads)
        options.inter_op_num_threads = int(inter_op_num_threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        self.session = ort.InferenceSession(str(self.path), options,
                                            providers=providers or ["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != ONNX_INPUT_NAME:
            raise ValueError(f"{self.path} is not a fer_hf ONNX classifier: inputs "
                             f"{[i.name for i in inputs]}, expected [{ONNX_INPUT_NAME!r}]")
        self.input_shape = tuple(inputs[0].shape)  # ('batch', C, H, W)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.config = self._load_config()
        self.image_processor = self._load_processor()

    def _sidecar(self, name: str) -> Optional[dict]:
        path = self.path.parent / name
        return json.loads(path.read_text()) if path.is_file() else None

    def _load_config(self):
        from transformers import PretrainedConfig

        if _META_CONFIG in self.metadata:
            return _config_from_dict(json.loads(self.metadata[_META_CONFIG]))
        if _META_ID2LABEL in self.metadata:
            id2label = {int(k): v for k, v in json.loads(self.metadata[_META_ID2LABEL]).items()}
            return PretrainedConfig(id2label=id2label)
        sidecar = self._sidecar("config.json")
        if sidecar is None or "id2label" not in sidecar:
            raise ValueError(f"{self.path} has no id2label (no fer_hf metadata and no config.json beside it)")
        return _config_from_dict(sidecar)

    def _load_processor(self):
        data = json.loads(self.metadata[_META_PROCESSOR]) if _META_PROCESSOR in self.metadata else \
            self._sidecar("preprocessor_config.json")
        if data is None:
            channels, height, width = self.input_shape[1:]
            return FerImageProcessor(num_channels=int(channels), size={"height": int(height), "width": int(width)})
        if data.get("image_processor_type", "FerImageProcessor") != "FerImageProcessor":
            raise ValueError(f"{self.path}: unsupported image processor {data.get('image_processor_type')!r}")
        return FerImageProcessor.from_dict({k: v for k, v in data.items() if k != "auto_map"})

    @property
    def exporter(self) -> Optional[str]:
        """``"dynamo"`` / ``"torchscript"``: the exporter that wrote the file (None if unknown)."""
        return self.metadata.get(_META_EXPORTER)

    @property
    def quantization(self) -> Optional[str]:
        """The file's quantisation (``"none (float32)"``, ``"int8 static QDQ ..."``; None if unknown)."""
        return self.metadata.get(_META_QUANTIZATION)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device) -> "OnnxImageClassifier":
        """No-op for ``"cpu"``. Raises ValueError for any other device (use the torch backend there)."""
        if torch.device(device).type != "cpu":
            raise ValueError(f"the onnx backend runs on the CPU only; got device {device!r}")
        return self

    def eval(self) -> "OnnxImageClassifier":
        return self

    def __call__(self, pixel_values=None, **kwargs):
        """``pixel_values`` (batch, C, H, W) float tensor / array -> output with ``.logits`` (batch,
        num_labels) float32 torch tensor (CPU). Other keyword arguments (``labels``...) are ignored.

        Raises:
            ValueError: for a missing input or a shape other than (batch >= 1, C, H, W) of the model.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        if isinstance(pixel_values, torch.Tensor):
            array = pixel_values.detach().to("cpu", torch.float32).contiguous().numpy()
        else:
            array = np.ascontiguousarray(pixel_values, dtype=np.float32)
        expected = tuple(int(d) for d in self.input_shape[1:])
        if array.ndim != 4 or tuple(array.shape[1:]) != expected or array.shape[0] < 1:
            raise ValueError(f"pixel_values must be (batch, {', '.join(map(str, expected))}); got {array.shape}")
        from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

        logits = self.session.run([ONNX_OUTPUT_NAME], {ONNX_INPUT_NAME: array})[0]
        return ImageClassifierOutputWithNoAttention(logits=torch.from_numpy(logits))

    forward = __call__


def default_cache_dir() -> Path:
    """``$FER_HF_CACHE/onnx``, default ``~/.cache/fer_hf/onnx`` (`fer_hf.caching.cache_dir`): where
    `cached_onnx_export` keeps exports."""
    return caching.cache_dir("onnx")


def _model_fingerprint(location: str, opset: int) -> str:
    """sha256 (16 hex digits) of a model's config, processor config and weights + the export settings."""
    from transformers.utils import cached_file

    digest = hashlib.sha256(f"fer_hf-onnx-{EXPORT_FORMAT_VERSION}-opset{opset}-torch{torch.__version__}".encode())
    for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
        path = Path(location) / name
        if not path.is_file():
            path = Path(cached_file(location, name))
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cached_onnx_export(name_or_path=None, cache_dir: Optional[Union[str, os.PathLike]] = None,
                       opset: int = DEFAULT_OPSET) -> Path:
    """The float32 ONNX export of a fer_hf model, exported once and cached.

    Args:
        name_or_path: None (the default released model), a released model name, a model folder or Hub
            id (see `fer_hf.models.hub.resolve_model`), or an existing ``.onnx`` file (returned as is).
        cache_dir: where exports are kept (default `default_cache_dir`); each model gets a sub-folder
            ``<name>-<sha256 of its config, processor config, weights and export settings>/model.onnx``,
            so a retrained model is exported again. Never written into the model's own folder.
        opset: ONNX opset of the export.
    Returns:
        path of the ``.onnx`` file.
    Raises:
        the errors of `export_onnx` / `load_model_and_processor` for a location that is not a fer_hf model.
    """
    if name_or_path is not None and str(name_or_path).endswith(".onnx"):
        if not Path(name_or_path).is_file():
            raise FileNotFoundError(f"ONNX model {name_or_path} not found")
        return Path(name_or_path)
    location = resolve_model(name_or_path)
    if Path(location).is_dir() and not (Path(location) / "config.json").is_file():
        raise ValueError(f"{name_or_path} is not a fer_hf model folder: it has no config.json")
    if Path(location).is_dir() and not (Path(location) / "model.safetensors").is_file():
        raise OSError(f"{name_or_path} has no model.safetensors")
    fingerprint = _model_fingerprint(location, opset)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(location).name or "model")
    target = Path(cache_dir or default_cache_dir()) / f"{name}-{fingerprint}" / "model.onnx"
    if not target.is_file():
        export_onnx(location, target, opset=opset)
    return target


__all__ = ["DEFAULT_OPSET", "EXPORTERS", "ONNX_INPUT_NAME", "ONNX_OUTPUT_NAME", "QUANTIZE_MODES",
           "OnnxImageClassifier", "cached_onnx_export", "default_cache_dir", "export_onnx",
           "load_model_and_processor"]
