"""Name → factory registries that remember which plugin owns each name.

Unlike timm's registry (which warns and overwrites), a second registration of a name is an
error naming both owners: silently picking one of two plugins would make runs depend on
installation order.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mars_core.errors import MarsError, PluginError

T = TypeVar("T")


@dataclass(frozen=True)
class Owner:
    """The plugin (and its distribution) that registered a name."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"{self.plugin} ({self.distribution} {self.version or '?'})"
        return self.plugin


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    owner: Owner
    description: str = ""


@dataclass
class Registry(Generic[T]):
    """One kind of component (models, losses, ...)."""

    kind: str
    _entries: dict[str, Entry[T]] = field(default_factory=dict)

    def add(self, name: str, value: T, owner: Owner, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {owner} registered a {self.kind} with an empty or non-string name")
        if name in self._entries:
            first = self._entries[name].owner
            raise PluginError(
                f"{self.kind} '{name}' is registered twice: by {first} and by {owner}; "
                "uninstall one of them or restrict plugins with MARS_CORE_PLUGINS"
            )
        self._entries[name] = Entry(name, value, owner, description)

    def remove_owner(self, plugin: str) -> None:
        for name in [n for n, e in self._entries.items() if e.owner.plugin == plugin]:
            del self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).value

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise MarsError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown {self.kind} '{name}'{hint}; available: {', '.join(names) or 'none'}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)


# "package.module:attr" or "package.module:Outer.attr", as entry points spell an object.
_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class LazyFactory:
    """A factory named by ``"package.module:attr"`` and imported on its first use.

    Registration runs whenever the plugin manager loads (``mars-core --help`` included), so a
    plugin that imported its models there would make every command pay for torch. Wrapping
    the name instead defers the import to the first call, or to the first look at the
    signature: ``inspect.signature`` reads ``__signature__``, which imports on demand, so
    :func:`call_factory` still checks configuration keys against the real parameters.
    """

    __slots__ = ("_loaded", "target")

    def __init__(self, target: str) -> None:
        if not isinstance(target, str) or not _TARGET.match(target):
            raise PluginError(f"lazy factory target {target!r} is not of the form 'package.module:attr'")
        self.target = target
        self._loaded: Callable[..., Any] | None = None

    def load(self) -> Callable[..., Any]:
        """Import the target once; a missing module or name is the plugin's fault, said in one line."""
        if self._loaded is None:
            module_name, _, qualname = self.target.partition(":")
            try:
                obj: Any = importlib.import_module(module_name)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as exc:
                raise PluginError(f"cannot import {self.target}: {exc}") from exc
            if not callable(obj):
                raise PluginError(f"{self.target} is not callable")
            self._loaded = obj
        return self._loaded

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.load())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> LazyFactory:
    """A factory that imports ``"package.module:attr"`` when first called (see :class:`LazyFactory`)."""
    return LazyFactory(target)


def resolve(factory: Callable[..., Any]) -> Callable[..., Any]:
    """The real object behind a factory, importing it if it is lazy (for ``isinstance`` checks)."""
    return factory.load() if isinstance(factory, LazyFactory) else factory


def call_factory(kind: str, name: str, factory: Callable[..., Any], params: dict[str, Any]) -> Any:
    """Call ``factory(**params)`` after checking every key against its signature.

    Checking first turns a ``TypeError`` deep inside a constructor into a message that
    names the configuration key and lists the ones that are accepted.
    """
    sig = inspect.signature(factory)
    accepts_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    allowed = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    if not accepts_kwargs:
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise MarsError(
                f"{kind} '{name}' has no parameter {', '.join(repr(u) for u in unknown)}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in params
    ]
    if missing:
        raise MarsError(f"{kind} '{name}' needs parameter(s) {', '.join(missing)}")
    try:
        return factory(**params)
    except ValueError as exc:
        raise MarsError(f"{kind} '{name}': {exc}") from exc


def accepts(factory: Callable[..., Any], param: str) -> bool:
    sig = inspect.signature(factory)
    return param in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    )
