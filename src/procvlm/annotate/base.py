"""The annotator interface: an episode in, its timeline of atomic actions and its plan out.

Annotator options come from each annotator's signature (and its ``config_class`` dataclass
fields, given flat): ``annotator_options`` lists them with their types and defaults, and
``parse_annotator_args`` turns ``KEY=VALUE`` strings (``procvlm label --annotator-arg``) into
typed values: ints, floats, bools, ``None``, comma lists (``0,1,2``), ``;``-separated lists of
lists (``4,5,6;7,8,9``) or JSON.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import inspect
import json
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from procvlm.data.episode import Episode, Subtask
from procvlm.errors import ProcvlmError


@dataclass
class Annotation:
    """Sub-steps of one episode.

    Attributes:
        subtasks: the timeline (segments in frame order, may repeat a step after a regression).
        plan: the ordered atomic actions that complete the task.
    """

    subtasks: list[Subtask]
    plan: list[str]


class Annotator(abc.ABC):
    """Segments an episode into atomic actions.

    Attributes:
        name: the registry name.
        config_class: a frozen dataclass of further settings, passed as ``config=``; its fields
            are options too (``get_annotator(name, smooth=5)`` builds ``config_class(smooth=5)``).
        internal_args: constructor arguments the library passes itself (not options).
    """

    name: str = ""
    config_class: type | None = None
    internal_args: tuple[str, ...] = ()

    @abc.abstractmethod
    def annotate(self, episode: Episode) -> Annotation:
        """Return the episode's sub-steps and plan."""

    def annotate_many(self, episodes: list[Episode]) -> list[Annotation]:
        """Annotate several episodes; annotators that can overlap requests override this."""
        return [self.annotate(e) for e in episodes]


class OracleAnnotator(Annotator):
    """The simulator's own sub-steps, stored in the dataset by ``procvlm generate``."""

    name = "oracle"

    def annotate(self, episode: Episode) -> Annotation:
        if not episode.subtasks or not episode.plan:
            raise ProcvlmError(
                f"episode {episode.episode_index} has no oracle sub-steps: the oracle annotator "
                "needs a dataset written by `procvlm generate`; use --annotator dataset, "
                "gripper or vlm instead")
        return Annotation(subtasks=list(episode.subtasks), plan=list(episode.plan))


ANNOTATORS = {
    "oracle": "procvlm.annotate.base:OracleAnnotator",
    "dataset": "procvlm.annotate.dataset:DatasetAnnotator",
    "gripper": "procvlm.annotate.gripper:GripperAnnotator",
    "vlm": "procvlm.annotate.vlm:VLMAnnotator",
}


def annotator_class(name: str) -> type[Annotator]:
    """The class registered as ``name`` (imported on demand)."""
    if name not in ANNOTATORS:
        raise ProcvlmError(f"unknown annotator {name!r}: choose one of {', '.join(ANNOTATORS)}")
    module, cls = ANNOTATORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


@dataclass(frozen=True)
class AnnotatorOption:
    """One option of an annotator: its name, type annotation and default."""

    name: str
    type: Any
    default: Any

    def describe(self) -> str:
        """``name=TYPE (default: X)``."""
        return f"{self.name}={type_name(self.type)} (default: {self.default!r})"


def annotator_options(name: str) -> dict[str, AnnotatorOption]:
    """The options of annotator ``name``: constructor arguments, then ``config_class`` fields."""
    cls = annotator_class(name)
    hints = typing.get_type_hints(cls.__init__)
    out = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in cls.internal_args:
            continue
        if cls.config_class is not None and p.name == "config":
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        out[p.name] = AnnotatorOption(p.name, hints.get(p.name, str), default)
    if cls.config_class is not None:
        hints = typing.get_type_hints(cls.config_class)
        for f in dataclasses.fields(cls.config_class):
            out[f.name] = AnnotatorOption(f.name, hints[f.name], f.default)
    return out


def type_name(tp: Any) -> str:
    """A short readable name of a type annotation (``int``, ``list of int``, ``float or none``)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if _is_union(tp):
        inner = " or ".join(type_name(a) for a in args)
        return f"{inner} or none" if type(None) in typing.get_args(tp) else inner
    origin = typing.get_origin(tp)
    if origin in (list, tuple, Sequence, typing.Sequence) and args:
        return f"list of {type_name(args[0])}"
    return getattr(tp, "__name__", str(tp)).replace("PathLike", "path")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def parse_value(text: str, tp: Any) -> Any:
    """``text`` as a value of type annotation ``tp``; ValueError when it is not one."""
    if _is_union(tp):
        args = typing.get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        for a in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, a)
            except ValueError:
                continue
        raise ValueError(f"not {type_name(tp)}")
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple, Sequence, typing.Sequence):
        return _parse_list(text, args[0] if args else str)
    if tp is bool:
        if text.strip().lower() in _TRUE + _FALSE:
            return text.strip().lower() in _TRUE
        raise ValueError("not a bool (true/false)")
    if tp in (int, float):
        value = json.loads(text) if text.strip() else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                tp is int and not float(value).is_integer()):
            raise ValueError(f"not {tp.__name__}")
        return tp(value)
    if tp in (str, os.PathLike) or tp is Any:
        return text
    raise ValueError(f"options of type {type_name(tp)} cannot be given on the command line")


def _parse_list(text: str, item: Any) -> list:
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not a JSON list ({err.msg})") from None
        if not isinstance(values, list):
            raise ValueError("not a list")
        return [parse_value(v if isinstance(v, str) else json.dumps(v), item) for v in values]
    nested = typing.get_origin(item) in (list, tuple, Sequence, typing.Sequence)
    sep = ";" if nested or ";" in text else ","
    return [parse_value(part.strip(), item) for part in text.split(sep) if part.strip()]


def coerce_value(value: Any, tp: Any) -> Any:
    """``value`` (from Python or a string) checked against type annotation ``tp``: strings are
    parsed (``parse_value``), a lone item becomes a one-item list, ints become floats where a
    float is asked; ValueError when it fits not."""
    if isinstance(value, str) and tp not in (str, os.PathLike, Any):
        return parse_value(value, tp)
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in (a for a in args if a is not type(None)):
            try:
                return coerce_value(value, a)
            except ValueError:
                continue
        raise ValueError(f"not {type_name(tp)}")
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple, Sequence, typing.Sequence):
        item = args[0] if args else Any
        nested = typing.get_origin(item) in (list, tuple, Sequence, typing.Sequence)
        if isinstance(value, (list, tuple)) and not (nested and value and
                                                     not isinstance(value[0], (list, tuple))):
            return [coerce_value(v, item) for v in value]
        return [coerce_value(value, item)]
    if tp is bool and isinstance(value, (bool, np.bool_)):
        return bool(value)
    if tp in (int, float) and isinstance(value, (int, float, np.integer, np.floating)) and \
            not isinstance(value, (bool, np.bool_)):
        if tp is int and not float(value).is_integer():
            raise ValueError("not int")
        return tp(value)
    if tp in (str, os.PathLike) and isinstance(value, (str, os.PathLike)):
        return value
    if tp is Any:
        return value
    raise ValueError(f"not {type_name(tp)}")


def parse_annotator_args(name: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Typed keyword arguments of annotator ``name`` from ``(KEY, VALUE)`` strings.

    Raises:
        ProcvlmError: an unknown or repeated key, or a value of the wrong type (one line each).
    """
    options = annotator_options(name)
    out: dict[str, Any] = {}
    for key, text in pairs:
        if key not in options:
            raise ProcvlmError(f"--annotator-arg {key}: the {name} annotator has no such option; "
                               f"choose from {', '.join(options) or 'none'}")
        if key in out:
            raise ProcvlmError(f"--annotator-arg {key} is given twice: give each key once")
        opt = options[key]
        try:
            out[key] = parse_value(text, opt.type)
        except ValueError as err:
            raise ProcvlmError(f"--annotator-arg {key}={text!r}: {err}; the {name} annotator "
                               f"takes {opt.describe()}") from None
    return out


def get_annotator(name: str, **kwargs) -> Annotator:
    """Build the annotator called ``name`` (oracle, dataset, gripper, vlm).

    Keyword arguments are its constructor's, plus the fields of its ``config_class``.

    Raises:
        ProcvlmError: unknown annotator, unknown option or a rejected value.
    """
    cls = annotator_class(name)
    options = annotator_options(name)
    for key, value in list(kwargs.items()):
        if key in options:
            try:
                kwargs[key] = coerce_value(value, options[key].type)
            except ValueError as err:
                raise ProcvlmError(f"annotator option {key}={value!r}: {err}; the {name} "
                                   f"annotator takes {options[key].describe()}") from None
    if cls.config_class is not None:
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        if fields:
            if kwargs.get("config") is not None:
                raise ProcvlmError(f"pass either config= or its fields {sorted(fields)} to the "
                                   f"{name} annotator, not both")
            kwargs["config"] = cls.config_class(**fields)
    try:
        return cls(**kwargs)
    except TypeError as err:
        known = ", ".join(annotator_options(name)) or "none"
        raise ProcvlmError(f"the {name} annotator does not take {sorted(kwargs)} ({err}): "
                           f"its options are {known}") from None
