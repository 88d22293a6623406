"""Grad-CAM explanations of fer_hf models, per face: where in the face crop the evidence for a class lies.

Grad-CAM (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, 2017, "Grad-CAM: Visual Explanations from
Deep Networks via Gradient-based Localization", ICCV) weights each channel ``k`` of a convolutional feature
map ``A`` by the spatial mean of the gradient of the class score ``y^c`` (the logit, before the softmax)
with respect to it, ``alpha_k = mean_ij dy^c / dA^k_ij``, and keeps the positive part of the weighted sum,
``ReLU(sum_k alpha_k A^k)``: a coarse map (the feature map's resolution) of the regions that raise the
class score. The computation is the `grad-cam` library's (``pytorch_grad_cam.GradCAM``, Jacob Gildenblat
et al.); this module only chooses the layer to explain for every fer_hf family, adapts the models (which
return transformers output objects) and maps the result back onto the face crops of
`FaceExpressionRecognizer`.

The layer rule lives in `_TARGET_LAYER_RULES` (one entry per ``model_type``, see
`grad_cam_target_layers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from ..image_io import load_image

__all__ = ["explain_faces", "grad_cam", "grad_cam_target_layers"]


class _LogitsOnly(nn.Module):
    """``model(pixel_values=x).logits`` as a plain module (what `pytorch_grad_cam` calls)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def _last_relu(stage: nn.Module) -> nn.Module:
    """The last ``nn.ReLU`` of a VGG-style stage: the rectified output of its last convolution, before the
    stage's pooling (as Grad-CAM's VGG-16 used the rectified conv5_3, before pool5)."""
    relus = [module for module in stage.modules() if isinstance(module, nn.ReLU)]
    if not relus:
        raise ValueError(f"{type(stage).__name__} has no ReLU to explain")
    return relus[-1]


def _last_two_stages(stages: nn.ModuleList) -> list:
    """`_last_relu` of the last two stages (of the only one for a one-stage trunk), shallower first."""
    return [_last_relu(stage) for stage in list(stages)[-2:]]


#: ``model_type`` -> function(model) -> the layers Grad-CAM explains: the one place where they are chosen.
#: Map sides are for the default 48x48 configurations. Families whose head is not a global average
#: (flatten + MLP, or an LSTM over positions) get their last two stages, averaged by pytorch_grad_cam:
#: Grad-CAM's channel weights are the spatial mean of the gradient, exact for a global-average head and only
#: an approximation otherwise, and on the last map alone that mean can be negative for every active channel
#: (an empty map). On real FER2013 faces the last stage alone gave empty maps for many faces (happy ones
#: above all) and the last two stages for none, with the most class-specific maps (tests/test_explain.py
#: checks this on real faces).
_TARGET_LAYER_RULES = {
    # last conv + BN + ReLU of stages 3 and 4, before their max-pools (12x12 + 6x6 on fer-vgg-fer2013)
    "fer_vgg": lambda m: _last_two_stages(m.fer_vgg.stages),
    # last 3x3 conv [+ BN] + ReLU of the last two stages, before their max-pools (24x24 + 12x12)
    "fer_conv1x1": lambda m: _last_two_stages(m.fer_conv1x1.stages),
    # both conv + ReLU, before their LRN / max-pool (48x48 + 24x24)
    "fer_lrn": lambda m: _last_two_stages(m.fer_lrn.stages),
    # the CNN's last two stages' conv + ReLU, before their max-pools, the local attention and the LSTM
    # (24x24 + 12x12)
    "fer_acnn_alstm": lambda m: _last_two_stages(m.fer_acnn_alstm.stages),
    # features[8]: the final 1x1 conv + BN + SiLU to 1280 channels, what is average-pooled (2x2 at stride 2)
    "fer_efficientnet": lambda m: [m.fer_efficientnet.features[-1]],
    # layer4: the last residual stage, what is average-pooled (2x2 for the ImageNet stem)
    "fer_resnet": lambda m: [m.fer_resnet.layer4],
    # features[18]: the final 1x1 conv + BN + ReLU6 to 1280 channels, what is average-pooled (total stride 32)
    "fer_mobilenet": lambda m: [m.fer_mobilenet.features[-1]],
    # every member's own layers (grad_cam explains each member and averages with the ensemble's weights)
    "fer_ensemble": lambda m: [layer for member in m.members for layer in grad_cam_target_layers(member)],
}


def grad_cam_target_layers(model: nn.Module) -> list:
    """The layers whose activations Grad-CAM weights, for a fer_hf model: the last convolutional feature
    map(s) of every family (the rule is `_TARGET_LAYER_RULES`).

    - ``fer_vgg``, ``fer_conv1x1``, ``fer_lrn``, ``fer_acnn_alstm`` (heads that are not a global average:
      flatten + MLP, or an LSTM over positions): the ReLU after the last convolution of each of the last
      two stages, before the stage's pooling (pytorch_grad_cam averages the two normalized maps); for
      ACNN-ALSTM these are in the CNN, before the local attention and the LSTM, the last places with a
      spatial layout. At 48x48: 12x12 + 6x6 (released fer-vgg-fer2013), 24x24 + 12x12, 48x48 + 24x24 and
      24x24 + 12x12. The last stage alone gives empty maps too often (measurements at `_TARGET_LAYER_RULES`).
    - ``fer_efficientnet``: ``features[-1]`` (1x1 conv to 1280 channels + BN + SiLU); ``fer_resnet``:
      ``layer4``. Both are 2x2 at 48x48 with the default stems (3x3 with the stride-1 / small stems).
    - ``fer_mobilenet``: ``features[-1]`` (1x1 conv to 1280 channels + BN + ReLU6), 4x4 at 112 px.
    - ``fer_ensemble``: the members' layers, in member order. `grad_cam` does not hand these to
      ``GradCAM`` together (the library would average the members' normalized maps equally); it explains
      each member and weights the maps by ``config.member_weights``.

    Args:
        model: a fer_hf ``*ForImageClassification`` model (its ``config.model_type`` picks the rule).
    Returns:
        list of ``nn.Module`` (one or two per model, the members' for an ensemble), as
        ``pytorch_grad_cam``'s ``target_layers``.
    Raises:
        TypeError: for a model that is not a ``torch.nn.Module`` (e.g. an ONNX session).
        ValueError: for a model whose ``config.model_type`` has no known target layer.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"Grad-CAM needs a PyTorch fer_hf model (gradients); got {type(model).__name__}")
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in _TARGET_LAYER_RULES:
        raise ValueError(f"Grad-CAM has no target layer for model_type {model_type!r} "
                         f"({type(model).__name__}); known model types: {sorted(_TARGET_LAYER_RULES)}")
    return _TARGET_LAYER_RULES[model_type](model)


def _resolve_targets(targets, logits: torch.Tensor) -> list:
    """Class ids (one per image) from ``targets`` (None: argmax of ``logits``; int; sequence of N ints)."""
    n, num_labels = logits.shape
    if targets is None:
        return [int(i) for i in logits.argmax(-1).tolist()]
    if isinstance(targets, (int, np.integer)):
        targets = [int(targets)] * n
    targets = [int(t) for t in targets]
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for {n} images")
    bad = [t for t in targets if not 0 <= t < num_labels]
    if bad:
        raise ValueError(f"target class ids {bad} outside 0..{num_labels - 1}")
    return targets


def _unit_max(maps: np.ndarray) -> np.ndarray:
    """(N, H, W) non-negative maps -> each min-max scaled to [0, 1] (an all-constant map becomes zeros).

    ``pytorch_grad_cam`` scales by ``max + 1e-7``, which shrinks maps whose raw values are tiny (freshly
    initialised models: ~1e-8); this undoes that (every step before it is linear, so only the scale changes).
    """
    maps = np.asarray(maps, np.float32)
    maps = maps - maps.min(axis=(1, 2), keepdims=True)
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.clip(np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0), 0.0, 1.0)


def grad_cam(model: nn.Module, pixel_values: torch.Tensor,
             targets: int | Sequence[int] | None = None) -> np.ndarray:
    """Grad-CAM maps (Selvaraju et al., 2017, ICCV) of a fer_hf model for a batch of faces, computed by the
    `grad-cam` library (``pytorch_grad_cam.GradCAM``) at the layers of `grad_cam_target_layers`.

    Each map is ``ReLU(sum_k alpha_k A^k)`` for the class's logit, upsampled bilinearly (OpenCV) from the
    feature map's resolution to the input's and min-max scaled per image to [0, 1] (maximum exactly 1;
    all zeros when no position has positive evidence). With two target layers (the VGG-style families),
    pytorch_grad_cam averages the two scaled maps and the mean is scaled again. For an ensemble, every
    member is explained on its own input (``member_inputs``) for the same class (its own logit), the member
    maps (each in [0, 1], at the ensemble's input size) are averaged with ``config.member_weights``, and the
    average is min-max scaled again.

    The model is run in eval mode (its training flag is restored afterwards) with gradients enabled, even
    inside ``torch.no_grad()``; its parameters' ``.grad`` are cleared (``model.zero_grad()``).

    Args:
        model: a fer_hf ``*ForImageClassification`` model (any family, or the ensemble).
        pixel_values: float tensor (N, C, H, W) as the model's image processor makes it (normalized).
        targets: the class explained per image: None (default) for each image's predicted class (argmax
            of the logits), one class id for all images, or a sequence of N class ids.
    Returns:
        float32 array (N, H, W) in [0, 1] at the input's resolution (H, W of ``pixel_values``).
    Raises:
        ValueError: for ``pixel_values`` that is not a 4-D tensor, a model type without a target layer
            (see `grad_cam_target_layers`), or targets of the wrong count or outside the model's classes.
        TypeError: for a model that is not a ``torch.nn.Module``.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
        shape = tuple(pixel_values.shape) if hasattr(pixel_values, "shape") else type(pixel_values).__name__
        raise ValueError(f"pixel_values must be a (N, C, H, W) tensor; got {shape}")
    layers = grad_cam_target_layers(model)
    n, _, height, width = pixel_values.shape
    if n == 0:
        return np.zeros((0, height, width), np.float32)
    device = next(model.parameters()).device
    # a fresh leaf that requires grad: the target activations get a graph even with frozen parameters
    inputs = pixel_values.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            if model.config.model_type == "fer_ensemble":
                with torch.no_grad():
                    logits = model(pixel_values=inputs).logits
                classes = _resolve_targets(targets, logits)
                weights = np.asarray(model.config.member_weights, np.float32)
                total = np.zeros((n, height, width), np.float32)
                for member, member_input, weight in zip(model.members, model.member_inputs(inputs.detach()), weights):
                    if weight == 0:
                        continue
                    cams = grad_cam(member, member_input, classes)
                    total += weight * np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR)
                                                for c in cams])
                return _unit_max(total)
            with GradCAM(model=_LogitsOnly(model), target_layers=layers) as cam:
                if targets is None:
                    cam_targets = None
                else:
                    with torch.no_grad():
                        logits = model(pixel_values=inputs).logits
                    cam_targets = [ClassifierOutputTarget(c) for c in _resolve_targets(targets, logits)]
                maps = cam(input_tensor=inputs, targets=cam_targets)
    finally:
        model.train(was_training)
    return _unit_max(maps)


def _predict_box(box, image_size) -> list:
    """[x1, y1, x2, y2] float -> [x, y, w, h] ints clipped to the image, as `FaceExpressionRecognizer.predict`."""
    x1, y1, x2, y2 = box
    x, y = max(0, round(float(x1))), max(0, round(float(y1)))
    return [x, y, round(float(min(x2, image_size[0]))) - x, round(float(min(y2, image_size[1]))) - y]


def explain_faces(recognizer, image, class_names: str | Sequence[str] | None = None, faces: list | None = None) -> list:
    """Grad-CAM (Selvaraju et al., 2017, ICCV) for every face that ``recognizer`` finds in ``image``, laid
    over the face crop the classifier sees.

    Faces come from ``recognizer.detect_faces`` (detection, crop adjustment and eye alignment of `predict`),
    so they are in `predict`'s order (left to right) with its boxes. The probabilities are
    ``recognizer.classify_faces`` (so they include the recognizer's TTA, as `predict`'s); the map is
    `grad_cam` of ``recognizer.model`` on the crops' ``pixel_values`` (no TTA), resized bilinearly from the
    model's input size (48x48) to the crop's size.

    Args:
        recognizer: a `FaceExpressionRecognizer` (any fer_hf model).
        image: path, PIL image, RGB numpy array or tensor (see `fer_hf.image_io.load_image`).
        class_names: the class explained: None (default) for each face's top emotion, one label for every
            face (e.g. ``"happy"``), or one label per face.
        faces: ``recognizer.detect_faces(image)`` when the caller has it (the image is then not detected again).
    Returns:
        list (one dict per face, ``[]`` without faces) with keys
        ``"face_index"`` (int, position in `predict`'s list), ``"box"`` ([x, y, w, h] ints, pixels, as
        `predict`), ``"crop"`` (PIL RGB face crop, the classifier's input before resizing),
        ``"cam"`` (float32 array (crop height, crop width) in [0, 1]), ``"overlay"`` (PIL RGB image of the
        crop's size: the map in OpenCV's JET colormap blended 50/50 with the crop by
        ``pytorch_grad_cam.utils.image.show_cam_on_image``), ``"emotion"`` (the explained label),
        ``"class_id"`` (its id), ``"probability"`` (float, the model's probability of that label).
    Raises:
        ValueError: for a label the model does not have, a list of labels whose length is not the number
            of faces, or a model without a Grad-CAM target layer.
        TypeError: for a recognizer whose model is not a ``torch.nn.Module`` (``backend="onnx"``).
        FileNotFoundError / PIL.UnidentifiedImageError: for an unreadable image path.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    grad_cam_target_layers(recognizer.model)  # a model Grad-CAM can explain (checked before the slow detection)
    label2id = {name: i for i, name in recognizer.id2label.items()}
    if class_names is not None:
        unknown = sorted({n for n in ([class_names] if isinstance(class_names, str) else class_names)
                          if n not in label2id})
        if unknown:
            raise ValueError(f"unknown class name(s) {unknown}; the model's labels: {list(label2id)}")
    image = load_image(image)
    faces = recognizer.detect_faces(image) if faces is None else faces
    boxes = [face.box for face in faces]
    crops = recognizer.face_crops(image, faces)
    if not crops:
        return []
    probabilities = recognizer.classify_faces(crops)
    if class_names is None:
        classes = [int(i) for i in probabilities.argmax(-1)]
    else:
        names = [class_names] * len(crops) if isinstance(class_names, str) else list(class_names)
        if len(names) != len(crops):
            raise ValueError(f"{len(names)} class names for {len(crops)} faces")
        classes = [label2id[n] for n in names]
    pixel_values = recognizer.image_processor(crops, return_tensors="pt")["pixel_values"]
    cams = grad_cam(recognizer.model, pixel_values, classes)
    explained = []
    for i, (crop, cam, class_id) in enumerate(zip(crops, cams, classes)):
        rgb = crop.convert("RGB")
        crop_cam = np.clip(cv2.resize(cam, rgb.size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32)
        overlay = show_cam_on_image(np.asarray(rgb, np.float32) / 255.0, crop_cam, use_rgb=True)
        explained.append({"face_index": i, "box": _predict_box(boxes[i], image.size), "crop": rgb, "cam": crop_cam,
                          "overlay": Image.fromarray(overlay, "RGB"), "emotion": recognizer.id2label[class_id],
                          "class_id": class_id, "probability": float(probabilities[i, class_id])})
    return explained
