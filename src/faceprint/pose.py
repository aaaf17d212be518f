"""Head pose (yaw, pitch, roll in degrees) estimated from the 5 face landmarks.

A geometric estimate on a generic face, not a fitted 3-D model: five points cannot pin down a
head's shape, so any method (cv2.solvePnP included) rests on an assumed face. Ours assumes:

* the eye centres and mouth corners lie roughly in one plane facing the camera when the pose is 0;
* the nose tip stands ``NOSE_DEPTH`` inter-ocular distances in front of that plane (about 35 mm
  for a 63 mm inter-ocular distance);
* on a frontal face the nose tip sits ``NOSE_HEIGHT`` of the way from the eye line down to the
  mouth line (the median of MTCNN's landmarks on the 5-celebrity training photos: 0.53).

Then, after undoing the roll: turning the head by yaw moves the nose sideways by
``NOSE_DEPTH * iod * sin(yaw)`` while the eyes' spacing shrinks to ``iod * cos(yaw)``, so
``yaw = atan(offset / (NOSE_DEPTH * projected_iod))``; tilting it by pitch moves the nose up by
``NOSE_DEPTH * iod * sin(pitch)`` while the eye-to-mouth height shrinks by ``cos(pitch)``, which
gives pitch from the nose's height between the two lines. Good to about 10 degrees within
+-45 degrees: enough to tell frontal from turned faces and to filter enrolment photos.

Signs (image coordinates, the camera's view): roll > 0 when the eye line goes down towards the
image's right (the head leans clockwise); yaw > 0 when the nose points to the image's right;
pitch > 0 when the face looks up.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NOSE_DEPTH", "NOSE_HEIGHT", "head_pose"]

NOSE_DEPTH = 0.55
NOSE_HEIGHT = 0.53


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from (5, 2) landmarks in MTCNN order (eyes, nose, mouth corners)."""
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = pts
    dx, dy = right_eye - left_eye
    roll = math.atan2(dy, dx)
    # Undo the roll around the eyes' midpoint, so the rest is measured on an upright face.
    c, s = math.cos(-roll), math.sin(-roll)
    eyes_mid = (left_eye + right_eye) / 2.0
    upright = (pts - eyes_mid) @ np.array([[c, s], [-s, c]])
    iod = float(np.hypot(dx, dy))
    if iod < 1e-6:
        return 0.0, 0.0, math.degrees(roll)
    eyes = (upright[0] + upright[1]) / 2.0  # (0, 0) by construction
    mouth = (upright[3] + upright[4]) / 2.0
    nose_u = upright[2]
    height = mouth[1] - eyes[1]
    # Nose height between the lines, and the face's midline at that height (it leans with the yaw).
    t = (nose_u[1] - eyes[1]) / height if abs(height) > 1e-6 else NOSE_HEIGHT
    midline_x = eyes[0] + t * (mouth[0] - eyes[0])
    yaw = math.atan2(nose_u[0] - midline_x, NOSE_DEPTH * iod)
    iod_3d = iod / max(math.cos(yaw), 0.2)  # the eyes' true spacing, undoing the yaw's foreshortening
    pitch = math.atan2((NOSE_HEIGHT - t) * height, NOSE_DEPTH * iod_3d)
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)
