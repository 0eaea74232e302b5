"""Open a dataset split by name: ``twin`` (generated and cached) or a folder in a dataset's official layout."""

from __future__ import annotations

from pathlib import Path

from foveate.models.sltnet.config import SLTNetConfig
from foveate.system.errors import ConfigError

SPLIT_ALIASES = {"val": "valid", "valid": "valid", "train": "train", "test": "test"}


def open_split(config: SLTNetConfig, data: str, split: str, twin_spec=None, cache_root=None, progress: bool = True,
               workers: int = 1):
    """The ``split`` of ``data`` ready for ``config``: ``twin`` or a DDD17 / DSEC-Semantic root folder.

    The dataset kind follows the config: ``ddd17`` reads the ESS layout, ``dsec`` DSEC-Semantic,
    and any config reads ``twin``. ``workers`` processes generate missing twin data.
    """
    if data == "twin":
        from foveate.models.sltnet.twin_data import DEFAULT_CACHE, TwinDataset, TwinDataSpec, build_twin_cache

        spec = twin_spec or TwinDataSpec()
        twin_split = "train" if split == "train" else "val"
        folder = build_twin_cache(spec, config, cache_root or DEFAULT_CACHE, progress=progress,
                                  workers=workers, splits=(twin_split,))
        return TwinDataset(folder, twin_split, config)
    root = Path(data)
    if not root.is_dir():
        raise ConfigError(f"{root}: dataset folder not found (or give 'twin')")
    if split not in SPLIT_ALIASES:
        raise ConfigError(f"split '{split}' unknown (expected train, val or test)")
    split = SPLIT_ALIASES[split]
    if config.name == "ddd17":
        from foveate.models.sltnet.datasets import DDD17Dataset

        return DDD17Dataset(root, split, config.bins, config.height, config.width)
    if config.name == "dsec":
        from foveate.models.sltnet.datasets import DSECDataset

        return DSECDataset(root, split, config.bins, config.height, config.width, num_classes=config.num_classes)
    raise ConfigError(f"config '{config.name}' trains on 'twin' data only; use --config ddd17 or dsec for {root}")
