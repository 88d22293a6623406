"""Configuration of the FER 1x1-convolution CNN (`model_type="fer_conv1x1"`)."""

from transformers import PretrainedConfig

#: Canonical FER2013 label ids (the order of the original ``emotion`` column).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


#: Named configurations of the family (keyword arguments of `FerConv1x1Config`).
FER_CONV1X1_PRESETS = {
    "fer-conv1x1": {},
}


class FerConv1x1Config(PretrainedConfig):
    r"""
    Configuration of [`FerConv1x1ForImageClassification`], the first system fer_hf grew from: a shallow CNN
    whose first layer is a 1x1 convolution, for small grayscale face crops (48x48 FER2013 faces).

    The 1x1 ("network in network") convolution, as used in the Inception modules of Szegedy et al., 2015,
    "Going Deeper with Convolutions" (CVPR 2015) and in CVPR 2018 facial-expression work, maps every pixel
    to ``pointwise_channels`` features followed by a ReLU: a cheap per-pixel non-linearity before any spatial
    filtering. Then ``len(hidden_sizes)`` stages of (3x3 convolution with ``hidden_sizes[i]`` output
    channels + BatchNorm (if ``use_batch_norm``) + ReLU + 2x2 max-pooling, stride 2). The feature map
    (``hidden_sizes[-1]`` x ``image_size / 2**len(hidden_sizes)`` squared) is flattened and fed to a
    fully connected head: for each width in ``classifier_hidden_sizes``, dropout -> linear -> ReLU; then
    dropout -> linear(``num_labels``).

    The convolutional part is deliberately shallow and narrow: with the defaults (1x1 conv 1->32, stages
    32-64-128, head 4608->1024->512->7) the model has 5.35M parameters of which 5.25M (98%) are in the
    fully connected layers and 0.10M in the convolutions, and one 48x48 face costs about 0.096 GFLOPs.

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            Channels of `pixel_values` (1 = grayscale).
        image_size (`int`, *optional*, defaults to 48):
            Height and width of `pixel_values`, in pixels. Must be divisible by ``2**len(hidden_sizes)``.
        pointwise_channels (`int`, *optional*, defaults to 32):
            Output channels of the first layer, the 1x1 convolution (followed by ReLU).
        hidden_sizes (`list[int]`, *optional*, defaults to `[32, 64, 128]`):
            Output channels of the 3x3 convolution of each stage; every stage halves height and width.
        classifier_hidden_sizes (`list[int]`, *optional*, defaults to `[1024, 512]`):
            Widths of the hidden fully connected layers of the head (may be empty: a single linear layer).
        dropout_rate (`float`, *optional*, defaults to 0.5):
            Dropout probability before each linear layer of the head.
        use_batch_norm (`bool`, *optional*, defaults to `True`):
            BatchNorm after every 3x3 convolution (not after the 1x1 convolution nor in the head).
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
    >>> from fer_hf.models.conv1x1 import FerConv1x1Config, FerConv1x1ForImageClassification
    >>> model = FerConv1x1ForImageClassification(FerConv1x1Config())
    ```
    """

    model_type = "fer_conv1x1"

    def __init__(
        self,
        num_channels=1,
        image_size=48,
        pointwise_channels=32,
        hidden_sizes=None,
        classifier_hidden_sizes=None,
        dropout_rate=0.5,
        use_batch_norm=True,
        batch_norm_eps=1e-5,
        initializer_range=0.02,
        **kwargs,
    ):
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(FER2013_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(FER2013_LABELS)}
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.image_size = image_size
        self.pointwise_channels = pointwise_channels
        self.hidden_sizes = list(hidden_sizes) if hidden_sizes is not None else [32, 64, 128]
        self.classifier_hidden_sizes = (list(classifier_hidden_sizes) if classifier_hidden_sizes is not None
                                        else [1024, 512])
        self.dropout_rate = dropout_rate
        self.use_batch_norm = use_batch_norm
        self.batch_norm_eps = batch_norm_eps
        self.initializer_range = initializer_range
        if num_channels < 1 or pointwise_channels < 1:
            raise ValueError(f"num_channels={num_channels} and pointwise_channels={pointwise_channels} must be >= 1")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be a non-empty list of positive ints; got {self.hidden_sizes}")
        if self.classifier_hidden_sizes and min(self.classifier_hidden_sizes) < 1:
            raise ValueError(f"classifier_hidden_sizes must hold positive ints; got {self.classifier_hidden_sizes}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate={dropout_rate} must be in [0, 1)")
        if image_size < 1 or image_size % (2 ** len(self.hidden_sizes)) != 0:
            raise ValueError(
                f"image_size={image_size} must be a positive multiple of "
                f"2**len(hidden_sizes)={2 ** len(self.hidden_sizes)}"
            )
