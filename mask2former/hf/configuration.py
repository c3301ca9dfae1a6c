"""``Mask2FormerConfig``: transformers' configuration of the same name, without transformers.

Fields, defaults and the ``config.json`` layout follow ``transformers.Mask2FormerConfig``
(5.x), so a ``config.json`` written by transformers loads here and ours loads there. The
Swin backbone configuration is nested as ``backbone_config`` with transformers' ``SwinConfig``
field names.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any

from mask2former.hf.checkpoint_io import CONFIG_NAME, pop_hub_kwargs, resolve_pretrained_file

logger = logging.getLogger(__name__)


# Keys every transformers config may carry; read, kept and written back, never interpreted.
_COMMON_DEFAULTS: dict[str, Any] = {
    "output_hidden_states": False,
    "output_attentions": False,
    "return_dict": True,
}
_NEVER_WRITTEN = {"transformers_version", "num_labels"}


def _int_keys(mapping: dict | None) -> dict[int, str] | None:
    if mapping is None:
        return None
    return {int(key): value for key, value in mapping.items()}


class SwinBackboneConfig:
    """transformers' ``SwinConfig`` fields, as used by Mask2Former's Swin backbone."""

    model_type = "swin"
    _defaults: dict[str, Any] = {
        "image_size": 224,
        "patch_size": 4,
        "num_channels": 3,
        "embed_dim": 96,
        "depths": [2, 2, 6, 2],
        "num_heads": [3, 6, 12, 24],
        "window_size": 7,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "drop_path_rate": 0.1,
        "hidden_act": "gelu",
        "use_absolute_embeddings": False,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-5,
        "encoder_stride": 32,
    }
    _derived = {"num_layers", "hidden_size", "stage_names", "out_features", "out_indices"}

    def __init__(
        self,
        out_features: list[str] | None = None,
        out_indices: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        model_type = kwargs.pop("model_type", "swin")
        if model_type != "swin":
            raise ValueError(
                f"backbone_config.model_type: got {model_type!r}, only 'swin' is supported"
            )
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(kwargs.pop(name, default)))
        self.depths = list(self.depths)
        self.num_heads = list(self.num_heads)
        for name in ("num_layers", "hidden_size", "stage_names"):
            kwargs.pop(name, None)
        # Unknown keys (e.g. "architectures", "_name_or_path") are kept for round trips.
        self._extra = kwargs
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(self.depths) + 1)]
        self.out_features, self.out_indices = self._resolve_outputs(out_features, out_indices)

    @property
    def num_layers(self) -> int:
        return len(self.depths)

    @property
    def hidden_size(self) -> int:
        return int(self.embed_dim * 2 ** (len(self.depths) - 1))

    def _resolve_outputs(
        self, out_features: list[str] | None, out_indices: list[int] | None
    ) -> tuple[list[str], list[int]]:
        if out_features is None and out_indices is None:
            return [self.stage_names[-1]], [len(self.stage_names) - 1]
        if out_features is None:
            return [self.stage_names[i] for i in out_indices], list(out_indices)
        unknown = [name for name in out_features if name not in self.stage_names]
        if unknown:
            raise ValueError(
                f"backbone_config.out_features: {unknown} not in stage names {self.stage_names}"
            )
        indices = [self.stage_names.index(name) for name in out_features]
        if out_indices is not None and list(out_indices) != indices:
            raise ValueError(
                f"backbone_config: out_features {out_features} and out_indices {out_indices} "
                "do not name the same stages"
            )
        return list(out_features), indices

    def to_dict(self) -> dict[str, Any]:
        """All fields plus the derived ones, as transformers writes them."""
        result = dict(self._extra)
        result.update({name: copy.deepcopy(getattr(self, name)) for name in self._defaults})
        result.update(
            model_type="swin",
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            stage_names=list(self.stage_names),
            out_features=list(self.out_features),
            out_indices=list(self.out_indices),
        )
        return dict(sorted(result.items()))

    def __repr__(self) -> str:
        return f"SwinBackboneConfig({json.dumps(self.to_dict(), sort_keys=True)})"


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
    return SwinBackboneConfig(**copy.deepcopy(value))


class Mask2FormerConfig:
    """Configuration of Mask2Former models, field for field transformers' ``Mask2FormerConfig``.

    Args:
        backbone_config: Swin configuration (dict, ``SwinBackboneConfig`` or transformers
            ``SwinConfig``); None gives Swin-S-like depths ``[2, 2, 18, 2]``.
        id2label: class index -> name (keys converted to int); sets ``num_labels``.
        num_labels: number of classes when ``id2label`` is not given (names ``LABEL_i``).
        **kwargs: any field of ``_defaults`` (e.g. ``hidden_dim``, ``num_queries``) and other
            transformers keys, which are kept and written back.
    """

    model_type = "mask2former"
    attribute_map = {"hidden_size": "hidden_dim", "num_hidden_layers": "decoder_layers"}
    _defaults: dict[str, Any] = {
        "feature_size": 256,
        "mask_feature_size": 256,
        "hidden_dim": 256,
        "encoder_feedforward_dim": 1024,
        "activation_function": "relu",
        "encoder_layers": 6,
        "decoder_layers": 10,
        "num_attention_heads": 8,
        "dropout": 0.0,
        "dim_feedforward": 2048,
        "pre_norm": False,
        "enforce_input_projection": False,
        "common_stride": 4,
        "ignore_value": 255,
        "num_queries": 100,
        "no_object_weight": 0.1,
        "class_weight": 2.0,
        "mask_weight": 5.0,
        "dice_weight": 5.0,
        "train_num_points": 12544,
        "oversample_ratio": 3.0,
        "importance_sample_ratio": 0.75,
        "init_std": 0.02,
        "init_xavier_std": 1.0,
        "use_auxiliary_loss": True,
        "feature_strides": [4, 8, 16, 32],
        "output_auxiliary_logits": None,
    }

    def __init__(
        self,
        backbone_config: Any = None,
        id2label: dict | None = None,
        label2id: dict | None = None,
        num_labels: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("model_type", None)
        for alias, name in self.attribute_map.items():
            if alias in kwargs:
                kwargs[name] = kwargs.pop(alias)
        self.backbone_config = _as_backbone_config(backbone_config)
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(kwargs.pop(name, default)))
        self.feature_strides = list(self.feature_strides)
        for name, default in _COMMON_DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        for name in _NEVER_WRITTEN:
            kwargs.pop(name, None)
        self._extra_keys = sorted(kwargs)
        for name, value in kwargs.items():
            setattr(self, name, value)

        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(2 if num_labels is None else num_labels)}
        elif num_labels is not None and num_labels != len(id2label):
            logger.warning(
                "num_labels=%d replaces id2label with %d entries by LABEL_0..LABEL_%d",
                num_labels,
                len(id2label),
                num_labels - 1,
            )
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
            label2id = None
        self.id2label = _int_keys(id2label)
        if label2id is None:
            label2id = {name: index for index, name in self.id2label.items()}
        self.label2id = {name: int(index) for name, index in label2id.items()}

    def __getattr__(self, name: str) -> Any:
        # Only called for missing attributes: resolve transformers' aliases.
        aliases = type(self).attribute_map
        if name in aliases:
            return getattr(self, aliases[name])
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if value != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {name: index for index, name in self.id2label.items()}

    @property
    def use_return_dict(self) -> bool:
        return self.return_dict

    # ---- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, ``backbone_config`` nested, ``id2label`` keys as strings (JSON)."""
        result: dict[str, Any] = {
            name: copy.deepcopy(getattr(self, name)) for name in self._defaults
        }
        result.update({name: getattr(self, name) for name in _COMMON_DEFAULTS})
        result.update({name: copy.deepcopy(getattr(self, name)) for name in self._extra_keys})
        result["backbone_config"] = self.backbone_config.to_dict()
        result["id2label"] = {str(index): name for index, name in self.id2label.items()}
        result["label2id"] = dict(self.label2id)
        result["model_type"] = self.model_type
        return dict(sorted(result.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        with open(json_file_path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Mask2FormerConfig:
        """Build from a ``config.json`` dict; ``kwargs`` override its values."""
        values = copy.deepcopy(config_dict)
        model_type = values.get("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(f"model_type: got {model_type!r}, expected {cls.model_type!r}")
        values.update(kwargs)
        return cls(**values)

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> Mask2FormerConfig:
        with open(json_file, encoding="utf-8") as f:
            try:
                return cls.from_dict(json.load(f))
            except json.JSONDecodeError as e:
                raise ValueError(f"{json_file}: not valid JSON ({e})") from e

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write ``config.json`` into ``save_directory`` (created if missing)."""
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory} is a file, expected a directory")
        os.makedirs(save_directory, exist_ok=True)
        self.to_json_file(os.path.join(save_directory, CONFIG_NAME))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> Mask2FormerConfig:
        """Load from a directory holding ``config.json``, from the JSON file itself or from a
        Hub model id (through huggingface_hub's cache; ``revision``, ``cache_dir``,
        ``local_files_only``, ``token``, ``force_download`` are taken from ``kwargs``)."""
        json_file = resolve_pretrained_file(path, CONFIG_NAME, **pop_hub_kwargs(kwargs))
        if not os.path.isfile(json_file):
            raise FileNotFoundError(
                f"{json_file} not found: from_pretrained expects a local directory with "
                f"{CONFIG_NAME}, a path to it or a Hub model id"
            )
        with open(json_file, encoding="utf-8") as f:
            try:
                config_dict = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{json_file}: not valid JSON ({e})") from e
        return cls.from_dict(config_dict, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mask2FormerConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
