"""Trial recordings read back with readers that share no code with the writer: rosbags' AnyReader
(its own MCAP reader, msg parser and CDR decoder) for the data, mcap's plain record reader for the
file structure rosbag2 relies on (profile, schemas, channels, Statistics)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader

from gps_agent_ros.recording import TrialRecorder, iteration_path, recorded_iterations

NAMES = ['shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint']


def _trial(rng: np.random.Generator, T: int, t0: float, dt: float = 0.05, images: bool = False) -> dict:
    arrays = dict(joint_names=NAMES, q=rng.normal(size=(T, 3)), qd=rng.normal(size=(T, 3)),
                  U=rng.normal(size=(T, 3)), stamps=t0 + dt * np.arange(T))
    if images:
        arrays['images'] = rng.integers(0, 256, size=(T, 4, 5, 3), dtype=np.uint8)
    return arrays


def _read(path: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(log time ns, decoded message)] in log-time order, via rosbags."""
    by_topic: dict[str, list] = defaultdict(list)
    with AnyReader([path]) as reader:
        for conn, log_time, raw in reader.messages():
            by_topic[conn.topic].append((log_time, reader.deserialize(raw, conn.msgtype)))
    return by_topic


def _summary_or_none(path: Path):
    with open(path, 'rb') as f:
        try:
            return make_reader(f).get_summary()
        except Exception:        # mcap raises on a file without a valid footer
            return None


def _exact_ns(seconds: float) -> int:
    """The stamp of float seconds to the nearest nanosecond, in exact rational arithmetic."""
    return round(Fraction(seconds) * 1_000_000_000)


@pytest.fixture()
def recorded(tmp_path):
    """Iteration 3: arm0 runs two trials (the second with images and its clock restarted at 0),
    arm1 one trial on a wall clock, and one trial of arm1 fails before its first step."""
    rng = np.random.default_rng(7)
    trials = [
        dict(arm='arm0', condition='train/0', sample=0, **_trial(rng, 6, 0.0)),
        dict(arm='/arm0/', condition='train/1', sample=0, **_trial(rng, 5, 0.0, images=True),
             extra={'final_ee_distance': 0.0125}),
        dict(arm='arm1', condition='test/4', sample=2, **_trial(rng, 4, 1.7e9 + 0.123456789, dt=0.002)),
        dict(arm='arm1', condition='test/5', sample=0, joint_names=NAMES, q=np.zeros((0, 3)),
             qd=np.zeros((0, 3)), U=np.zeros((0, 3)), stamps=np.zeros(0), status='reset_failed',
             reason='joint_trajectory_controller did not reach the start pose'),
    ]
    with TrialRecorder(tmp_path, 3, command_topic='forward_velocity_controller/commands') as rec:
        for trial in trials:
            rec.write_trial(**trial)
    return tmp_path, trials


def test_states_actions_stamps_images_and_records_read_back_equal(recorded):
    out, trials = recorded
    path = iteration_path(out, 3)
    assert path == out / 'trials' / 'iteration_003.mcap' and recorded_iterations(out) == [path]
    topics = _read(path)
    assert set(topics) == {f'/{arm}/{name}' for arm in ('arm0', 'arm1')
                           for name in ('joint_states', 'forward_velocity_controller/commands',
                                        'gps/trial')} | {'/arm0/camera/image_raw'}
    for arm, arm_trials in (('arm0', trials[:2]), ('arm1', trials[2:])):
        records = [json.loads(m.data) for _, m in topics[f'/{arm}/gps/trial']]
        assert records == [{'iteration': 3, 'condition': t['condition'], 'sample': t['sample'],
                            'arm': f'/{arm}', 'status': t.get('status', 'completed'),
                            'reason': t.get('reason', ''), 'steps': len(t['stamps']),
                            **t.get('extra', {})} for t in arm_trials]
        states = topics[f'/{arm}/joint_states']
        commands = topics[f'/{arm}/forward_velocity_controller/commands']
        start = 0
        for t in arm_trials:
            T = len(t['stamps'])
            js = [m for _, m in states[start:start + T]]
            assert all(list(m.name) == NAMES for m in js)
            np.testing.assert_array_equal(np.array([m.position for m in js]).reshape(T, 3), t['q'])
            np.testing.assert_array_equal(np.array([m.velocity for m in js]).reshape(T, 3), t['qd'])
            stamps_ns = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in js]
            assert stamps_ns == [_exact_ns(s) for s in t['stamps']]
            np.testing.assert_array_equal(
                np.array([m.data for _, m in commands[start:start + T]]).reshape(T, 3), t['U'])
            # each command is logged with the state it was computed from
            assert [lt for lt, _ in commands[start:start + T]] == [lt for lt, _ in states[start:start + T]]
            start += T
        assert start == len(states) == len(commands)
    images = topics['/arm0/camera/image_raw']
    got = np.stack([m.data.reshape(m.height, m.step) for _, m in images]).reshape(5, 4, 5, 3)
    np.testing.assert_array_equal(got, trials[1]['images'])
    assert {(m.encoding, m.height, m.width, m.step, m.header.frame_id) for _, m in images} == {
        ('rgb8', 4, 5, 15, 'camera')}
    assert [m.header.stamp.nanosec for _, m in images] == [_exact_ns(s) for s in trials[1]['stamps']]


def test_log_times_put_an_arms_restarted_clock_after_its_previous_trial(recorded):
    out, trials = recorded
    topics = _read(iteration_path(out, 3))
    arm0 = [lt for lt, _ in topics['/arm0/joint_states']]
    first, second = arm0[:6], arm0[6:]
    assert first == [_exact_ns(s) for s in trials[0]['stamps']]     # nothing to shift
    assert second[0] > first[-1]                                     # its stamps restart at 0
    assert np.diff(second).tolist() == np.diff([_exact_ns(s) for s in trials[1]['stamps']]).tolist()
    arm1 = [lt for lt, _ in topics['/arm1/joint_states']]
    assert arm1 == [_exact_ns(s) for s in trials[2]['stamps']]      # wall clock: log time = stamp
    record_times = [lt for lt, _ in topics['/arm0/gps/trial']]
    assert record_times == [first[0], second[0]]                     # each record opens its trial


def test_file_is_a_ros2_mcap_with_full_ros2msg_schemas_and_statistics(recorded):
    out, _ = recorded
    with open(iteration_path(out, 3), 'rb') as f:
        reader = make_reader(f)
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        metadata = {m.name: m.metadata for m in reader.iter_metadata()}
    schemas = {s.id: s for s in summary.schemas.values()}
    assert {s.name for s in schemas.values()} == {'sensor_msgs/msg/JointState', 'std_msgs/msg/Float64MultiArray',
                                                  'sensor_msgs/msg/Image', 'std_msgs/msg/String'}
    assert {s.encoding for s in schemas.values()} == {'ros2msg'}
    by_topic = {c.topic: c for c in summary.channels.values()}
    assert {c.message_encoding for c in by_topic.values()} == {'cdr'}
    assert schemas[by_topic['/arm1/joint_states'].schema_id].name == 'sensor_msgs/msg/JointState'
    assert schemas[by_topic['/arm0/camera/image_raw'].schema_id].name == 'sensor_msgs/msg/Image'
    joint_state = schemas[by_topic['/arm0/joint_states'].schema_id].data.decode()
    assert '\nMSG: std_msgs/Header\n' in joint_state and '\nMSG: builtin_interfaces/Time\n' in joint_state
    # rosbag2 takes a bare file's message counts and time range from the Statistics record
    stats = summary.statistics
    assert stats.message_count == 4 + 2 * (6 + 5 + 4) + 5
    assert stats.channel_message_counts[by_topic['/arm0/joint_states'].id] == 11
    assert metadata['gps_iteration'] == {'iteration': '3', 'trials': '4'}


def test_kill_mid_iteration_leaves_no_file_that_reads_as_a_recording(tmp_path):
    child = textwrap.dedent(f"""
        import sys
        import numpy as np
        from gps_agent_ros.recording import TrialRecorder
        rng = np.random.default_rng(0)
        def trial(rec, i):
            T = 50
            rec.write_trial(arm='arm0', condition='train/0', sample=i, joint_names=['a', 'b'],
                            q=rng.normal(size=(T, 2)), qd=rng.normal(size=(T, 2)), U=rng.normal(size=(T, 2)),
                            stamps=0.05 * np.arange(T),
                            images=rng.integers(0, 256, size=(T, 64, 64, 3), dtype=np.uint8))
        with TrialRecorder({str(tmp_path)!r}, 1) as rec:
            trial(rec, 0)
        rec = TrialRecorder({str(tmp_path)!r}, 2)
        i = 0
        while True:
            trial(rec, i)
            i += 1
            print('trial', i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, '-c', child], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == 'trial 3':     # 3 image trials: more than the 1 MiB chunk size
                break
        else:
            pytest.fail(f'the writer exited early with {proc.wait()}')
        partial = tmp_path / 'trials' / '.iteration_002.mcap.partial'
        assert partial.stat().st_size > 500_000      # chunks of the trials are on disk
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert recorded_iterations(tmp_path) == [iteration_path(tmp_path, 1)]
    assert not iteration_path(tmp_path, 2).exists()
    assert sorted(p.name for p in (tmp_path / 'trials').glob('*.mcap')) == ['iteration_001.mcap']
    assert _summary_or_none(partial) is None    # no footer/summary: an MCAP reader rejects it
    assert len(_read(iteration_path(tmp_path, 1))['/arm0/joint_states']) == 50
    # the iteration re-run after the crash replaces the partial file
    with TrialRecorder(tmp_path, 2) as rec:
        rec.write_trial(arm='arm0', condition='train/0', sample=0, joint_names=['a'], q=np.ones((2, 1)),
                        qd=np.zeros((2, 1)), U=np.zeros((2, 1)), stamps=[0.0, 0.05])
    assert not partial.exists()
    assert len(_read(iteration_path(tmp_path, 2))['/arm0/joint_states']) == 2


def test_an_iteration_that_raises_publishes_nothing_and_a_recorded_one_is_not_overwritten(tmp_path):
    arrays = dict(joint_names=['a'], q=np.zeros((1, 1)), qd=np.zeros((1, 1)), U=np.zeros((1, 1)), stamps=[0.0])
    with pytest.raises(RuntimeError, match='arm fault'):
        with TrialRecorder(tmp_path, 1) as rec:
            rec.write_trial(arm='arm0', condition='train/0', sample=0, **arrays)
            raise RuntimeError('arm fault')
    assert list((tmp_path / 'trials').iterdir()) == []
    with TrialRecorder(tmp_path, 1) as rec:
        rec.write_trial(arm='arm0', condition='train/0', sample=0, **arrays)
    with pytest.raises(FileExistsError, match='iteration_001.mcap'):
        TrialRecorder(tmp_path, 1)
    with TrialRecorder(tmp_path, 1, overwrite=True) as rec:
        rec.write_trial(arm='arm0', condition='train/0', sample=0, **arrays)
        rec.write_trial(arm='arm0', condition='train/0', sample=1, **arrays)
    assert len(_read(iteration_path(tmp_path, 1))['/arm0/gps/trial']) == 2


def test_inconsistent_trials_are_refused_before_anything_is_written(tmp_path):
    rec = TrialRecorder(tmp_path, 1)
    good = dict(arm='arm0', condition='train/0', sample=0, joint_names=['a', 'b'], q=np.zeros((3, 2)),
                qd=np.zeros((3, 2)), U=np.zeros((3, 2)), stamps=[0.0, 0.1, 0.2])
    with pytest.raises(ValueError, match=r'U must be \[T, nj\] = \[3, 2\]'):
        rec.write_trial(**{**good, 'U': np.zeros((3, 1))})
    with pytest.raises(ValueError, match='images must be uint8'):
        rec.write_trial(**good, images=np.zeros((3, 4, 4, 3)))
    with pytest.raises(ValueError, match='must not decrease'):
        rec.write_trial(**{**good, 'stamps': [0.0, 0.2, 0.1]})
    with pytest.raises(ValueError, match='overwrite'):
        rec.write_trial(**good, extra={'sample': 5})
    rec.write_trial(**good)
    rec.close()
    assert rec.trials == 1 and len(_read(rec.path)['/arm0/gps/trial']) == 1


def test_recorded_bytes_deserialize_with_rclpy_as_a_played_back_subscriber_would(recorded):
    """ros2 bag play publishes the recorded bytes as they are: rmw's own CDR typesupport must
    read them as the message types the nodes use."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray, String

    out, trials = recorded
    types = {'sensor_msgs/msg/JointState': JointState, 'std_msgs/msg/Float64MultiArray': Float64MultiArray,
             'sensor_msgs/msg/Image': Image, 'std_msgs/msg/String': String}
    by_topic: dict[str, list] = defaultdict(list)
    with open(iteration_path(out, 3), 'rb') as f:
        for schema, channel, message in make_reader(f).iter_messages(log_time_order=True):
            by_topic[channel.topic].append(deserialize_message(message.data, types[schema.name]))
    second = trials[1]
    js = by_topic['/arm0/joint_states'][6:]
    np.testing.assert_array_equal(np.array([m.position for m in js]), second['q'])
    commands = by_topic['/arm0/forward_velocity_controller/commands'][6:]
    np.testing.assert_array_equal(np.array([m.data for m in commands]), second['U'])
    np.testing.assert_array_equal(
        np.stack([np.frombuffer(m.data, np.uint8) for m in by_topic['/arm0/camera/image_raw']]).reshape(5, 4, 5, 3),
        second['images'])
    assert json.loads(by_topic['/arm1/gps/trial'][1].data)['reason'] == trials[3]['reason']
