"""Wrapping a function of any kind (sync, async, generator, async generator) so that
each call runs inside a :class:`~otel_sse.instrumentation.scopes.Scope`.

The wrapper keeps the function's kind (``inspect`` and ``asyncio`` still see a
coroutine function or a generator function), its name and its signature. A
generator's scope opens at its first step, not when it is created, and its
frame is current only while it runs (see :mod:`otel_sse.instrumentation.context`).
Exceptions pass through unchanged: the same object is re-raised.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, cast

from otel_sse.instrumentation.runtime import guarded
from otel_sse.instrumentation.scopes import Scope

F = TypeVar("F", bound=Callable[..., Any])
Opener = Callable[[tuple[Any, ...], dict[str, Any]], Scope | None]


def _open(opener: Opener, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Scope | None:
    scope: Scope | None = guarded("a decorated call's start", opener, args, kwargs)
    return scope


def decorate(fn: F, opener: Opener) -> F:
    """``fn`` wrapped so that every call runs in the scope ``opener(args, kwargs)``
    gives (None: the call runs untouched)."""
    if inspect.isasyncgenfunction(fn):
        return cast(F, _async_generator(fn, opener))
    if inspect.isgeneratorfunction(fn):
        return cast(F, _generator(fn, opener))
    if inspect.iscoroutinefunction(fn):
        return cast(F, _coroutine(fn, opener))
    return cast(F, _function(fn, opener))


def _function(fn: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _open(opener, args, kwargs)
        if scope is None:
            return fn(*args, **kwargs)
        try:
            with scope.activation:
                result = fn(*args, **kwargs)
        except BaseException as error:
            guarded("a failed call", scope.failed, error)
            raise
        guarded("a call's result", scope.succeeded, result)
        return result

    return wrapper


def _coroutine(fn: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _open(opener, args, kwargs)
        if scope is None:
            return await fn(*args, **kwargs)
        try:
            with scope.activation:
                result = await fn(*args, **kwargs)
        except BaseException as error:
            guarded("a failed call", scope.failed, error)
            raise
        guarded("a call's result", scope.succeeded, result)
        return result

    return wrapper


def _generator(fn: Callable[..., Generator[Any, Any, Any]], opener: Opener
               ) -> Callable[..., Generator[Any, Any, Any]]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        scope = _open(opener, args, kwargs)
        if scope is None:
            return (yield from fn(*args, **kwargs))
        inner = fn(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                with scope.activation:
                    try:
                        if thrown is not None:
                            error, thrown = thrown, None
                            item = inner.throw(error)
                        else:
                            item = inner.send(sent)
                    except StopIteration as stop:
                        result = stop.value
                        break
                guarded("a yielded value", scope.yielded, item)
                try:
                    sent = yield item
                except GeneratorExit:
                    with scope.activation:  # the generator's own cleanup runs in its frame
                        inner.close()
                    raise
                except BaseException as error:  # thrown in by the consumer: pass it on
                    thrown, sent = error, None
        except BaseException as error:
            guarded("a failed call", scope.failed, error)
            raise
        guarded("a call's result", scope.succeeded, result)
        return result

    return wrapper


def _async_generator(fn: Callable[..., AsyncGenerator[Any, Any]], opener: Opener
                     ) -> Callable[..., AsyncGenerator[Any, Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        scope = _open(opener, args, kwargs)
        inner = fn(*args, **kwargs)
        if scope is None:
            async for item in inner:
                yield item
            return
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                with scope.activation:
                    try:
                        if thrown is not None:
                            error, thrown = thrown, None
                            item = await inner.athrow(error)
                        else:
                            item = await inner.asend(sent)
                    except StopAsyncIteration:
                        break
                guarded("a yielded value", scope.yielded, item)
                try:
                    sent = yield item
                except GeneratorExit:
                    with scope.activation:
                        await inner.aclose()
                    raise
                except BaseException as error:
                    thrown, sent = error, None
        except BaseException as error:
            guarded("a failed call", scope.failed, error)
            raise
        guarded("a call's result", scope.succeeded, None)

    return wrapper
