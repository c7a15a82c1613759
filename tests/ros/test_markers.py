"""gps_agent_ros.markers without DDS: the MarkerArray's fields as rviz reads them (frames,
namespaces, ids, types, scales, points), the cost colour map against hand-computed colours, and
the message's serialization (every field of the right type)."""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from gps_agent_ros.markers import cost_colour, training_markers

GREEN, YELLOW, RED = (0.10, 0.80, 0.35), (0.95, 0.85, 0.10), (0.90, 0.15, 0.10)
TARGETS = np.array([[0.6, 0.3, 0.4], [0.6, 0.0, 0.3]])
NAMES = ['train/0', 'train/1']


def paths(rng: np.random.Generator, n: int, T: int = 5) -> np.ndarray:
    return rng.normal(size=(n, T, 3))


def by_key(array: MarkerArray) -> dict[tuple[str, int], Marker]:
    return {(m.ns, m.id): m for m in array.markers[1:]}


def rgb(marker: Marker) -> tuple[float, float, float]:
    return marker.color.r, marker.color.g, marker.color.b


def test_the_colour_map_runs_green_yellow_red_linearly_in_the_cost():
    colours = cost_colour(np.array([10.0, 12.5, 15.0, 17.5, 20.0]))
    # by hand: the ends are the ramp's ends, the middle its middle stop, quarters halfway between
    assert colours[0] == pytest.approx(GREEN) and colours[2] == pytest.approx(YELLOW)
    assert colours[4] == pytest.approx(RED)
    assert colours[1] == pytest.approx([0.525, 0.825, 0.225])
    assert colours[3] == pytest.approx([0.925, 0.5, 0.1])
    # a fixed range: outside it the end colours; a range of zero width is all green
    assert cost_colour([0.0, 30.0], cost_range=(10.0, 20.0)) == pytest.approx(np.array([GREEN, RED]))
    assert cost_colour([3.0, 3.0]) == pytest.approx(np.array([GREEN, GREEN]))
    with pytest.raises(ValueError, match='costs must be finite'):
        cost_colour([1.0, np.nan])
    with pytest.raises(ValueError, match='low <= high'):
        cost_colour([1.0], cost_range=(2.0, 1.0))


def test_targets_samples_and_the_policy_path_as_rviz_reads_them():
    rng = np.random.default_rng(0)
    sample_paths = [paths(rng, 3), paths(rng, 2)]
    costs = [np.array([1.0, 3.0, 2.0]), np.array([5.0, 4.0])]
    policy = rng.normal(size=(2, 5, 3))
    array = training_markers(TARGETS, sample_paths, costs, NAMES, policy, target_radius=0.05, line_width=0.004)

    assert array.markers[0].action == Marker.DELETEALL and array.markers[0].ns == ''
    markers = by_key(array)
    assert set(markers) == {('targets', 0), ('targets', 1), ('samples/train/0', 0), ('samples/train/0', 1),
                            ('samples/train/0', 2), ('samples/train/1', 0), ('samples/train/1', 1),
                            ('policy', 0), ('policy', 1)}
    for marker in array.markers[1:]:
        assert marker.header.frame_id == 'base_link' and marker.action == Marker.ADD
        assert (marker.header.stamp.sec, marker.header.stamp.nanosec) == (0, 0)   # rviz: latest transform
        assert marker.pose.orientation.w == 1.0 and marker.color.a > 0.0
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 0)           # until replaced
    for m, target in enumerate(TARGETS):
        sphere = markers[('targets', m)]
        assert sphere.type == Marker.SPHERE
        assert [sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z] == target.tolist()
        assert (sphere.scale.x, sphere.scale.y, sphere.scale.z) == (0.1, 0.1, 0.1)    # diameter: 2 x radius
    for m, name in enumerate(NAMES):
        for i, path in enumerate(sample_paths[m]):
            strip = markers[(f'samples/{name}', i)]
            assert strip.type == Marker.LINE_STRIP and strip.scale.x == 0.004
            assert [[p.x, p.y, p.z] for p in strip.points] == path.tolist()
    # one colour scale over the whole iteration: cost 1 (lowest) green, 5 (highest) red, 3 yellow
    assert rgb(markers[('samples/train/0', 0)]) == pytest.approx(GREEN)
    assert rgb(markers[('samples/train/1', 0)]) == pytest.approx(RED)
    assert rgb(markers[('samples/train/0', 1)]) == pytest.approx(YELLOW)
    for m in range(2):
        strip = markers[('policy', m)]
        assert strip.type == Marker.LINE_STRIP and rgb(strip) == (1.0, 1.0, 1.0)
        assert strip.scale.x == pytest.approx(0.01)
        assert [[p.x, p.y, p.z] for p in strip.points] == policy[m].tolist()

    again = deserialize_message(serialize_message(array), MarkerArray)
    assert len(again.markers) == len(array.markers) and again.markers[3].points[2].y == array.markers[3].points[2].y


def test_the_next_iteration_replaces_the_markers_under_the_same_namespaces_and_ids():
    rng = np.random.default_rng(1)
    first = training_markers(TARGETS, [paths(rng, 3), paths(rng, 3)], [rng.random(3), rng.random(3)], NAMES)
    second = training_markers(TARGETS, [paths(rng, 3), paths(rng, 3)], [rng.random(3), rng.random(3)], NAMES)
    assert set(by_key(first)) == set(by_key(second))
    # an iteration with fewer samples: its markers are a subset, and the DELETEALL clears the rest
    fewer = training_markers(TARGETS, [paths(rng, 1), paths(rng, 1)], [rng.random(1), rng.random(1)], NAMES)
    assert set(by_key(fewer)) < set(by_key(first)) and fewer.markers[0].action == Marker.DELETEALL


def test_a_fixed_cost_range_gives_one_cost_one_colour_across_iterations():
    rng = np.random.default_rng(2)
    a = training_markers(TARGETS[:1], [paths(rng, 2)], [np.array([5.0, 9.0])], NAMES[:1], cost_range=(0.0, 10.0))
    b = training_markers(TARGETS[:1], [paths(rng, 2)], [np.array([5.0, 1.0])], NAMES[:1], cost_range=(0.0, 10.0))
    assert rgb(by_key(a)[('samples/train/0', 0)]) == pytest.approx(YELLOW)
    assert rgb(by_key(b)[('samples/train/0', 0)]) == pytest.approx(YELLOW)


def test_inputs_that_do_not_fit_are_refused_with_what_was_wrong():
    rng = np.random.default_rng(3)
    good_paths, good_costs = [paths(rng, 2), paths(rng, 2)], [np.zeros(2), np.zeros(2)]
    with pytest.raises(ValueError, match=r'sample_costs\[1\] has 3 costs for 2 sampled paths'):
        training_markers(TARGETS, good_paths, [np.zeros(2), np.zeros(3)], NAMES)
    with pytest.raises(ValueError, match='2 targets but 1 sample path sets'):
        training_markers(TARGETS, good_paths[:1], good_costs[:1], NAMES)
    with pytest.raises(ValueError, match=r'targets must be finite \[M, 3\]'):
        training_markers(np.array([[0.0, np.nan, 0.0], [0.0, 0.0, 0.0]]), good_paths, good_costs, NAMES)
    with pytest.raises(ValueError, match=r'sample_paths\[0\] must be finite \[n, T >= 2, 3\]'):
        training_markers(TARGETS, [rng.normal(size=(2, 5, 2)), good_paths[1]], good_costs, NAMES)
    with pytest.raises(ValueError, match='policy_paths holds 1 paths for 2 conditions'):
        training_markers(TARGETS, good_paths, good_costs, NAMES, policy_paths=rng.normal(size=(1, 5, 3)))
