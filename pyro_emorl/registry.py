"""Components and models by name: `register`, and what is built from a configuration.

Priors, likelihoods, decoders, whole models and presets are registered under a name by the
same decorator, whether the library or a user's script defines them::

    import pyro_emorl as pe

    @pe.register("prior", "laplace")
    def laplace_prior(config, *, scale=1.0):
        return MyLaplacePrior(config.z_dim, config.num_layers, scale)

A component factory takes the model's configuration and the component's options (keyword-only
arguments with defaults, set from the configuration's ``<kind>_options``) and returns the
component. A model factory takes its configuration and returns ``(model, guide)``; it is
registered with its configuration class (``config=``). A preset factory takes field overrides
and returns a configuration; ``data=`` names the generator of its images, if any.

The command line registers a user's components with ``--import MODULE_OR_FILE.py``
(`import_components`); checkpoints record the names they were built from and refuse to load
when one is not registered.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pyro_emorl.config import ModelConfig
from pyro_emorl.config.base import check_options

#: The kinds of things that are registered.
KINDS = ("prior", "likelihood", "decoder", "model", "preset")
#: The kinds whose name and options a model configuration holds (``prior``, ``prior_options``).
COMPONENT_KINDS = ("prior", "likelihood", "decoder")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """One registered factory.

    Attributes:
        kind: one of `KINDS`.
        name: the name it is registered under.
        factory: the factory.
        extras: what the registration added (``config`` for a model, ``data`` for a preset).
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """``module:qualname`` of the factory."""
        return f"{self.factory.__module__}:{self.factory.__qualname__}"

    @property
    def summary(self) -> str:
        """The first paragraph of the factory's docstring, on one line."""
        paragraph = (inspect.getdoc(self.factory) or "").split("\n\n", 1)[0]
        return " ".join(paragraph.split())

    def options(self) -> dict[str, Any]:
        """The factory's options (keyword-only arguments) with their defaults."""
        parameters = inspect.signature(self.factory).parameters.values()
        return {
            p.name: p.default
            for p in parameters
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        }


class Registry:
    """Factories by kind and name (the package's one instance is `REGISTRY`)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}

    def register(self, kind: str, name: str, **extras: Any) -> Callable[[F], F]:
        """A decorator registering a factory under ``(kind, name)``.

        Registering the same factory again (a module imported twice) replaces it; another
        factory under a taken name is refused.

        Args:
            kind: one of `KINDS`.
            name: the name a configuration or the command line uses.
            **extras: ``config=`` (the configuration class) for a model; ``data=`` (the
                generator of its images) for a preset.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {kind} needs a non-empty name, got {name!r}")
        if kind == "model":
            config = extras.get("config")
            if not (isinstance(config, type) and issubclass(config, ModelConfig)):
                raise ValueError(
                    f"register('model', {name!r}) needs config=, a ModelConfig subclass whose "
                    f"`model` is {name!r}"
                )
            if config.model != name:
                raise ValueError(f"{config.__name__}.model is {config.model!r}, not {name!r}")

        def decorate(factory: F) -> F:
            entry = Entry(kind, name, factory, dict(extras))
            taken = self._entries.get((kind, name))
            if taken is not None and taken.source != entry.source:
                raise ValueError(
                    f"a {kind} named {name!r} is already registered ({taken.source}); "
                    f"register {entry.source} under another name"
                )
            self._entries[(kind, name)] = entry
            return factory

        return decorate

    def get(self, kind: str, name: str) -> Entry:
        """The entry ``(kind, name)``; a `ValueError` naming the known ones if absent."""
        entry = self._entries.get((kind, name))
        if entry is None:
            known = ", ".join(self.names(kind)) or "none"
            raise ValueError(
                f"no {kind} named {name!r} is registered (registered: {known}); if your own "
                "code defines it, pass --import MODULE_OR_FILE.py (in Python, import it first)"
            )
        return entry

    def names(self, kind: str) -> list[str]:
        """The registered names of ``kind``, sorted."""
        return sorted(name for k, name in self._entries if k == kind)

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Every entry (of ``kind``), sorted by kind and name."""
        return [
            self._entries[key]
            for key in sorted(self._entries, key=lambda k: (KINDS.index(k[0]), k[1]))
            if kind is None or key[0] == kind
        ]


#: The package's registry: the library registers here exactly as users do.
REGISTRY = Registry()


def register(kind: str, name: str, **extras: Any) -> Callable[[F], F]:
    """Register a factory by name (see `Registry.register`); used as a decorator."""
    return REGISTRY.register(kind, name, **extras)


def registered(kind: str | None = None) -> list[Entry]:
    """What is registered (of ``kind``), with each entry's options (`Entry.options`)."""
    return REGISTRY.entries(kind)


def model_config_class(name: str) -> type[ModelConfig]:
    """The configuration class of the registered model ``name``."""
    config: type[ModelConfig] = REGISTRY.get("model", name).extras["config"]
    return config


def config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """A configuration from its `ModelConfig.to_dict` form (``"model"`` picks the class;
    forms written before models were registered have none and are EfficientMORL's)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a configuration must be a mapping, got {type(data).__name__}")
    return model_config_class(data.get("model", "emorl")).from_dict(data)


def check_component(config: ModelConfig, kind: str) -> dict[str, Any]:
    """Check that ``config`` names a registered ``kind`` and only options its factory takes;
    returns the options (a plain dict). Configurations call it when they are made, so a bad
    name or option is refused before any work.

    Raises:
        ValueError: one line naming the field and the registered choices or options.
    """
    name = getattr(config, kind)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} must be the name of a registered {kind}, got {name!r}")
    entry = REGISTRY.get(kind, name)
    options = check_options(f"{kind}_options", getattr(config, f"{kind}_options", {}))
    unknown = sorted(set(options) - set(entry.options()))
    if unknown:
        raise ValueError(
            f"the {kind} {name!r} has no option(s) {unknown}; its options: "
            f"{entry.options() or 'none'}"
        )
    return options


def make_component(kind: str, config: ModelConfig) -> Any:
    """Build the ``kind`` component that ``config`` names (its field ``kind``), with the options
    of its field ``<kind>_options``.

    Raises:
        ValueError: for a name that is not registered or an option the factory does not take.
    """
    options = check_component(config, kind)
    return REGISTRY.get(kind, getattr(config, kind)).factory(config, **options)


def build(config: ModelConfig, *, register_params: bool = False) -> tuple[Any, Any]:
    """The Pyro model and guide that ``config`` describes (both ``nn.Module``s).

    Args:
        config: the configuration; its ``model`` names the registered build.
        register_params: let model and guide register their parameters in Pyro's param store
            on every call, for ``pyro.infer.SVI`` (the model's build must accept it).
    """
    factory = REGISTRY.get("model", config.model).factory
    return factory(config, register_params=True) if register_params else factory(config)


def components_of(config: ModelConfig) -> dict[str, dict[str, str]]:
    """The registered names (and their sources) that ``config`` builds from, for checkpoints:
    ``{kind: {"name": ..., "source": "module:qualname"}}``."""
    kinds = ["model"] + [k for k in COMPONENT_KINDS if isinstance(getattr(config, k, None), str)]
    record = {}
    for kind in kinds:
        name = config.model if kind == "model" else getattr(config, kind)
        entry = REGISTRY.get(kind, name)
        record[kind] = {"name": name, "source": entry.source}
    return record


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The configuration of the registered preset ``name`` with field overrides."""
    config: ModelConfig = REGISTRY.get("preset", name).factory(**overrides)
    return config


def import_components(spec: str) -> None:
    """Import a module or a ``.py`` file so that its registrations take effect.

    Args:
        spec: a module name (``my_package.priors``) or a path to a Python file.

    Raises:
        ValueError: one line naming ``spec`` and what went wrong.
    """
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.is_file():
            if not path.is_file():
                raise ValueError(f"--import {spec}: no such file")
            name = f"pyro_emorl_user.{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ValueError(f"--import {spec}: not a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except ValueError:
        raise
    except ModuleNotFoundError as error:
        raise ValueError(
            f"--import {spec}: {error} (give a module on the Python path or a .py file)"
        ) from error
    except Exception as error:  # the user's code failed: say which and why, in one line
        raise ValueError(f"--import {spec} failed: {type(error).__name__}: {error}") from error
