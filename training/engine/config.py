"""Training configuration: default.yaml, small override files and ``key=value`` overrides.

The layering follows dinov2: ``training/configs/default.yaml`` holds every key; an override file
(``--config training/configs/smoke.yaml``) and then command-line dotlist entries
(``train.max_steps=100 'model.timm_kwargs={depth: 2}'``) are merged on top. Keys that are not
in the defaults are rejected (struct mode), so a typo fails loudly instead of being ignored;
only sections that are empty in the defaults (e.g. ``model.timm_kwargs: {}``) accept new keys.
The resolved config (interpolations replaced by their values) is saved beside each run.
"""

from collections.abc import Mapping
import os
from typing import Any, Iterable, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'configs')
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, 'default.yaml')


def load_config(config_files: Iterable[str] = (), overrides: Iterable[str] = (),
                default: Optional[str] = DEFAULT_CONFIG) -> DictConfig:
    """Merge the default config, override files and dotlist overrides.

    Args:
        config_files: YAML files merged in order on top of the default.
        overrides: ``key=value`` strings (OmegaConf dotlist syntax).
        default: The base YAML holding every key (None: start from an empty config).

    Returns:
        The merged config, interpolations resolved, in struct mode.

    Raises:
        FileNotFoundError: A config file does not exist.
        ValueError: An override or file sets a key the defaults do not have, or an override
            is not ``key=value``.
    """
    layers = []
    for path in ([default] if default else []) + list(config_files):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'config file {path!r} does not exist')
        layers.append(OmegaConf.load(path))
    overrides = list(overrides)
    bad = [item for item in overrides if '=' not in item]
    if bad:
        raise ValueError(f'overrides must be key=value, got {bad}')
    cfg = layers[0] if layers else OmegaConf.create({})
    OmegaConf.set_struct(cfg, True)
    _open_empty_sections(cfg)
    try:
        for layer in layers[1:] + [OmegaConf.from_dotlist(overrides)]:
            cfg = OmegaConf.merge(cfg, layer)
    except Exception as error:  # omegaconf raises several unrelated error types
        raise ValueError(f'bad config override: {error}') from error
    OmegaConf.resolve(cfg)
    return cfg


def _open_empty_sections(node: DictConfig) -> None:
    """Let the empty mappings of the defaults (free-form keyword sections) take new keys."""
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            if len(child) == 0:
                OmegaConf.set_struct(child, False)
            else:
                _open_empty_sections(child)


def save_config(cfg: DictConfig, path: str) -> None:
    """Write the resolved config as YAML (atomically, so a crash never leaves half a file).

    Args:
        cfg: The config.
        path: Target file, e.g. ``runs/<name>/config.yaml``.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temp = f'{path}.tmp'
    with open(temp, 'w', encoding='utf-8') as stream:
        stream.write(OmegaConf.to_yaml(cfg, resolve=True))
    os.replace(temp, path)


def to_plain(value: Any) -> Any:
    """Return configs as plain dicts and lists (for checkpoints, ``build_model``, comparisons).

    OmegaConf containers are resolved (interpolations replaced); any mapping becomes a dict and
    any list, tuple or ListConfig a list, recursively; other values are returned as they are.
    """
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    return value


def load_config_with_section(section_file: str, section: str, config_files: Iterable[str] = (),
                             overrides: Iterable[str] = ()) -> dict:
    """Merge default.yaml, one section of a tool's own YAML, extra files and overrides.

    For tools with settings of their own (``train_heads``: ``heads`` from heads.yaml,
    ``train_completion``: ``completion`` from completion.yaml): the section joins the defaults,
    so the files and overrides may set its keys, and unknown keys are still refused.

    Args:
        section_file: The tool's YAML holding ``section``.
        section: Name of the section it adds.
        config_files: YAML files merged in order on top.
        overrides: ``key=value`` strings (OmegaConf dotlist syntax).

    Returns:
        The merged config as plain dicts and lists, interpolations resolved.

    Raises:
        ValueError: An unknown key or a bad override.
    """
    cfg = load_config(default=DEFAULT_CONFIG)
    with open_dict(cfg):
        cfg[section] = OmegaConf.load(section_file)[section]
    try:
        for layer in [OmegaConf.load(path) for path in config_files] + [
                OmegaConf.from_dotlist(list(overrides))]:
            cfg = OmegaConf.merge(cfg, layer)
    except Exception as error:  # omegaconf raises several unrelated error types
        raise ValueError(f'bad {section} config override: {error}') from error
    return to_plain(cfg)
