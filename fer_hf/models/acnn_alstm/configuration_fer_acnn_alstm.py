"""Configuration of the FER ACNN-ALSTM hybrid (`model_type="fer_acnn_alstm"`)."""

from transformers import PretrainedConfig

#: Canonical FER2013 label ids (the order of the original ``emotion`` column).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

#: How the CNN feature map (batch, C, h, w) becomes the LSTM's sequence.
SEQUENCE_MODES = ("positions", "rows")


#: Named configurations of the family (keyword arguments of `FerACNNALSTMConfig`): the paper's model and
#: its two ablations.
FER_ACNN_ALSTM_PRESETS = {
    "acnn-alstm": {},
    "cnn-alstm": {"use_local_attention": False},
    "cnn-lstm": {"use_local_attention": False, "use_global_attention": False},
}


class FerACNNALSTMConfig(PretrainedConfig):
    r"""
    Configuration of [`FerACNNALSTMForImageClassification`], a CNN-LSTM with a two-layer attention mechanism
    after Ming Ye, Qian Hu and Guangyuan Liu, 2022, "CNN-LSTM Facial Expression Recognition Method Fused with
    Two-Layer Attention Mechanism", Computational Intelligence and Neuroscience, article 7450637
    (doi:10.1155/2022/7450637), for 48x48 grayscale faces.

    Pipeline: a CNN extracts local features -> *local-feature attention* re-weights the channels and the
    spatial positions of the final feature map -> the map is read as a sequence by an LSTM -> *global
    attention* pools the LSTM outputs with learned weights -> a classifier. The paper's three models are
    configurations of this one class (`FER_ACNN_ALSTM_PRESETS`):

    - ``acnn-alstm`` (the defaults): both attention layers.
    - ``cnn-alstm``: ``use_local_attention=False`` (attention on the LSTM outputs only).
    - ``cnn-lstm``: both off; the LSTM's final hidden state is the face's representation.

    Details the paper's text available to us does not fix, chosen here (documented, configurable):
    the CNN is ``len(hidden_sizes)`` VGG-style stages of ``layers_per_stage`` x (3x3 conv, stride 1 [+ BatchNorm]
    + ReLU) + 2x2 max-pool (stride 2); the local attention is CBAM-style (Woo et al., 2018): channel attention
    (average- and max-pooled descriptors through a shared bottleneck MLP, sigmoid) then spatial attention
    (a ``local_attention_kernel_size`` convolution over the channel-mean and channel-max maps, sigmoid), both
    multiplying the map; the sequence is the map's spatial positions in raster order (``sequence_mode``);
    the global attention is additive (Bahdanau-style) attention pooling, ``softmax_t(v . tanh(W h_t + b))``.

    Defaults: CNN 32-64-128 (two convolutions per stage) -> 128x6x6 map -> 36-step sequence of 128-d vectors
    -> LSTM 128 -> attention pooling -> dropout -> FC 128 + ReLU -> dropout -> ``num_labels``; 0.45M parameters,
    about 0.18 GFLOPs per 48x48 face.

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            Channels of `pixel_values` (1 = grayscale).
        image_size (`int`, *optional*, defaults to 48):
            Height and width of `pixel_values`, in pixels. Must be divisible by ``2**len(hidden_sizes)``.
        hidden_sizes (`list[int]`, *optional*, defaults to `[32, 64, 128]`):
            Output channels of the convolutions of each CNN stage; every stage halves height and width.
        layers_per_stage (`int`, *optional*, defaults to 2):
            Number of 3x3 conv [+ BatchNorm] + ReLU blocks per stage.
        use_batch_norm (`bool`, *optional*, defaults to `True`):
            BatchNorm after every convolution of the CNN.
        batch_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the BatchNorm layers.
        use_local_attention (`bool`, *optional*, defaults to `True`):
            Local-feature (channel + spatial) attention on the CNN's final feature map ("A" of "ACNN").
        local_attention_reduction (`int`, *optional*, defaults to 8):
            Channel-attention bottleneck: the MLP's hidden width is ``max(1, hidden_sizes[-1] // reduction)``.
        local_attention_kernel_size (`int`, *optional*, defaults to 3):
            Odd side length, in feature-map cells, of the spatial-attention convolution.
        sequence_mode (`str`, *optional*, defaults to `"positions"`):
            How the (C, h, w) map becomes the LSTM input: ``"positions"``, h*w steps of C features (raster
            order, top-left first); ``"rows"``, h steps (top to bottom) of C*w features.
        lstm_hidden_size (`int`, *optional*, defaults to 128):
            Hidden size of the LSTM (per direction).
        lstm_num_layers (`int`, *optional*, defaults to 1):
            Number of stacked LSTM layers.
        bidirectional (`bool`, *optional*, defaults to `False`):
            Bidirectional LSTM (the representation is then ``2 * lstm_hidden_size`` wide).
        use_global_attention (`bool`, *optional*, defaults to `True`):
            Attention pooling over the LSTM outputs ("A" of "ALSTM"); when `False`, the final hidden state(s)
            of the LSTM's last layer are used.
        global_attention_size (`int`, *optional*, defaults to 64):
            Width of the global attention's scoring layer ``W``.
        classifier_hidden_size (`int`, *optional*, defaults to 128):
            Width of the hidden layer of the classification head; 0 for a single linear layer.
        dropout_rate (`float`, *optional*, defaults to 0.5):
            Dropout probability before each linear layer of the head.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal init of the linear layers (convolutions use Kaiming normal,
            the LSTM Xavier-uniform input and orthogonal recurrent weights).
        id2label / label2id / num_labels:
            Label mapping; defaults to the 7 canonical FER2013 labels
            (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral).
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from fer_hf.models.acnn_alstm import FerACNNALSTMConfig, FerACNNALSTMForImageClassification
    >>> model = FerACNNALSTMForImageClassification(FerACNNALSTMConfig(use_local_attention=False))  # CNN-ALSTM
    ```
    """

    model_type = "fer_acnn_alstm"

    def __init__(
        self,
        num_channels=1,
        image_size=48,
        hidden_sizes=None,
        layers_per_stage=2,
        use_batch_norm=True,
        batch_norm_eps=1e-5,
        use_local_attention=True,
        local_attention_reduction=8,
        local_attention_kernel_size=3,
        sequence_mode="positions",
        lstm_hidden_size=128,
        lstm_num_layers=1,
        bidirectional=False,
        use_global_attention=True,
        global_attention_size=64,
        classifier_hidden_size=128,
        dropout_rate=0.5,
        initializer_range=0.02,
        **kwargs,
    ):
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(FER2013_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(FER2013_LABELS)}
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.image_size = image_size
        self.hidden_sizes = list(hidden_sizes) if hidden_sizes is not None else [32, 64, 128]
        self.layers_per_stage = layers_per_stage
        self.use_batch_norm = use_batch_norm
        self.batch_norm_eps = batch_norm_eps
        self.use_local_attention = use_local_attention
        self.local_attention_reduction = local_attention_reduction
        self.local_attention_kernel_size = local_attention_kernel_size
        self.sequence_mode = sequence_mode
        self.lstm_hidden_size = lstm_hidden_size
        self.lstm_num_layers = lstm_num_layers
        self.bidirectional = bidirectional
        self.use_global_attention = use_global_attention
        self.global_attention_size = global_attention_size
        self.classifier_hidden_size = classifier_hidden_size
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be a non-empty list of positive ints; got {self.hidden_sizes}")
        positive = {"num_channels": num_channels, "layers_per_stage": layers_per_stage,
                    "local_attention_reduction": local_attention_reduction, "lstm_hidden_size": lstm_hidden_size,
                    "lstm_num_layers": lstm_num_layers, "global_attention_size": global_attention_size}
        bad = {name: value for name, value in positive.items() if value < 1}
        if bad:
            raise ValueError(f"{bad} must be >= 1")
        if local_attention_kernel_size < 1 or local_attention_kernel_size % 2 == 0:
            raise ValueError(f"local_attention_kernel_size={local_attention_kernel_size} must be an odd positive int")
        if sequence_mode not in SEQUENCE_MODES:
            raise ValueError(f"sequence_mode={sequence_mode!r} must be one of {SEQUENCE_MODES}")
        if classifier_hidden_size < 0:
            raise ValueError(f"classifier_hidden_size={classifier_hidden_size} must be >= 0 (0 = no hidden layer)")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate={dropout_rate} must be in [0, 1)")
        if image_size < 1 or image_size % (2 ** len(self.hidden_sizes)) != 0:
            raise ValueError(
                f"image_size={image_size} must be a positive multiple of "
                f"2**len(hidden_sizes)={2 ** len(self.hidden_sizes)}"
            )
