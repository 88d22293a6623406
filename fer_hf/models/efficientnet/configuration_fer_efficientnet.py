"""Configuration of the FER EfficientNet-B0 (`model_type="fer_efficientnet"`)."""

from transformers import PretrainedConfig

#: Canonical FER2013 label ids (the order of the original ``emotion`` column).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

#: Named configurations of the family (keyword arguments of `FerEfficientNetConfig`).
FER_EFFICIENTNET_PRESETS = {
    "fer-efficientnet-b0": {},
    "fer-efficientnet-b0-stride1": {"first_stride": 1},
    "fer-efficientnet-b0-96": {"image_size": 96},
}


class FerEfficientNetConfig(PretrainedConfig):
    r"""
    Configuration of [`FerEfficientNetForImageClassification`], EfficientNet-B0 for grayscale face crops
    (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML).

    The backbone is torchvision's EfficientNet-B0 (``torchvision.models.EfficientNet`` with the B0 table,
    Table 1 of the paper: the same modules and key names as ``torchvision.models.efficientnet_b0(
    weights=None)``): a 3x3 stem convolution, 16 MBConv blocks with squeeze-and-excitation and stochastic
    depth in 7 stages, a 1x1 convolution to 1280 channels, global average pooling. Its stem convolution
    takes ``num_channels`` (1: grayscale) instead of 3, and the 1000-class classifier is replaced by
    dropout(``dropout_rate``) -> linear(1280 -> ``num_labels``).

    ``first_stride`` (the stem stride) and cost per face (one forward, counted by
    ``torch.utils.flop_counter.FlopCounterMode``):

    - ``2`` (default, ImageNet's): total stride 32, a 48x48 face leaves a 2x2 map; 0.045 GFLOPs. The
      project measured ~70 images/s training at 48x48 with this stem on its 2-core CPU (depthwise
      convolutions are slow on CPU for their FLOPs), already slower than the VGG family: the default,
      because the training budget is CPU time.
    - ``1``: total stride 16 (3x3 map at 48x48), keeps more of a small face's detail in the early
      layers; 0.14 GFLOPs (~3x; 4x the pixels after the stem, less than 4x overall because of the
      rounding of tiny maps), so roughly 3-4x the training time. Stem weights have the same shape either
      way, so ImageNet weights load with both.

    Larger inputs cost the same way (~4x the pixels): ``image_size=96`` with ``first_stride=2`` gives
    the stages exactly the maps of ``first_stride=1`` at 48, so the same 0.14 GFLOPs.

    With ImageNet weights (``backbone_weights``), the summed grayscale stem sees a gray face as the RGB
    stem would see it replicated to RGB; give the 1-channel processor ImageNet's gray statistics,
    ``image_mean=[0.449]`` and ``image_std=[0.226]`` (the means of ImageNet's per-channel values); they
    are processor settings, not fields of this config.

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            Channels of `pixel_values` (1 = grayscale; 3 is accepted for a processor that replicates
            gray to RGB).
        image_size (`int`, *optional*, defaults to 48):
            Height and width of `pixel_values`, in pixels (at least 8). The network is fully
            convolutional up to global average pooling, so this sets what the processor produces and
            the cost (proportional to ``image_size**2``), not any weight shape.
        first_stride (`int`, *optional*, defaults to 2):
            Stride of the stem convolution, 2 or 1 (see above).
        width_mult (`float`, *optional*, defaults to 1.0):
            Channel multiplier of the compound scaling (1.0 = B0; channels are rounded to multiples of 8).
        depth_mult (`float`, *optional*, defaults to 1.0):
            Block-count multiplier of the compound scaling (1.0 = B0; counts are rounded up).
        dropout_rate (`float`, *optional*, defaults to 0.2):
            Dropout probability before the classifier (torchvision's B0 value).
        stochastic_depth_prob (`float`, *optional*, defaults to 0.2):
            Drop probability of the last MBConv block's residual branch, rising linearly from 0 over the
            blocks (torchvision's value).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of the classifier (the backbone keeps torchvision's
            init: Kaiming-normal convolutions, BatchNorm weight 1 / bias 0).
        backbone_weights (`str`, *optional*):
            Where ImageNet (or other torchvision-layout) backbone weights come from: a local
            ``.safetensors`` file, a ``.pth`` / ``.pt`` torchvision state dict (read with
            ``torch.load(weights_only=True)``), a folder holding ``model.safetensors``, or a Hub repo id
            whose ``model.safetensors`` uses torchvision's key names (``features.0.0.weight``, ...; timm's
            EfficientNet checkpoints use other names and do not load). Only [`load_backbone_weights`]
            reads it (meant for the training script, on a fresh model); constructing the model or
            ``from_pretrained`` never does. After loading it records the source.
        id2label / label2id / num_labels:
            Label mapping; defaults to the 7 canonical FER2013 labels
            (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral).
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from fer_hf.models.efficientnet import FerEfficientNetConfig, FerEfficientNetForImageClassification
    >>> model = FerEfficientNetForImageClassification(FerEfficientNetConfig())
    ```
    """

    model_type = "fer_efficientnet"

    def __init__(
        self,
        num_channels=1,
        image_size=48,
        first_stride=2,
        width_mult=1.0,
        depth_mult=1.0,
        dropout_rate=0.2,
        stochastic_depth_prob=0.2,
        initializer_range=0.02,
        backbone_weights=None,
        **kwargs,
    ):
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(FER2013_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(FER2013_LABELS)}
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.image_size = image_size
        self.first_stride = first_stride
        self.width_mult = width_mult
        self.depth_mult = depth_mult
        self.dropout_rate = dropout_rate
        self.stochastic_depth_prob = stochastic_depth_prob
        self.initializer_range = initializer_range
        self.backbone_weights = backbone_weights
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"num_channels must be a positive integer; got {num_channels!r}")
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8 (pixels); got {image_size!r}")
        if first_stride not in (1, 2):
            raise ValueError(f"first_stride must be 1 or 2; got {first_stride!r}")
        if not (width_mult > 0 and depth_mult > 0):
            raise ValueError(f"width_mult and depth_mult must be > 0; got {width_mult!r}, {depth_mult!r}")
        for name in ("dropout_rate", "stochastic_depth_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)!r}")
        if backbone_weights is not None and not isinstance(backbone_weights, str):
            raise ValueError(f"backbone_weights must be a path or Hub repo id string, or None; "
                             f"got {backbone_weights!r}")
