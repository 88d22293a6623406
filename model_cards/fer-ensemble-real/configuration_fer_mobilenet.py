# Generated from fer_hf/models/mobilenet/configuration_fer_mobilenet.py by `python utils/fix_copies.py`: do not edit this copy;
# edit fer_hf/models/mobilenet/configuration_fer_mobilenet.py and rerun the command (`--check` tells whether the copies are current).
"""Configuration of the FER MobileNetV2 (`model_type="fer_mobilenet"`), the colour, ImageNet-initialised
family for faces in real photos."""

from transformers import PretrainedConfig

#: Canonical FER2013 label ids (the order of the original ``emotion`` column).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

#: Named configurations of the family (keyword arguments of `FerMobileNetConfig`).
FER_MOBILENET_PRESETS = {
    "fer-mobilenet-v2-96": {"image_size": 96},
    "fer-mobilenet-v2-112": {"image_size": 112},
    "fer-mobilenet-v2-128": {"image_size": 128},
}


class FerMobileNetConfig(PretrainedConfig):
    r"""
    Configuration of [`FerMobileNetForImageClassification`]: MobileNetV2 (Sandler et al., 2018,
    "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR) for colour face crops.

    The backbone is torchvision's ``mobilenet_v2`` (same module and key names: ``features.0.0.weight``,
    ``features.1.conv.0.0.weight``, ...): a stride-2 3x3 stem, 17 inverted-residual blocks in 7 stages, a
    1x1 convolution to 1280 channels (``1280 * max(1, width_mult)``), global average pooling; the
    1000-class ImageNet classifier is replaced by dropout(``dropout_rate``) -> linear(-> ``num_labels``).
    Total stride 32: a 96 px face leaves a 3x3 map, 112 px 4x4 (rounded up), 128 px 4x4.

    The family is meant to start from ImageNet weights (torchvision's ``MobileNet_V2_Weights.IMAGENET1K_V1``
    file, read through ``backbone_weights`` by `fer_hf.backbones.load_backbone_weights` in the training
    script), so its processor uses ImageNet's RGB mean and std and 3 channels: a grayscale face is fed as
    three equal channels.

    Args:
        num_channels (`int`, *optional*, defaults to 3):
            Channels of `pixel_values` (3: RGB; a gray face is replicated to 3 equal channels by the
            processor). 1 is accepted (the ImageNet stem is then summed over RGB when loaded).
        image_size (`int`, *optional*, defaults to 112):
            Height and width of `pixel_values`, in pixels (at least 32). The network is fully convolutional
            up to global average pooling, so this sets the processor's output and the cost (proportional
            to ``image_size**2``), not any weight shape.
        width_mult (`float`, *optional*, defaults to 1.0):
            Channel multiplier (1.0 is the only width with published ImageNet weights here).
        dropout_rate (`float`, *optional*, defaults to 0.2):
            Dropout probability before the classifier (torchvision's value).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of the classifier (the backbone keeps torchvision's init).
        backbone_weights (`str`, *optional*):
            Where the ImageNet (torchvision-layout) backbone weights come from: a ``.pth`` / ``.pt`` state
            dict (read with ``torch.load(weights_only=True)``), a ``.safetensors`` file, a folder holding
            ``model.safetensors`` or a Hub repo id. Read only by `load_backbone_weights` on a fresh model
            (the training script); ``from_pretrained`` restores every weight from the model's own folder.
            After loading it records the source, so the model card can say what the model started from.
        logit_adjustment (`list[float]`, *optional*):
            Per-class biases added to the logits in ``forward`` (prior correction fitted on development faces
            of the target domain, see `fer_hf.training.prior_correction`); None (default) adds nothing. The
            model card states where they were fitted.
        id2label / label2id / num_labels:
            Label mapping; defaults to the 7 canonical FER2013 labels
            (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral).
        kwargs:
            Passed to [`PretrainedConfig`].

    Raises:
        ValueError: for a non-positive ``num_channels``, an ``image_size`` under 32, a non-positive
            ``width_mult``, a ``dropout_rate`` outside [0, 1), a ``backbone_weights`` that is not a string or a
            ``logit_adjustment`` whose length is not ``num_labels``.

    Example:

    ```python
    >>> from fer_hf.models.mobilenet import FerMobileNetConfig, FerMobileNetForImageClassification
    >>> model = FerMobileNetForImageClassification(FerMobileNetConfig(image_size=96))
    ```
    """

    model_type = "fer_mobilenet"

    def __init__(
        self,
        num_channels=3,
        image_size=112,
        width_mult=1.0,
        dropout_rate=0.2,
        initializer_range=0.02,
        backbone_weights=None,
        logit_adjustment=None,
        **kwargs,
    ):
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(FER2013_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(FER2013_LABELS)}
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.image_size = image_size
        self.width_mult = width_mult
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        self.backbone_weights = backbone_weights
        self.logit_adjustment = None if logit_adjustment is None else [float(v) for v in logit_adjustment]
        if self.logit_adjustment is not None and len(self.logit_adjustment) != self.num_labels:
            raise ValueError(f"logit_adjustment needs one bias per label ({self.num_labels}); "
                             f"got {len(self.logit_adjustment)}")
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"num_channels must be a positive integer; got {num_channels!r}")
        if not isinstance(image_size, int) or image_size < 32:
            raise ValueError(f"image_size must be an integer >= 32 (pixels); got {image_size!r}")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0; got {width_mult!r}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate!r}")
        if backbone_weights is not None and not isinstance(backbone_weights, str):
            raise ValueError(f"backbone_weights must be a path or Hub repo id string, or None; "
                             f"got {backbone_weights!r}")
