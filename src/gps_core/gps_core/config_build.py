"""Frozen dataclasses from plain YAML data, strictly: every key known, every value of its
annotated type (float, int, bool, str, tuples, nested dataclasses, unions chosen by shape or by a
`kind` key), every number finite. A mistake raises ConfigError naming the key by its dotted path
(e.g. conditions[2].target_position) and what was expected; checks in a dataclass's
__post_init__ that raise TypeError/ValueError 'field: problem' are keyed to that field.

    build(ExperimentConfig, yaml.safe_load(text), 'exp.yaml')      # gps_core.config
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A mistake in an experiment, printed as `FILE: KEY: what is wrong (expected ...)`.

    file: the experiment file ('' while unknown); key: dotted path of the offending key, e.g.
    'conditions[2].target_position' ('' for the file as a whole); problem: what is wrong.
    """

    def __init__(self, problem: str, key: str = '', file: str = '') -> None:
        self.problem, self.key, self.file = problem, key, file
        super().__init__(': '.join(s for s in (file, key, problem) if s))

    def within(self, file: str = '', parent: str = '') -> ConfigError:
        """This error with its key placed below `parent` and `file` filled in if unset."""
        return type(self)(self.problem, join_key(parent, self.key), self.file or file)


def join_key(parent: str, child: str) -> str:
    """'robot' + 'joints[2]' -> 'robot.joints[2]'; 'conditions' + '[1]' -> 'conditions[1]'."""
    if not parent or not child:
        return parent or child
    return parent + child if child.startswith('[') else f'{parent}.{child}'


def build(cls: type, data: Any, where: str, key: str = '') -> Any:
    """Construct dataclass `cls` from plain YAML data, recursively and strictly.

    where: the file (for messages); key: the dotted path of `data` inside it ('' at the top).
    """
    try:
        return _build(cls, data, key)
    except ConfigError as err:
        raise err.within(where) from None


def _build(cls: type, data: Any, key: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f'got {data!r} (expected a mapping of {cls.__name__} keys)', key)
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in fields]
    if unknown:
        more = f', also unknown: {unknown[1:]}' if len(unknown) > 1 else ''
        valid = sorted(n for n in fields if n != 'source')    # source: set by load_experiment
        raise ConfigError(f'unknown key in {cls.__name__}{more} (expected one of {valid})',
                          join_key(key, str(unknown[0])))
    kwargs = {k: _convert(hints[k], v, join_key(key, k)) for k, v in data.items()}
    for f in dataclasses.fields(cls):
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f'missing required key (expected a value: {cls.__name__} has no default for it)',
                              join_key(key, f.name))
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.within('', key) from None
    except (TypeError, ValueError) as err:      # checks of dataclasses defined outside this module
        # 'name: problem' (or 'name.sub: problem') from a check naming one of cls's fields: key it there
        named = re.match(r'([A-Za-z_]\w*)((?:\.\w+)*): (.+)$', str(err), re.DOTALL)
        if named and named.group(1) in fields:
            raise ConfigError(named.group(3), join_key(key, named.group(1) + named.group(2))) from err
        raise ConfigError(str(err), key) from err


def _shape_of(tp: Any) -> str:
    """'list', 'mapping' or 'scalar': what YAML value a type annotation takes."""
    if typing.get_origin(tp) is tuple:
        return 'list'
    return 'mapping' if dataclasses.is_dataclass(tp) else 'scalar'


def _shape_of_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return 'list'
    return 'mapping' if isinstance(value, dict) else 'scalar'


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        kinds = {getattr(o, 'kind', None): o for o in options if dataclasses.is_dataclass(o)}
        if isinstance(value, dict) and None not in kinds and len(kinds) > 1:   # chosen by its kind
            kind = value.get('kind', next(iter(kinds)))
            if kind not in kinds:
                raise ConfigError(f'{kind!r} is not a valid choice (expected one of {sorted(kinds)})', join_key(key, 'kind'))
            return _build(kinds[kind], value, key)
        # report the error of the option shaped like the value (a list for a list, ...)
        options.sort(key=lambda o: _shape_of(o) != _shape_of_value(value))
        errors = []
        for opt in options:
            try:
                return _convert(opt, value, key)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'got {value!r} (expected a list)', key)
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f'{key}[{i}]') for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f'has {len(value)} values (expected {len(args)})', key)
        return tuple(_convert(a, v, f'{key}[{i}]') for i, (a, v) in enumerate(zip(args, value)))
    if tp is float:
        if isinstance(value, str):                # YAML 1.1 reads 1.0e16 (no exponent sign) as text
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'got {value!r} (expected a number)', key)
        if not math.isfinite(value):
            raise ConfigError(f'{value!r} is not finite (expected a finite number)', key)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'got {value!r} (expected an integer)', key)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'got {value!r} (expected true or false)', key)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f'got {value!r} (expected a string)', key)
        return value
    raise ConfigError(f'unsupported config type {tp}', key)


def to_dict(cfg: Any) -> Any:
    """Plain data (lists, dicts) for writing the resolved config back to YAML."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name != 'source'}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    return cfg
