"""The transformer registry: built-ins, custom transformers and named callbacks.

Built-ins are *factories* ``(params, registry) -> fn(value)`` so params are checked and
pre-processed once per rule; a custom transformer registered with ``register(name, fn)``
keeps the PHP SDK's simpler ``fn(value, params)`` shape and gets its params unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crmsync_pipelines.errors import MappingError
from crmsync_pipelines.mapping.transformers import text
from crmsync_pipelines.mapping.transformers.dates import date_format
from crmsync_pipelines.mapping.transformers.params import CompiledTransformer, TransformerFn
from crmsync_pipelines.mapping.transformers.phone import phone_normalize

TransformerFactory = Callable[[dict[str, Any], "TransformerRegistry"], CompiledTransformer]

_BUILT_INS: dict[str, TransformerFactory] = {
    "boolean": text.boolean,
    "callback": text.callback,
    "date_format": date_format,
    "default_value": text.default_value,
    "join": text.join,
    "phone_normalize": phone_normalize,
    "prefix": text.prefix,
    "string_case": text.string_case,
    "strip_prefix": text.strip_prefix,
    "url": text.url,
    "value_map": text.value_map,
    "wrap_array": text.wrap_array,
}


class UnknownTransformerError(MappingError):
    """A transformer name that nothing registered."""


def _factory_for(fn: TransformerFn) -> TransformerFactory:
    def factory(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
        bound = dict(params)
        return lambda value: fn(value, bound)

    return factory


class TransformerRegistry:
    """Name -> transformer. ``version`` changes on every registration so compiled plans can be refreshed."""

    def __init__(self) -> None:
        self._factories: dict[str, TransformerFactory] = {}
        self._callbacks: dict[str, TransformerFn] = {}
        self.version = 0

    @classmethod
    def with_defaults(cls) -> TransformerRegistry:
        """A fresh registry holding the twelve built-ins and the ``strval`` callback."""
        registry = cls()
        for name, factory in _BUILT_INS.items():
            registry.register_factory(name, factory)
        registry.register_callback("strval", text.strval)
        return registry

    def register(self, name: str, fn: TransformerFn) -> None:
        """Add (or replace, even a built-in) a transformer called as ``fn(value, params)``."""
        self.register_factory(name, _factory_for(fn))

    def register_factory(self, name: str, factory: TransformerFactory) -> None:
        """Add a transformer that validates its params once: ``factory(params, registry) -> fn(value)``.

        The factory raises ``TransformerParamError`` for bad params; that becomes a load-time
        ``ConfigError`` naming the param.
        """
        if not name:
            raise ValueError("a transformer needs a name")
        self._factories[name] = factory
        self.version += 1

    def register_callback(self, name: str, fn: TransformerFn) -> None:
        """Make ``fn(value, params)`` available to the ``callback`` transformer as ``{name: <name>}``."""
        if not name:
            raise ValueError("a callback needs a name")
        self._callbacks[name] = fn
        self.version += 1

    def callback(self, name: str) -> TransformerFn | None:
        return self._callbacks.get(name)

    def callback_names(self) -> list[str]:
        return sorted(self._callbacks)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def functions(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """``(kind, name, function)`` of every factory (``"transformer"``) and callback, sorted.

        The map stage fingerprints these (``engine.mapversion``) so that registering or
        changing a transformer re-maps records whose mapped payload it reuses otherwise.
        """
        return ([("transformer", n, self._factories[n]) for n in sorted(self._factories)]
                + [("callback", n, self._callbacks[n]) for n in sorted(self._callbacks)])

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def compile(self, name: str, params: dict[str, Any]) -> CompiledTransformer:
        """The transformer ``name`` with ``params`` bound; raises for unknown names and bad params."""
        factory = self._factories.get(name)
        if factory is None:
            raise UnknownTransformerError(f"unknown transformer {name!r} (known: {', '.join(self.names())})")
        return factory(params, self)

    def get(self, name: str) -> TransformerFn:
        """The transformer as a plain ``fn(value, params)`` (compiles its params on every call)."""
        if name not in self._factories:
            raise UnknownTransformerError(f"unknown transformer {name!r} (known: {', '.join(self.names())})")

        def call(value: Any, params: dict[str, Any] | None = None) -> Any:
            return self.compile(name, params or {})(value)

        return call


_DEFAULT: TransformerRegistry | None = None


def default_registry() -> TransformerRegistry:
    """The process-wide registry used wherever no registry is passed.

    Register custom transformers and callbacks here (at import time of your project's
    code) so that ``load_config``, ``load_mapping`` and the engine all see them.
    """
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TransformerRegistry.with_defaults()
    return _DEFAULT
