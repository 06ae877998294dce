"""Save and rebuild objects as ``{"class_name": ..., "config": {...}}`` specs.

Layers, losses, optimizers and schedules are all saved this way. A spec names its
class by a key of a fixed registry (``LAYERS``, ``LOSSES``, ...) and the object is
rebuilt by calling that class with the config as keyword arguments, so nothing is
ever imported or evaluated from a file: an unknown name is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

__all__ = ["from_spec", "to_spec"]

T = TypeVar("T")


class Configurable(Protocol):
    """What a registered class provides: its constructor arguments."""

    def get_config(self) -> dict[str, Any]: ...


def _known(registry: Mapping[str, type], kind: str) -> str:
    plural = kind + ("es" if kind.endswith("s") else "s")
    return f"known {plural}: {', '.join(sorted(registry))}"


def to_spec(
    obj: Configurable, registry: Mapping[str, type], kind: str
) -> dict[str, Any]:
    """``{"class_name": ..., "config": obj.get_config()}`` for a registered class.

    Parameters
    ----------
    obj : instance of one of the classes in ``registry`` (not of a subclass, which
        could not be rebuilt from its name).
    registry : class name -> class.
    kind : what the objects are called in messages ("layer", "loss", ...).

    Raises
    ------
    TypeError
        If ``type(obj)`` is not in ``registry``.
    """
    name = type(obj).__name__
    if registry.get(name) is not type(obj):
        raise TypeError(
            f"{name} is not a registered tinynet {kind} and cannot be saved; "
            f"{_known(registry, kind)}"
        )
    return {"class_name": name, "config": obj.get_config()}


def from_spec(
    spec: Any,
    registry: Mapping[str, type[T]],
    kind: str,
    *,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> T:
    """Rebuild an object from ``{"class_name": ..., "config": {...}}``.

    Parameters
    ----------
    spec : the saved spec, as read back from JSON.
    registry : class name -> class; any other name is refused.
    kind : what the objects are called in messages ("layer", "loss", ...).
    prepare : optional function applied to a copy of the config before the class is
        called (e.g. to rebuild a nested spec); its own errors pass through.

    Raises
    ------
    ValueError
        If ``spec`` is not a dict with exactly the keys ``class_name`` and ``config``,
        names no class of ``registry``, has a config that is not a dict, or the
        config does not fit the constructor (its ``TypeError``, naming the class).
    """
    article = "an" if kind[:1] in "aeiou" else "a"
    if not isinstance(spec, dict) or set(spec) != {"class_name", "config"}:
        raise ValueError(
            f"{article} {kind} spec must be a dict with exactly the keys 'class_name' "
            f"and 'config', got {spec!r}"
        )
    name, config = spec["class_name"], spec["config"]
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"unknown {kind} class {name!r}; {_known(registry, kind)}")
    if not isinstance(config, dict):
        raise ValueError(f"config of {kind} {name!r} must be a dict, got {config!r}")
    config = dict(config)
    if prepare is not None:
        config = prepare(config)
    try:
        return registry[name](**config)
    except TypeError as err:
        raise ValueError(f"invalid config for {kind} {name!r}: {err}") from err
