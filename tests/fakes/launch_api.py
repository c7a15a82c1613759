"""A recording stand-in for the parts of the ROS 2 `launch` / `launch_ros` API the project's
launch files use (launch_ros is not installable here), so tests can run a launch file's own
code and see what it would start and pass on.

`evaluate(path, arguments)` imports the launch file with these stand-ins in place of `launch`
and `launch_ros`, calls its generate_launch_description() and processes the entities the way
`ros2 launch` does: command-line arguments first, DeclareLaunchArgument defaults for the rest
(a missing required argument or a value outside `choices` is an error, as in launch),
OpaqueFunctions called with the context, substitutions performed. Nodes and included launch
files are recorded, never started. Semantics follow the documented launch API
(launch.actions, launch.substitutions, launch_ros.actions.Node).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping


class LaunchError(RuntimeError):
    pass


class LaunchContext:
    def __init__(self, configurations: Mapping[str, str]) -> None:
        self.launch_configurations: dict[str, str] = dict(configurations)


def perform(value: Any, context: LaunchContext) -> Any:
    """A substitution -> its text; a list holding substitutions is concatenated, as launch
    does; other values (a list of plain strings is a string-array parameter) stay as they are."""
    if hasattr(value, 'perform'):
        return value.perform(context)
    if isinstance(value, list) and any(hasattr(v, 'perform') for v in value):
        return ''.join(perform(v, context) for v in value)
    return value


class LaunchConfiguration:
    def __init__(self, variable_name: str, default: Any = None) -> None:
        self.variable_name = variable_name
        self.default = default

    def perform(self, context: LaunchContext) -> str:
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is not None:
            return perform(self.default, context)
        raise LaunchError(f"launch configuration '{self.variable_name}' does not exist")


class DeclareLaunchArgument:
    def __init__(self, name: str, default_value: Any = None, description: str = '',
                 choices: list[str] | None = None, **_: Any) -> None:
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class OpaqueFunction:
    def __init__(self, function, args=None, kwargs=None) -> None:
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}


class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path: Any) -> None:
        self.launch_file_path = launch_file_path


class IncludeLaunchDescription:
    def __init__(self, launch_description_source: Any, launch_arguments: Any = None, **_: Any) -> None:
        self.launch_description_source = launch_description_source
        self.launch_arguments = list(launch_arguments or [])


class LaunchDescription:
    def __init__(self, initial_entities: list | None = None) -> None:
        self.entities = list(initial_entities or [])


class Node:
    def __init__(self, *, package: str, executable: str, name: str | None = None, namespace: str | None = None,
                 parameters: list | None = None, **kwargs: Any) -> None:
        self.package, self.executable, self.name, self.namespace = package, executable, name, namespace
        self.parameters = list(parameters or [])
        self.kwargs = kwargs


@dataclass
class NodeRecord:
    package: str
    executable: str
    name: str | None
    namespace: str | None
    parameters: dict[str, Any]          # the dict parameters, merged in order
    arguments: list[str] = field(default_factory=list)   # command-line arguments, performed
    parameter_files: list[str] = field(default_factory=list)   # parameters given as a YAML file path


@dataclass
class IncludeRecord:
    path: str
    arguments: dict[str, str]


@dataclass
class LaunchRecord:
    arguments: dict[str, str]           # every launch configuration once declared arguments are set
    nodes: list[NodeRecord] = field(default_factory=list)
    includes: list[IncludeRecord] = field(default_factory=list)

    def node(self, executable: str) -> NodeRecord:
        return next(n for n in self.nodes if n.executable == executable)


def _modules() -> dict[str, types.ModuleType]:
    def module(name: str, **members: Any) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(members)
        return m
    return {
        'launch': module('launch', LaunchDescription=LaunchDescription, LaunchContext=LaunchContext),
        'launch.actions': module('launch.actions', DeclareLaunchArgument=DeclareLaunchArgument,
                                 IncludeLaunchDescription=IncludeLaunchDescription, OpaqueFunction=OpaqueFunction),
        'launch.substitutions': module('launch.substitutions', LaunchConfiguration=LaunchConfiguration),
        'launch.launch_description_sources': module('launch.launch_description_sources',
                                                    PythonLaunchDescriptionSource=PythonLaunchDescriptionSource),
        'launch_ros': module('launch_ros'),
        'launch_ros.actions': module('launch_ros.actions', Node=Node),
    }


@contextmanager
def _stand_ins() -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in _modules()}
    sys.modules.update(_modules())
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def ament_prefix(root: Path, repository: Path, packages: tuple[str, ...] = ('ur_robot_driver',)) -> Path:
    """An ament prefix under `root` (for AMENT_PREFIX_PATH) holding gps_agent_ros's share as
    setup.py installs it (its launch/, config/ and urdf/ folders: symlinks into `repository`)
    and an empty share for each of `packages`, so get_package_share_directory finds them."""
    index = root / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    for package in ('gps_agent_ros', *packages):
        (index / package).touch()
        (root / 'share' / package).mkdir()
    for folder in ('launch', 'config', 'urdf'):
        (root / 'share' / 'gps_agent_ros' / folder).symlink_to(repository / folder)
    return root


def evaluate(path: Path, arguments: Mapping[str, str] | None = None) -> LaunchRecord:
    """Run a launch file's description with `arguments` given on the command line."""
    with _stand_ins():
        spec = importlib.util.spec_from_file_location(f'launch_file_{Path(path).stem.replace(".", "_")}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        context = LaunchContext(arguments or {})
        record = LaunchRecord(context.launch_configurations)
        _process(description.entities, context, record)
    return record


def _process(entities: list, context: LaunchContext, record: LaunchRecord) -> None:
    for entity in entities:
        if isinstance(entity, DeclareLaunchArgument):
            if entity.name not in context.launch_configurations:
                if entity.default_value is None:
                    raise LaunchError(f"required launch argument '{entity.name}' was not provided")
                context.launch_configurations[entity.name] = perform(entity.default_value, context)
            value = context.launch_configurations[entity.name]
            if entity.choices is not None and value not in entity.choices:
                raise LaunchError(f"argument '{entity.name}' = {value!r} is not one of {entity.choices}")
        elif isinstance(entity, OpaqueFunction):
            _process(list(entity.function(context, *entity.args, **entity.kwargs) or []), context, record)
        elif isinstance(entity, IncludeLaunchDescription):
            args = {perform(k, context): perform(v, context) for k, v in entity.launch_arguments}
            record.includes.append(IncludeRecord(str(perform(entity.launch_description_source.launch_file_path,
                                                             context)), args))
        elif isinstance(entity, Node):
            params: dict[str, Any] = {}
            files: list[str] = []
            for p in entity.parameters:
                if isinstance(p, dict):
                    params.update({perform(k, context): perform(v, context) for k, v in p.items()})
                else:   # launch_ros: a path is handed to the process as --params-file
                    files.append(str(perform(p, context)))
            arguments = [str(perform(a, context)) for a in entity.kwargs.get('arguments', [])]
            record.nodes.append(NodeRecord(entity.package, entity.executable, entity.name, entity.namespace, params,
                                           arguments, files))
        elif isinstance(entity, LaunchDescription):
            _process(entity.entities, context, record)
        else:
            raise LaunchError(f'the launch stand-in does not know {type(entity).__name__}: extend tests/fakes/launch_api.py')
