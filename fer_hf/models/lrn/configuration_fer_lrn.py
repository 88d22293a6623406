"""Configuration of the FER "classic DNN" with local response normalisation (`model_type="fer_lrn"`)."""

from transformers import PretrainedConfig

#: Canonical FER2013 label ids (the order of the original ``emotion`` column).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


#: Named configurations of the family (keyword arguments of `FerLRNConfig`).
FER_LRN_PRESETS = {
    "fer-lrn": {},
    "cifar10-tutorial": {"kernel_sizes": [5, 5]},
}


class FerLRNConfig(PretrainedConfig):
    r"""
    Configuration of [`FerLRNForImageClassification`], "the classic DNN": the cuda-convnet CIFAR-10 network of
    Krizhevsky (layers-18pct, as re-implemented in the TensorFlow CIFAR-10 tutorial) applied to 48x48 faces.
    Its mark is local response normalisation (LRN, Krizhevsky et al., 2012, "ImageNet Classification with
    Deep Convolutional Neural Networks") after the convolutions.

    The network is ``len(hidden_sizes)`` stages; stage *i* is a ``kernel_sizes[i]`` x ``kernel_sizes[i]``
    convolution with ``hidden_sizes[i]`` output channels ("same" padding, stride 1) + ReLU, then max-pooling
    (``pool_kernel_size`` window, ``pool_stride`` stride, padding ``(pool_kernel_size - 1) // 2``) and LRN, in
    the order ``lrn_before_pool[i]`` says. The feature map is flattened and fed to fully connected layers
    (``classifier_hidden_sizes``, each + ReLU, optional dropout before each linear layer) and a linear output.

    Defaults (preset ``fer-lrn``): conv 5x5x64 + ReLU + max-pool 3x3 stride 2 (overlapping, as in that net)
    + LRN -> conv 3x3x64 + ReLU + LRN + max-pool 3x3 stride 2 -> FC 384 -> FC 192 -> ``num_labels``; on a 48x48
    face the maps are 64x24x24 then 64x12x12 (9216 features), 3.65M parameters (99% in the FC layers),
    about 0.057 GFLOPs. Preset ``cifar10-tutorial`` uses a 5x5 second convolution, as the TensorFlow
    tutorial does. The tutorial's L2 weight decay on the FC layers is the optimiser's ``--weight_decay``.

    LRN computes ``b_c = a_c / (lrn_k + lrn_alpha / lrn_size * sum_{c' in window} a_c'^2) ** lrn_beta`` over a
    window of ``lrn_size`` neighbouring channels ([`torch.nn.LocalResponseNorm`]: ``lrn_alpha`` is divided by
    the window size). The defaults (size 9, alpha 0.001, beta 0.75, k 1) equal the TensorFlow tutorial's
    ``tf.nn.lrn(depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)``.

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            Channels of `pixel_values` (1 = grayscale).
        image_size (`int`, *optional*, defaults to 48):
            Height and width of `pixel_values`, in pixels.
        hidden_sizes (`list[int]`, *optional*, defaults to `[64, 64]`):
            Output channels of the convolution of each stage.
        kernel_sizes (`list[int]`, *optional*, defaults to `[5, 3]`):
            Odd side length, in pixels, of the convolution kernel of each stage (one per stage).
        lrn_before_pool (`list[bool]`, *optional*, defaults to `[False, True]`):
            Per stage, whether LRN comes before the max-pooling (`True`: conv, ReLU, LRN, pool) or after it
            (`False`: conv, ReLU, pool, LRN). The default is the order of the cuda-convnet / TensorFlow net.
        pool_kernel_size (`int`, *optional*, defaults to 3):
            Window of the max-pooling layers (3 with stride 2 = overlapping pooling; 2 with stride 2 = the
            usual non-overlapping pooling).
        pool_stride (`int`, *optional*, defaults to 2):
            Stride of the max-pooling layers.
        lrn_size (`int`, *optional*, defaults to 9):
            Number of neighbouring channels in the LRN window.
        lrn_alpha (`float`, *optional*, defaults to 0.001):
            LRN scale (PyTorch convention: divided by ``lrn_size``).
        lrn_beta (`float`, *optional*, defaults to 0.75):
            LRN exponent.
        lrn_k (`float`, *optional*, defaults to 1.0):
            LRN additive constant ("bias").
        classifier_hidden_sizes (`list[int]`, *optional*, defaults to `[384, 192]`):
            Widths of the hidden fully connected layers (each followed by ReLU).
        dropout_rate (`float`, *optional*, defaults to 0.0):
            Dropout probability before each linear layer of the head (0 = no dropout layers, as in the original).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of the linear layers (convolutions use Kaiming normal).
        id2label / label2id / num_labels:
            Label mapping; defaults to the 7 canonical FER2013 labels
            (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral).
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from fer_hf.models.lrn import FerLRNConfig, FerLRNForImageClassification
    >>> model = FerLRNForImageClassification(FerLRNConfig())
    ```
    """

    model_type = "fer_lrn"

    def __init__(
        self,
        num_channels=1,
        image_size=48,
        hidden_sizes=None,
        kernel_sizes=None,
        lrn_before_pool=None,
        pool_kernel_size=3,
        pool_stride=2,
        lrn_size=9,
        lrn_alpha=0.001,
        lrn_beta=0.75,
        lrn_k=1.0,
        classifier_hidden_sizes=None,
        dropout_rate=0.0,
        initializer_range=0.02,
        **kwargs,
    ):
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(FER2013_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(FER2013_LABELS)}
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.image_size = image_size
        self.hidden_sizes = list(hidden_sizes) if hidden_sizes is not None else [64, 64]
        self.kernel_sizes = list(kernel_sizes) if kernel_sizes is not None else [5, 3]
        self.lrn_before_pool = [bool(b) for b in lrn_before_pool] if lrn_before_pool is not None else [False, True]
        self.pool_kernel_size = pool_kernel_size
        self.pool_stride = pool_stride
        self.lrn_size = lrn_size
        self.lrn_alpha = lrn_alpha
        self.lrn_beta = lrn_beta
        self.lrn_k = lrn_k
        self.classifier_hidden_sizes = (list(classifier_hidden_sizes) if classifier_hidden_sizes is not None
                                        else [384, 192])
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        stages = len(self.hidden_sizes)
        if not stages or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be a non-empty list of positive ints; got {self.hidden_sizes}")
        for name in ("kernel_sizes", "lrn_before_pool"):
            if len(getattr(self, name)) != stages:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {stages} stages "
                                 f"(hidden_sizes={self.hidden_sizes})")
        if any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd positive ints ('same' padding); got {self.kernel_sizes}")
        if pool_kernel_size < 1 or pool_stride < 1 or lrn_size < 1:
            raise ValueError(f"pool_kernel_size={pool_kernel_size}, pool_stride={pool_stride} and "
                             f"lrn_size={lrn_size} must be >= 1")
        if self.classifier_hidden_sizes and min(self.classifier_hidden_sizes) < 1:
            raise ValueError(f"classifier_hidden_sizes must hold positive ints; got {self.classifier_hidden_sizes}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate={dropout_rate} must be in [0, 1)")
        side = image_size
        for _ in range(stages):
            side = (side + 2 * ((pool_kernel_size - 1) // 2) - pool_kernel_size) // pool_stride + 1
        if num_channels < 1 or side < 1:
            raise ValueError(f"num_channels={num_channels} must be >= 1 and image_size={image_size} must leave a "
                             f"feature map of at least 1x1 after {stages} poolings (got {side})")
