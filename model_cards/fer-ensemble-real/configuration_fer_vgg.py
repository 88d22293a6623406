# Generated from fer_hf/models/vgg/configuration_fer_vgg.py by `python utils/fix_copies.py`: do not edit this copy;
# edit fer_hf/models/vgg/configuration_fer_vgg.py and rerun the command (`--check` tells whether the copies are current).
"""Configuration of the FER VGG-style CNN (`model_type="fer_vgg"`)."""

from transformers import PretrainedConfig

#: Canonical FER2013 label ids (the order of the original ``emotion`` column).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


#: Named configurations of the family (keyword arguments of `FerVGGConfig`).
FER_VGG_PRESETS = {
    "fer-vgg": {},
    "ferplus-baseline": {"hidden_sizes": [32, 64, 128], "layers_per_stage": 1, "use_batch_norm": False,
                         "classifier_hidden_size": 256, "dropout_rate": 0.5},
    "ferplus-vgg": {"hidden_sizes": [64, 128, 256, 512], "layers_per_stage": 2,
                    "stage_dropout_rate": [0.2, 0.3, 0.4, 0.5], "classifier_hidden_size": 512, "dropout_rate": 0.5},
}


class FerVGGConfig(PretrainedConfig):
    r"""
    Configuration of [`FerVGGForImageClassification`], a VGG-style CNN for small grayscale face crops
    (Simonyan & Zisserman, 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
    adapted to 48x48 FER2013 faces as in the VGG-style FER2013 baselines this project grew from).

    The network is ``len(hidden_sizes)`` stages; stage *i* is ``layers_per_stage`` x (3x3 convolution with
    ``hidden_sizes[i]`` output channels + BatchNorm (if ``use_batch_norm``) + ReLU) followed by 2x2
    max-pooling (stride 2) and optional Dropout2d. The feature map (``hidden_sizes[-1]`` x
    ``image_size / 2**len(hidden_sizes)`` squared) is flattened and fed to a head: dropout ->
    linear(``classifier_hidden_size``) -> BatchNorm1d (if ``use_batch_norm``) -> ReLU -> dropout ->
    linear(``num_labels``).

    The family covers, as presets (`FER_VGG_PRESETS`, ``train_accelerate.py --model_type fer_vgg
    --config_preset NAME``):

    - ``fer-vgg`` (the defaults): 32-64-128-256 channels, two convolutions per stage, 2.4M parameters,
      the model fer_hf first released.
    - ``ferplus-baseline``: the FER+ system's 3-block baseline CNN: one 3x3 convolution + ReLU +
      max-pool per block (32, 64, 128 channels), no BatchNorm, one hidden dense layer of 256.
    - ``ferplus-vgg``: the FER+ system's "final" VGG-style net: double 3x3 convolutions with BatchNorm
      (64-128-256-512 channels), dropout rising 0.2 -> 0.3 -> 0.4 -> 0.5 after each block, dense 512
      + dropout 0.5; its L2 regularisation is the optimiser's weight decay (``--weight_decay``).

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            Channels of `pixel_values` (1 = grayscale).
        image_size (`int`, *optional*, defaults to 48):
            Height and width of `pixel_values`, in pixels. Must be divisible by ``2**len(hidden_sizes)``.
        hidden_sizes (`list[int]`, *optional*, defaults to `[32, 64, 128, 256]`):
            Output channels of the convolutions of each stage.
        layers_per_stage (`int`, *optional*, defaults to 2):
            Number of conv + BatchNorm + ReLU blocks per stage.
        classifier_hidden_size (`int`, *optional*, defaults to 512):
            Width of the hidden layer of the classification head.
        dropout_rate (`float`, *optional*, defaults to 0.5):
            Dropout probability before each linear layer of the head.
        stage_dropout_rate (`float` or `list[float]`, *optional*, defaults to 0.0):
            Dropout2d probability after each stage's pooling (0 disables it); a list gives one rate per
            stage (e.g. rising ``[0.2, 0.3, 0.4, 0.5]``).
        use_batch_norm (`bool`, *optional*, defaults to `True`):
            BatchNorm after every convolution and after the hidden dense layer.
        batch_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the BatchNorm layers.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of the linear layers (convolutions use Kaiming normal).
        id2label / label2id / num_labels:
            Label mapping; defaults to the 7 canonical FER2013 labels
            (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral).
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from fer_hf import FerVGGConfig, FerVGGForImageClassification
    >>> model = FerVGGForImageClassification(FerVGGConfig())
    ```
    """

    model_type = "fer_vgg"

    def __init__(
        self,
        num_channels=1,
        image_size=48,
        hidden_sizes=None,
        layers_per_stage=2,
        classifier_hidden_size=512,
        dropout_rate=0.5,
        stage_dropout_rate=0.0,
        batch_norm_eps=1e-5,
        initializer_range=0.02,
        use_batch_norm=True,
        **kwargs,
    ):
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(FER2013_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(FER2013_LABELS)}
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.image_size = image_size
        self.hidden_sizes = list(hidden_sizes) if hidden_sizes is not None else [32, 64, 128, 256]
        self.layers_per_stage = layers_per_stage
        self.classifier_hidden_size = classifier_hidden_size
        self.dropout_rate = dropout_rate
        self.stage_dropout_rate = (list(stage_dropout_rate) if isinstance(stage_dropout_rate, (list, tuple))
                                   else stage_dropout_rate)
        self.use_batch_norm = use_batch_norm
        self.batch_norm_eps = batch_norm_eps
        self.initializer_range = initializer_range
        if isinstance(self.stage_dropout_rate, list) and len(self.stage_dropout_rate) != len(self.hidden_sizes):
            raise ValueError(f"stage_dropout_rate has {len(self.stage_dropout_rate)} entries for "
                             f"{len(self.hidden_sizes)} stages")
        if image_size % (2 ** len(self.hidden_sizes)) != 0:
            raise ValueError(
                f"image_size={image_size} must be divisible by 2**len(hidden_sizes)={2 ** len(self.hidden_sizes)}"
            )
