"""Configuration of the FER ResNet-18 transfer model (`model_type="fer_resnet"`)."""

from transformers import PretrainedConfig

#: Canonical FER2013 label ids (the order of the original ``emotion`` column).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

#: ``stem_type`` -> (first convolution kernel size, its stride, whether the 3x3 stride-2 max-pool follows).
FER_RESNET_STEMS = {
    "imagenet": (7, 2, True),
    "small": (3, 1, True),
    "cifar": (3, 1, False),
}

#: Named configurations of the family (keyword arguments of `FerResNetConfig`).
FER_RESNET_PRESETS = {
    "fer-resnet18": {},
    "fer-resnet18-small-stem": {"stem_type": "small"},
    "fer-resnet18-cifar-stem": {"stem_type": "cifar"},
    "fer-resnet18-112": {"image_size": 112},
}


class FerResNetConfig(PretrainedConfig):
    r"""
    Configuration of [`FerResNetForImageClassification`], a ResNet-18 transfer model for face crops
    (He, Zhang, Ren & Sun, 2016, "Deep Residual Learning for Image Recognition", CVPR).

    The backbone is torchvision's ResNet (``torchvision.models.ResNet(BasicBlock, depths)``; with the
    default ``depths=[2, 2, 2, 2]`` it is exactly ``torchvision.models.resnet18(weights=None)``) with its
    1000-class ``fc`` replaced by the transfer head: global average pooling -> linear 512 ->
    ``classifier_hidden_size`` (256) -> BatchNorm1d -> ReLU -> Dropout(``dropout_rate``, 0.5) -> linear
    ``num_labels``. The input is 3-channel: the grayscale face replicated to RGB by
    ``FerImageProcessor(num_channels=3, do_grayscale=True)``, so ImageNet weights fit the stem unchanged.

    Stems (``stem_type``) and their cost per 48x48 face (one forward, counted by
    ``torch.utils.flop_counter.FlopCounterMode``; all stages are torchvision's, only the stem differs):

    - ``"imagenet"`` (default): 7x7 stride-2 convolution + 3x3 stride-2 max-pool, total stride 32, so a
      48x48 face leaves a 2x2 map after ``layer4``; 0.20 GFLOPs. The only stem cheap enough to train
      ResNet-18 on the project's 2-core CPU in reasonable time, and the one whose ImageNet stem weights
      load unchanged; hence the default.
    - ``"small"``: 3x3 stride-1 convolution + the max-pool, total stride 16 (3x3 map at 48x48);
      0.63 GFLOPs (~3x). The 7x7 ImageNet stem kernel does not fit and stays randomly initialised.
    - ``"cifar"``: 3x3 stride-1 convolution, no max-pool, total stride 8 (6x6 map at 48x48), as for
      32x32 CIFAR images; 2.5 GFLOPs (~13x: the stages see 16x the pixels). The project measured
      ~5 images/s training at 48x48 on its CPU: too slow there, meant for a GPU.

    Transfer setups often upsample the 48x48 faces instead (``image_size=96`` or ``112`` with the
    ImageNet stem: 3x3 / 4x4 final maps); the cost grows with the pixel count: ~4x at 96, ~5.4x at 112.

    With ImageNet weights (``backbone_weights``), give the image processor ImageNet's statistics,
    ``image_mean=[0.485, 0.456, 0.406]`` and ``image_std=[0.229, 0.224, 0.225]``; they are processor
    settings, not fields of this config.

    Args:
        num_channels (`int`, *optional*, defaults to 3):
            Channels of `pixel_values` (3 = grayscale replicated to RGB; 1 is accepted too, and ImageNet
            stem kernels are then summed over their RGB axis).
        image_size (`int`, *optional*, defaults to 48):
            Height and width of `pixel_values`, in pixels (at least 8). The network is fully
            convolutional up to global average pooling, so this sets what the processor produces and
            the cost (proportional to ``image_size**2``), not any weight shape.
        depths (`list[int]`, *optional*, defaults to `[2, 2, 2, 2]`):
            Number of BasicBlocks in each of the four stages (64, 128, 256, 512 channels);
            ``[2, 2, 2, 2]`` is ResNet-18, ``[1, 1, 1, 1]`` a ResNet-10.
        stem_type (`str`, *optional*, defaults to `"imagenet"`):
            One of ``"imagenet"``, ``"small"``, ``"cifar"`` (see above).
        classifier_hidden_size (`int`, *optional*, defaults to 256):
            Width of the hidden layer of the head (512 -> this -> ``num_labels``).
        dropout_rate (`float`, *optional*, defaults to 0.5):
            Dropout probability before the last linear layer of the head.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of the head's linear layers (the backbone keeps
            torchvision's init: Kaiming-normal convolutions, BatchNorm weight 1 / bias 0).
        backbone_weights (`str`, *optional*):
            Where ImageNet (or other torchvision-layout) backbone weights come from: a local
            ``.safetensors`` file, a ``.pth`` / ``.pt`` torchvision state dict (read with
            ``torch.load(weights_only=True)``), a folder holding ``model.safetensors``, or a Hub repo id
            whose ``model.safetensors`` uses torchvision's key names (e.g. ``"timm/resnet18.tv_in1k"``).
            Only [`load_backbone_weights`] reads it (meant for the training script, on a fresh model);
            constructing the model or ``from_pretrained`` never does. After loading it records the source.
        id2label / label2id / num_labels:
            Label mapping; defaults to the 7 canonical FER2013 labels
            (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral).
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from fer_hf.models.resnet import FerResNetConfig, FerResNetForImageClassification
    >>> model = FerResNetForImageClassification(FerResNetConfig())
    ```
    """

    model_type = "fer_resnet"

    def __init__(
        self,
        num_channels=3,
        image_size=48,
        depths=None,
        stem_type="imagenet",
        classifier_hidden_size=256,
        dropout_rate=0.5,
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
        self.depths = list(depths) if depths is not None else [2, 2, 2, 2]
        self.stem_type = stem_type
        self.classifier_hidden_size = classifier_hidden_size
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        self.backbone_weights = backbone_weights
        for name in ("num_channels", "classifier_hidden_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8 (pixels); got {image_size!r}")
        if len(self.depths) != 4 or not all(isinstance(d, int) and d >= 1 for d in self.depths):
            raise ValueError(f"depths must be 4 positive integers (blocks per stage); got {self.depths!r}")
        if stem_type not in FER_RESNET_STEMS:
            raise ValueError(f"stem_type must be one of {sorted(FER_RESNET_STEMS)}; got {stem_type!r}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate!r}")
        if backbone_weights is not None and not isinstance(backbone_weights, str):
            raise ValueError(f"backbone_weights must be a path or Hub repo id string, or None; "
                             f"got {backbone_weights!r}")
