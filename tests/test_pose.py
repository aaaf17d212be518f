"""Head pose from 5 landmarks: zero on a frontal face, and the signs and sizes of roll, yaw, pitch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceprint.pose import NOSE_DEPTH, NOSE_HEIGHT, head_pose

# A frontal face: eyes 60 px apart, mouth 68 px below them, nose NOSE_HEIGHT of the way down.
FRONTAL = np.array([[70.0, 100.0], [130.0, 100.0], [100.0, 100.0 + 68 * NOSE_HEIGHT], [76.0, 168.0], [124.0, 168.0]])


def rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    centre = points.mean(0)
    return (points - centre) @ rot.T + centre


def test_frontal_is_zero() -> None:
    np.testing.assert_allclose(head_pose(FRONTAL), (0, 0, 0), atol=1e-9)


@pytest.mark.parametrize("roll", [-30.0, -5.0, 12.0, 40.0])
def test_roll_is_the_eye_line_and_leaves_yaw_pitch(roll: float) -> None:
    yaw, pitch, got = head_pose(rotate(FRONTAL, roll))
    assert got == pytest.approx(roll, abs=1e-6)
    assert abs(yaw) < 1e-6 and abs(pitch) < 1e-6


def test_yaw_from_the_nose_offset_and_mirror_flips_signs() -> None:
    turned = FRONTAL.copy()
    turned[2, 0] += NOSE_DEPTH * 60 * math.tan(math.radians(20))  # nose moved right by a 20 degree turn
    yaw, pitch, roll = head_pose(turned)
    assert yaw == pytest.approx(20, abs=0.5) and abs(roll) < 1e-6
    mirrored = turned.copy()
    mirrored[:, 0] = 200 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the image-left eye is now the other one
    assert head_pose(mirrored)[0] == pytest.approx(-yaw, abs=1e-6)
    tilted = rotate(turned, 15)
    assert head_pose(tilted)[0] == pytest.approx(yaw, abs=1e-6)  # roll does not leak into yaw


def test_pitch_up_when_the_nose_rises() -> None:
    up = FRONTAL.copy()
    up[2, 1] -= 10
    down = FRONTAL.copy()
    down[2, 1] += 10
    assert head_pose(up)[1] > 5 and head_pose(down)[1] < -5


def test_degenerate_points_do_not_fail() -> None:
    assert all(math.isfinite(v) for v in head_pose(np.zeros((5, 2))))
