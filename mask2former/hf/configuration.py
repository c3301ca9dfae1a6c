"""``Mask2FormerConfig``: transformers' configuration of the same name, without transformers.

Fields, defaults and the ``config.json`` layout follow ``transformers.Mask2FormerConfig``
(5.x), so a ``config.json`` written by transformers loads here and ours loads there. The
Swin backbone configuration is nested as ``backbone_config`` with transformers' ``SwinConfig``
field names. Settings are declared, typed dataclass fields; an unknown key is a TypeError
naming it, while the bookkeeping keys transformers writes (versions, names) are read and
dropped.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from mask2former.hf.checkpoint_io import CONFIG_NAME
from mask2former.hf.json_settings import (
    read_json,
    save_directory_file,
    settings_file,
    split_known,
    to_json_string,
    write_json,
)

logger = logging.getLogger(__name__)


# Keys transformers writes into every config that configure nothing here.
_BOOKKEEPING = frozenset(
    {
        "_name_or_path",
        "architectures",
        "chunk_size_feed_forward",
        "is_encoder_decoder",
        "problem_type",
        "transformers_version",
        "model_type",
    }
)
# Older transformers' switches for a timm / Hub backbone: only their "off" values describe a
# model with the nested Swin ``backbone_config``.
_BACKBONE_SWITCHES = ("backbone", "use_pretrained_backbone", "use_timm_backbone", "backbone_kwargs")


@dataclass(kw_only=True, eq=False)
class SwinBackboneConfig:
    """transformers' ``SwinConfig`` fields, as used by Mask2Former's Swin backbone.

    ``out_features`` / ``out_indices`` name the returned stages (``stem``, ``stage1``...);
    either may be given, and both are resolved (default: the last stage).
    """

    model_type: ClassVar[str] = "swin"
    # Written by transformers, derived from the fields; read and recomputed.
    _DERIVED: ClassVar[frozenset[str]] = frozenset({"num_layers", "hidden_size", "stage_names"})
    # Generic transformers settings the nested config carries but the backbone does not use.
    _UNUSED: ClassVar[frozenset[str]] = frozenset(
        {
            "id2label",
            "label2id",
            "output_attentions",
            "output_hidden_states",
            "return_dict",
            "dtype",
            "torch_dtype",
        }
    )

    image_size: int = 224
    patch_size: int = 4
    num_channels: int = 3
    embed_dim: int = 96
    depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    num_heads: list[int] = field(default_factory=lambda: [3, 6, 12, 24])
    window_size: int = 7
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    drop_path_rate: float = 0.1
    hidden_act: str = "gelu"
    use_absolute_embeddings: bool = False
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    encoder_stride: int = 32
    out_features: list[str] | None = None
    out_indices: list[int] | None = None

    def __post_init__(self) -> None:
        self.depths = list(self.depths)
        self.num_heads = list(self.num_heads)
        self.out_features, self.out_indices = self._resolve_outputs()

    @property
    def num_layers(self) -> int:
        return len(self.depths)

    @property
    def hidden_size(self) -> int:
        return int(self.embed_dim * 2 ** (len(self.depths) - 1))

    @property
    def stage_names(self) -> list[str]:
        return ["stem"] + [f"stage{i}" for i in range(1, len(self.depths) + 1)]

    def _resolve_outputs(self) -> tuple[list[str], list[int]]:
        names = self.stage_names
        if self.out_features is None and self.out_indices is None:
            return [names[-1]], [len(names) - 1]
        if self.out_features is None:
            return [names[i] for i in self.out_indices], list(self.out_indices)
        unknown = [name for name in self.out_features if name not in names]
        if unknown:
            raise ValueError(f"backbone_config.out_features: {unknown} not in stage names {names}")
        indices = [names.index(name) for name in self.out_features]
        if self.out_indices is not None and list(self.out_indices) != indices:
            raise ValueError(
                f"backbone_config: out_features {self.out_features} and out_indices "
                f"{self.out_indices} do not name the same stages"
            )
        return list(self.out_features), indices

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SwinBackboneConfig:
        """From a ``SwinConfig`` dict (transformers' ``to_dict``); unknown keys raise."""
        model_type = values.get("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(
                f"backbone_config.model_type: got {model_type!r}, only 'swin' is supported"
            )
        known = split_known(
            values,
            [f.name for f in fields(cls)],
            _BOOKKEEPING | cls._DERIVED | cls._UNUSED,
            "backbone_config",
        )
        return cls(**copy.deepcopy(known))

    def to_dict(self) -> dict[str, Any]:
        """All fields plus the derived ones, as transformers writes them."""
        result = asdict(self)
        result.update(
            model_type=self.model_type,
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            stage_names=self.stage_names,
        )
        return dict(sorted(result.items()))


def _as_backbone_config(value: Any) -> SwinBackboneConfig:
    """Accept None (Mask2Former's Swin default), a dict, or a config object with ``to_dict``."""
    if value is None:
        return SwinBackboneConfig(
            depths=[2, 2, 18, 2],
            drop_path_rate=0.3,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
    if isinstance(value, SwinBackboneConfig):
        return copy.deepcopy(value)
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise TypeError(
            f"backbone_config: expected None, a dict or a config object, got {type(value).__name__}"
        )
    return SwinBackboneConfig.from_dict(value)


def _default_labels(count: int) -> dict[int, str]:
    return {i: f"LABEL_{i}" for i in range(count)}


class _NumLabels:
    """``num_labels``: the length of ``id2label``. Setting it (as an argument or later)
    renames the classes ``LABEL_0``.. unless ``id2label`` already has that many, as in
    transformers."""

    def __get__(self, config: Mask2FormerConfig | None, owner: type | None = None) -> int | None:
        if config is None:  # the dataclass default: follow id2label (2 classes without one)
            return None
        return len(config.id2label)

    def __set__(self, config: Mask2FormerConfig, value: int | None) -> None:
        current = config.__dict__.get("id2label")
        if value is None or (current is not None and len(current) == value):
            return
        if current is not None and current != _default_labels(len(current)):
            logger.warning(
                "num_labels=%d replaces id2label with %d entries by LABEL_0..LABEL_%d",
                value,
                len(current),
                value - 1,
            )
        config.id2label = _default_labels(value)
        config.label2id = {name: index for index, name in config.id2label.items()}


@dataclass(kw_only=True, eq=False)
class Mask2FormerConfig:
    """Configuration of Mask2Former models, field for field transformers' ``Mask2FormerConfig``.

    Args:
        backbone_config: Swin configuration (dict, ``SwinBackboneConfig`` or transformers
            ``SwinConfig``); None gives Swin-S-like depths ``[2, 2, 18, 2]``.
        id2label: class index -> name (keys converted to int); sets ``num_labels``.
        label2id: name -> index; default: the inverse of ``id2label``.
        num_labels: number of classes when ``id2label`` is not given (names ``LABEL_i``).
        The other fields are transformers' settings of the same names.
    """

    model_type: ClassVar[str] = "mask2former"
    # transformers' alternative names, accepted when reading and as read-only attributes
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "hidden_dim",
        "num_hidden_layers": "decoder_layers",
    }

    backbone_config: SwinBackboneConfig | dict[str, Any] | None = None
    feature_size: int = 256
    mask_feature_size: int = 256
    hidden_dim: int = 256
    encoder_feedforward_dim: int = 1024
    activation_function: str = "relu"
    encoder_layers: int = 6
    decoder_layers: int = 10
    num_attention_heads: int = 8
    dropout: float = 0.0
    dim_feedforward: int = 2048
    pre_norm: bool = False
    enforce_input_projection: bool = False
    common_stride: int = 4
    ignore_value: int = 255
    num_queries: int = 100
    no_object_weight: float = 0.1
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    train_num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    init_std: float = 0.02
    init_xavier_std: float = 1.0
    use_auxiliary_loss: bool = True
    feature_strides: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    output_auxiliary_logits: bool | None = None
    # settings every transformers model has
    output_hidden_states: bool = False
    output_attentions: bool = False
    return_dict: bool = True
    # the weights' dtype by name ("float32"); from_pretrained(torch_dtype="auto") follows it
    dtype: str | None = None
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    num_labels: _NumLabels = _NumLabels()  # after id2label: assigning it may replace them

    def __post_init__(self) -> None:
        self.backbone_config = _as_backbone_config(self.backbone_config)
        self.feature_strides = list(self.feature_strides)
        if self.dtype is not None and not isinstance(self.dtype, str):
            self.dtype = str(self.dtype).removeprefix("torch.")  # a torch.dtype, as JSON writes it
        if self.id2label is None:
            self.id2label = _default_labels(2)
        self.id2label = {int(index): name for index, name in self.id2label.items()}
        if self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        self.label2id = {name: int(index) for name, index in self.label2id.items()}

    @property
    def hidden_size(self) -> int:
        return self.hidden_dim

    @property
    def num_hidden_layers(self) -> int:
        return self.decoder_layers

    @property
    def use_return_dict(self) -> bool:
        return self.return_dict

    # ---- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, ``backbone_config`` nested, ``id2label`` keys as strings (JSON)."""
        result = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in fields(self)
            if f.name != "num_labels"
        }
        result["backbone_config"] = self.backbone_config.to_dict()
        result["id2label"] = {str(index): name for index, name in self.id2label.items()}
        result["model_type"] = self.model_type
        return dict(sorted(result.items()))

    def to_json_string(self) -> str:
        return to_json_string(self.to_dict())

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        write_json(json_file_path, self.to_dict())

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Mask2FormerConfig:
        """Build from a ``config.json`` dict (ours or transformers'); ``kwargs`` override it.

        Raises:
            ValueError: another ``model_type``, or a timm / Hub backbone switched on.
            TypeError: a key that is not a setting (the message lists the valid ones).
        """
        model_type = config_dict.get("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(f"model_type: got {model_type!r}, expected {cls.model_type!r}")
        # Renamed per source first, so that an override wins over the file's other name.
        values = {**cls._renamed(copy.deepcopy(config_dict)), **cls._renamed(kwargs)}
        for switch in _BACKBONE_SWITCHES:
            if values.pop(switch, None) not in (None, False, {}):
                raise ValueError(
                    f"{switch}={config_dict.get(switch, kwargs.get(switch))!r}: only the nested "
                    "Swin backbone_config is supported (no timm or Hub backbone)"
                )
        known = split_known(values, [f.name for f in fields(cls)], _BOOKKEEPING, cls.__name__)
        return cls(**known)

    @classmethod
    def _renamed(cls, values: dict[str, Any]) -> dict[str, Any]:
        """transformers' other names (``hidden_size``, ``torch_dtype``...) as the fields'."""
        renames = {**cls.attribute_map, "torch_dtype": "dtype"}
        return {renames.get(key, key): value for key, value in values.items()}

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> Mask2FormerConfig:
        return cls.from_dict(read_json(json_file))

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write ``config.json`` into ``save_directory`` (created if missing)."""
        self.to_json_file(save_directory_file(save_directory, CONFIG_NAME))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> Mask2FormerConfig:
        """Load from a directory holding ``config.json``, from the JSON file itself or from a
        Hub model id (through huggingface_hub's cache; ``revision``, ``cache_dir``,
        ``local_files_only``, ``token``, ``force_download`` are taken from ``kwargs``); the
        other ``kwargs`` override settings."""
        json_file = settings_file(path, CONFIG_NAME, kwargs)
        return cls.from_dict(read_json(json_file), **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mask2FormerConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
