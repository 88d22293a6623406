"""Configuration of the fer_hf ensemble (`model_type="fer_ensemble"`)."""

from transformers import PretrainedConfig


class FerEnsembleConfig(PretrainedConfig):
    r"""
    Configuration of [`FerEnsembleForImageClassification`]: a weighted average of the softmax outputs of
    several trained fer_hf models (any families, e.g. a VGG and an EfficientNet-B0, as the EfficientNet
    system fer_hf grew from averaged two models with weights 0.45 / 0.55). The ensemble is one
    `PreTrainedModel`: its safetensors file holds every member's weights, under ``members.<i>.``.

    The ensemble takes one input, `pixel_values` (batch, ``num_channels``, ``image_size``,
    ``image_size``) normalized with ``image_mean`` / ``image_std`` (what its image processor produces:
    grayscale faces, or colour ones when a member reads colour); each member receives the face at its own size
    (bilinear, antialiased), channel count (grayscale replicated to 3 channels, colour turned gray for a member
    trained on gray faces) and normalization, as in its own training.

    Args:
        members (`list[dict]`):
            One entry per member: ``{"name": str, "config": member config dict (``to_dict()``),
            "image_mean": list[float], "image_std": list[float], "do_grayscale": bool}`` (the member's processor
            statistics, and whether a 3-channel member reads gray faces; absent: True, the processor default).
        member_weights (`list[float]`, *optional*):
            Non-negative averaging weights, one per member; normalised to sum to 1. Default: equal.
            fer_hf fits them on FER2013 PublicTest only (`fer_hf.ensembling.fit_member_weights`).
        num_channels (`int`, *optional*, defaults to 1): channels of the ensemble's input (3 when a member reads
            colour).
        image_size (`int`, *optional*, defaults to 48): height and width of the ensemble's input, in pixels.
        image_mean (`list[float]`, *optional*, defaults to `[0.5]`): normalization mean of the input.
        image_std (`list[float]`, *optional*, defaults to `[0.25]`): normalization std of the input.
        logit_adjustment (`list[float]`, *optional*): per-class biases added to the ensemble's logits (the log of
            the averaged probabilities) in ``forward``: a prior correction (`fer_hf.training.prior_correction`,
            e.g. post-hoc logit adjustment with the members' training prior, Menon et al., ICLR 2021). None
            (default) adds nothing. The model card states where the biases come from.
        id2label / label2id / num_labels: the label set, which every member must share.
        kwargs: passed to [`PretrainedConfig`].

    Raises:
        ValueError: when members disagree on labels, weights do not match the members, or
            ``logit_adjustment`` does not have one bias per label.
    """

    model_type = "fer_ensemble"

    def __init__(self, members=None, member_weights=None, num_channels=1, image_size=48, image_mean=None,
                 image_std=None, logit_adjustment=None, **kwargs):
        members = [dict(m) for m in (members or [])]
        if members and "id2label" not in kwargs and "num_labels" not in kwargs:
            id2label = {int(k): v for k, v in members[0]["config"]["id2label"].items()}
            kwargs["id2label"] = id2label
            kwargs["label2id"] = {v: k for k, v in id2label.items()}
        super().__init__(**kwargs)
        for member in members:
            labels = [member["config"]["id2label"][k] for k in sorted(member["config"]["id2label"], key=int)]
            if labels != [self.id2label[i] for i in range(self.num_labels)]:
                raise ValueError(f"member {member.get('name')} predicts {labels}, the ensemble "
                                 f"{[self.id2label[i] for i in range(self.num_labels)]}")
        if member_weights is None:
            member_weights = [1.0] * len(members)
        if len(member_weights) != len(members):
            raise ValueError(f"{len(member_weights)} member_weights for {len(members)} members")
        if any(w < 0 for w in member_weights) or (members and sum(member_weights) <= 0):
            raise ValueError(f"member_weights must be non-negative with a positive sum, got {member_weights}")
        total = sum(member_weights) or 1.0
        self.members = members
        self.member_weights = [float(w) / total for w in member_weights]
        self.num_channels = num_channels
        self.image_size = image_size
        self.image_mean = list(image_mean) if image_mean is not None else [0.5] * num_channels
        self.image_std = list(image_std) if image_std is not None else [0.25] * num_channels
        self.logit_adjustment = None if logit_adjustment is None else [float(v) for v in logit_adjustment]
        if self.logit_adjustment is not None and len(self.logit_adjustment) != self.num_labels:
            raise ValueError(f"logit_adjustment needs one bias per label ({self.num_labels}); "
                             f"got {len(self.logit_adjustment)}")
