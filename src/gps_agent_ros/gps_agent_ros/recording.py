"""Trial recordings: every trial of an iteration in one MCAP file that rosbag2 and Foxglove open.

``OUT/trials/iteration_NNN.mcap`` (ROS 2 profile: CDR message encoding, ``ros2msg`` schemas with
each type's full definition) holds, per trial and namespaced per arm (``/arm0/...``, or ``/...``
for an arm without namespace), so several arms' trials share one file:

- ``joint_states`` (sensor_msgs/msg/JointState): names, q, q̇ and the stamp of each step;
- ``<command_topic>`` (std_msgs/msg/Float64MultiArray, e.g. ``forward_effort_controller/commands``):
  the command u_t sent for that step, as a ForwardCommandController takes it (``data`` only);
- ``<image_topic>`` (sensor_msgs/msg/Image, rgb8), when the trial has camera images;
- ``gps/trial`` (std_msgs/msg/String): one JSON object per trial, written before its steps, with
  ``iteration``, ``condition``, ``sample``, ``arm``, ``status``, ``reason``, ``steps`` and any
  extra fields. JSON in a std_msgs/String because ``ros2 bag play`` needs every recorded type
  installed where it plays and std_msgs is in every ROS 2 install (a gps_interfaces message
  would not be), while JSON keeps numbers as numbers (diagnostic_msgs/KeyValue would make every
  value a string) and takes new fields without a new interface.

Arrays in, one trial at a time (shapes, T steps, nj joints): ``joint_names [nj]``, ``q [T, nj]``,
``qd [T, nj]``, ``U [T, nj]``, ``stamps [T]`` float seconds, optional ``images [T, H, W, 3]`` uint8.

Times. Header stamps are the given stamps. The MCAP log time of a step is its stamp too, unless
the arm's clock started over (a simulator's clock restarted per trial): then the trial's log
times are shifted, as a whole, to just after the arm's previous trial, so ``ros2 bag play`` and
Foxglove's timeline show one arm's trials one after another instead of on top of each other.
A command is logged at the stamp of the state it was computed from.

Crash safety: an iteration is written to ``trials/.iteration_NNN.mcap.partial`` (hidden, and
not ``*.mcap``, so no glob, rosbags or file dialog takes it for a recording) and renamed to
``iteration_NNN.mcap`` only by :meth:`TrialRecorder.close`, after the MCAP summary and footer
are written and the file is fsynced; the directory is fsynced after the rename. A process killed
mid-iteration leaves at most the ``.partial`` file, which the next recorder of that iteration
replaces. So a file named ``iteration_NNN.mcap`` is always a finished MCAP with every trial that
was written to it, and its summary (the Statistics record rosbag2 reads) is present.

rosbag2: ``ros2 bag info`` / ``ros2 bag play`` take a bare ``.mcap`` file (with
``-s mcap`` on releases that do not detect the storage plugin): without a ``metadata.yaml`` next
to it, rosbag2 opens the single file with its MCAP plugin and takes the bag metadata from the
file's Statistics record, channels and schemas. No metadata.yaml is written: one in ``trials/``
would make the directory a single bag listing files that change every iteration. Channels carry
no ``offered_qos_profiles`` (mcap-ros2-support's writer registers channels without metadata);
rosbag2 then publishes with its default QoS.

Message definitions are read from the installed interface packages (``share/<pkg>/msg/*.msg``
under ``AMENT_PREFIX_PATH`` and this Python's prefix, where the PyPI wheels put them) and
concatenated with their dependencies the way rosbag2 records them.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from mcap.records import Schema
from mcap_ros2.writer import Writer

TRIALS_DIR = 'trials'
_NS = 1_000_000_000
_MIN_GAP_NS = 1_000_000          # between an arm's shifted trials when the step is unknown (1 ms)
_PRIMITIVES = frozenset({'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16',
                         'uint16', 'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'})
_FIELD_TYPE = re.compile(r'^\s*([A-Za-z][A-Za-z0-9_/]*)')
_DELIMITER = '=' * 80 + '\n'
_RECORDING_NAME = re.compile(r'iteration_(\d{3,})\.mcap')
_JOINT_STATE, _COMMAND = 'sensor_msgs/msg/JointState', 'std_msgs/msg/Float64MultiArray'
_IMAGE, _RECORD = 'sensor_msgs/msg/Image', 'std_msgs/msg/String'
_TYPES = (_JOINT_STATE, _COMMAND, _IMAGE, _RECORD)


def iteration_path(out: Path | str, iteration: int) -> Path:
    """Where iteration `iteration`'s finished recording lives: OUT/trials/iteration_NNN.mcap."""
    return Path(out) / TRIALS_DIR / f'iteration_{int(iteration):03d}.mcap'


def recorded_iterations(out: Path | str) -> list[Path]:
    """The finished iteration recordings of a run, in iteration order (never a partial file)."""
    found = [(int(m.group(1)), p) for p in (Path(out) / TRIALS_DIR).glob('iteration_*.mcap')
             if (m := _RECORDING_NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


class TrialRecorder:
    """Writes one iteration's trials into OUT/trials/iteration_NNN.mcap (see the module doc).

    ``with TrialRecorder(out, it) as rec: rec.write_trial(...)`` closes (publishes) the file when
    the block ends normally and discards it when the block raises. ``write_trial`` may be called
    from several threads (e.g. several arms' result callbacks).

    command_topic / image_topic: relative topic names, put under each trial's arm namespace.
    overwrite: replace an existing finished recording of this iteration (a re-run iteration);
    without it, an existing one is an error, so a run is never silently mixed with another.
    """

    def __init__(self, out: Path | str, iteration: int, *,
                 command_topic: str = 'forward_effort_controller/commands',
                 image_topic: str = 'camera/image_raw', camera_frame: str = 'camera',
                 overwrite: bool = False) -> None:
        self.iteration = int(iteration)
        self.path = iteration_path(out, self.iteration)
        self.partial_path = self.path.with_name(f'.{self.path.name}.partial')
        if self.path.exists() and not overwrite:
            raise FileExistsError(f'{self.path} exists: iteration {self.iteration} was already '
                                  f'recorded (pass overwrite=True to replace it)')
        self._command_topic = _relative_name(command_topic, 'command_topic')
        self._image_topic = _relative_name(image_topic, 'image_topic')
        self._camera_frame = camera_frame
        defs = _MessageDefinitions()       # read now: a missing package fails before any trial
        self._definitions = {name: defs.full_text(name) for name in _TYPES}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.partial_path, 'wb')      # truncates a partial left by a killed run
        self._writer = Writer(self._file)
        self._schemas: dict[str, Schema] = {}          # registered on first use
        self._arm_end_ns: dict[str, int] = {}      # last log time written per arm
        self._lock = threading.Lock()
        self._closed = False
        self.trials = 0

    # ------------------------------------------------------------------ writing
    def write_trial(self, *, arm: str, condition: str, sample: int, joint_names: Sequence[str],
                    q: np.ndarray, qd: np.ndarray, U: np.ndarray, stamps: np.ndarray,
                    images: np.ndarray | None = None, status: str = 'completed',
                    reason: str = '', extra: Mapping[str, Any] | None = None) -> None:
        """Append one trial (arrays as in the module doc; T may be 0 for a trial that never ran).

        arm: the arm's namespace ('arm0', '/arm0', or '' for none). condition: e.g. 'train/0'.
        sample: the trial's index within its condition this iteration. status: what ended the
        trial ('completed', 'aborted_stale_state', ...); reason: why, human-readable.
        extra: more fields for the trial record (e.g. the final distance), JSON-serializable and
        finite (NaN is not JSON).
        """
        names = [str(n) for n in joint_names]
        nj = len(names)
        q, qd, U = (np.asarray(a, dtype=np.float64) for a in (q, qd, U))
        stamps = np.asarray(stamps, dtype=np.float64).reshape(-1)
        T = stamps.shape[0]
        for what, a in (('q', q), ('qd', qd), ('U', U)):
            if a.shape != (T, nj):
                raise ValueError(f'{what} must be [T, nj] = [{T}, {nj}] (stamps [T], joint_names '
                                 f'[nj]), got {list(a.shape)}')
        if not np.isfinite(stamps).all():
            raise ValueError('stamps must be finite')
        if T > 1 and np.any(np.diff(stamps) < 0):
            raise ValueError('stamps must not decrease')
        if images is not None:
            images = np.asarray(images)
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != T or images.shape[3] != 3:
                raise ValueError(f'images must be uint8 [T={T}, H, W, 3], got {images.dtype} '
                                 f'{list(images.shape)}')
        ns = _namespace(arm)
        sec, nanosec = _split_stamps(stamps)
        stamp_ns = sec * _NS + nanosec
        record = {'iteration': self.iteration, 'condition': str(condition), 'sample': int(sample),
                  'arm': ns, 'status': str(status), 'reason': str(reason), 'steps': int(T)}
        clash = sorted(set(extra or {}) & set(record))
        if clash:
            raise ValueError(f'extra fields {clash} would overwrite the trial record\'s own')
        record.update(extra or {})
        record_text = json.dumps(record, sort_keys=True, allow_nan=False)
        with self._lock:
            if self._closed:
                raise RuntimeError(f'{self.path.name} is already closed')
            log_ns = self._log_times(ns, stamp_ns)
            w = self._writer
            js_schema, cmd_schema = self._schema(_JOINT_STATE), self._schema(_COMMAND)
            img_schema = self._schema(_IMAGE) if images is not None else None
            first = int(log_ns[0]) if T else self._arm_end_ns.get(ns, 0) + _MIN_GAP_NS
            w.write_message(f'{ns}/gps/trial', self._schema(_RECORD), {'data': record_text},
                            log_time=first)
            js_topic, cmd_topic = f'{ns}/joint_states', f'{ns}/{self._command_topic}'
            img_topic = f'{ns}/{self._image_topic}'
            for t in range(T):
                log_t = int(log_ns[t])
                header = {'stamp': {'sec': int(sec[t]), 'nanosec': int(nanosec[t])}, 'frame_id': ''}
                w.write_message(js_topic, js_schema,
                                {'header': header, 'name': names, 'position': q[t].tolist(),
                                 'velocity': qd[t].tolist(), 'effort': []}, log_time=log_t)
                w.write_message(cmd_topic, cmd_schema,
                                {'layout': {'dim': [], 'data_offset': 0}, 'data': U[t].tolist()},
                                log_time=log_t)
                if img_schema is not None:
                    H, W = images.shape[1:3]
                    w.write_message(img_topic, img_schema,
                                    {'header': {**header, 'frame_id': self._camera_frame},
                                     'height': H, 'width': W, 'encoding': 'rgb8', 'is_bigendian': 0,
                                     'step': 3 * W, 'data': images[t].tobytes()}, log_time=log_t)
            self._arm_end_ns[ns] = int(log_ns[-1]) if T else first
            self.trials += 1

    def _schema(self, name: str) -> Schema:
        schema = self._schemas.get(name)
        if schema is None:
            schema = self._schemas[name] = self._writer.register_msgdef(name, self._definitions[name])
        return schema

    def _log_times(self, ns: str, stamp_ns: np.ndarray) -> np.ndarray:
        """Log times [T] ns: the stamps, shifted after this arm's previous trial if they start
        before its end (clock restarted), and never negative."""
        if stamp_ns.size == 0:
            return stamp_ns
        gap = int(np.median(np.diff(stamp_ns))) if stamp_ns.size > 1 else 0
        gap = gap if gap > 0 else _MIN_GAP_NS
        earliest = self._arm_end_ns[ns] + gap if ns in self._arm_end_ns else 0
        return stamp_ns + max(0, earliest - int(stamp_ns[0]))

    # ------------------------------------------------------------ publishing
    def close(self) -> Path:
        """Finish the MCAP (summary, footer), fsync it and publish it as iteration_NNN.mcap.

        Returns the recording's path. Closing twice is a no-op.
        """
        with self._lock:
            if self._closed:
                return self.path
            self._closed = True
            try:
                self._writer.add_metadata('gps_iteration', {'iteration': str(self.iteration),
                                                            'trials': str(self.trials)})
                self._writer.finish()
                self._file.flush()
                os.fsync(self._file.fileno())
            except BaseException:
                self._file.close()
                self.partial_path.unlink(missing_ok=True)
                raise
            self._file.close()
            os.replace(self.partial_path, self.path)
            _fsync_dir(self.path.parent)
            return self.path

    def discard(self) -> None:
        """Drop this iteration's partial recording (nothing is published)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._file.close()
            self.partial_path.unlink(missing_ok=True)

    def __enter__(self) -> TrialRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


# --------------------------------------------------------------- message definitions
class _MessageDefinitions:
    """Full ros2msg definitions (the type's .msg, then each dependency once after a delimiter
    line and ``MSG: pkg/Type``), read from the installed interface packages as rosbag2 does."""

    def __init__(self) -> None:
        prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
        self._prefixes = [Path(p) for p in dict.fromkeys([*prefixes, sys.prefix])]

    def full_text(self, type_name: str) -> str:
        seen: set[str] = set()

        def append(name: str) -> str:
            pkg, typ = _split_type(name)
            text = self._read(pkg, typ)
            out = text
            for dep in sorted(_dependencies(text, pkg)):
                if dep not in seen:
                    seen.add(dep)
                    out += '\n' + _DELIMITER + f'MSG: {dep}\n' + append(dep)
            return out

        return append(type_name)

    def _read(self, pkg: str, typ: str) -> str:
        for prefix in self._prefixes:
            path = prefix / 'share' / pkg / 'msg' / f'{typ}.msg'
            if path.is_file():
                return path.read_text()
        raise FileNotFoundError(f'no definition of {pkg}/msg/{typ}: looked for share/{pkg}/msg/'
                                f'{typ}.msg under {[str(p) for p in self._prefixes]} '
                                f'(AMENT_PREFIX_PATH and {sys.prefix}); install the {pkg} package')


def _split_type(name: str) -> tuple[str, str]:
    parts = name.split('/')
    if len(parts) == 3 and parts[1] == 'msg':
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f'message type {name!r} is not pkg/Type or pkg/msg/Type')


def _dependencies(text: str, pkg: str) -> set[str]:
    deps = set()
    for line in text.splitlines():
        line = line.split('#', 1)[0]
        m = _FIELD_TYPE.match(line)
        if not m or not line.strip() or len(line.split()) < 2:
            continue
        ftype = m.group(1)
        if ftype in _PRIMITIVES:
            continue
        deps.add(ftype if '/' in ftype else f'{pkg}/{ftype}')
    return deps


# -------------------------------------------------------------------------- helpers
def _split_stamps(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float seconds [T] -> (sec [T] int64, nanosec [T] int64 in [0, 1e9)), rounded to the
    nearest nanosecond without the precision loss of multiplying large stamps by 1e9."""
    sec = np.floor(stamps)
    nanosec = np.rint((stamps - sec) * _NS).astype(np.int64)
    sec = sec.astype(np.int64)
    carry = nanosec >= _NS
    return sec + carry, np.where(carry, nanosec - _NS, nanosec)


def _namespace(arm: str) -> str:
    """'arm0' / '/arm0/' -> '/arm0'; '' or '/' -> '' (topics at the root)."""
    ns = str(arm).strip('/')
    return f'/{ns}' if ns else ''


def _relative_name(name: str, what: str) -> str:
    rel = str(name).strip('/')
    if not rel:
        raise ValueError(f'{what} is empty')
    return rel


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
