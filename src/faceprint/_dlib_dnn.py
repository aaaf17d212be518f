"""Parser for dlib DNN model files (``net_type`` serialised by ``dlib::serialize``), without dlib.

Follows ``shared/docs/dlib-format.md`` section 2 (checked against dlib 20.0.1 ``dnn/core.h``,
``layers.h``, ``input.h``, ``loss.h``). A network file is the depth-first serialisation of nested
templates, outermost first::

    int 1 (loss wrapper) | loss record | wrapper versions, outer -> inner (2 = add_layer,
    1 = tag/skip, 3 = add_layer over the input) | input record | for each layer, input side
    first: layer record + add_layer trailer | EOF

The graph (which tag an ``add_prev_`` adds, where a skip jumps) is *not* in the file; callers
hard-code the topology and use :attr:`DnnFile.layers` / :attr:`DnnFile.wrappers` to validate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._dlib_format import DlibReader
from .errors import ModelError

__all__ = ["DnnFile", "fold_bn", "read_dnn"]

# Loss layers whose record is the version tag alone.
_TAG_ONLY_LOSSES = ("loss_multiclass_log_", "loss_binary_log_", "loss_metric_")


@dataclass
class DnnFile:
    """The parsed content of one dlib DNN file.

    ``layers`` are in input-to-output order. Arrays are float32 NumPy copies:

    * ``con``: ``weight`` (O, I, kh, kw), ``bias`` (O,) or None, ``stride`` (sy, sx),
      ``padding`` (py, px), ``num_filters``
    * ``affine``: ``gamma``, ``beta`` (C,) (per element in FC mode), ``mode`` 0 = conv, 1 = fc
    * ``bn_con`` / ``bn_fc``: ``gamma``, ``beta``, ``running_mean``, ``running_var`` (C,),
      ``eps`` (float), ``num_updates``, ``window``
    * ``fc``: ``weight`` (in, out) as stored (y = x @ W), ``bias`` (out,) or None
    * ``max_pool`` / ``avg_pool``: ``nr``, ``nc`` (0 = global), ``stride``, ``padding``
    * ``relu`` (``disabled``), ``add_prev``

    ``type`` holds the version tag as stored (e.g. ``"con_4"``, ``"bn_con2"``); ``kind`` the
    normalised name used above.
    """

    loss: dict[str, Any]
    input: dict[str, Any]
    layers: list[dict[str, Any]]
    #: wrapper versions as read, outer (loss side) to inner: 2 = add_layer, 1 = tag or skip,
    #: 3 (or a final 2) = add_layer directly over the input layer.
    wrappers: list[int] = field(default_factory=list)

    @property
    def num_params(self) -> int:
        """Stored trainable parameters (conv/fc weights and biases, affine/bn gamma and beta)."""
        total = 0
        for rec in self.layers:
            for key in ("weight", "bias", "gamma", "beta"):
                arr = rec.get(key)
                if arr is not None:
                    total += int(arr.size)
        return total

    def kinds(self) -> list[str]:
        """Normalised layer kinds, input side first (``"con"``, ``"affine"``, ``"relu"``, ...)."""
        return [rec["kind"] for rec in self.layers]


def fold_bn(layer: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Fold a ``bn_con2``/``bn_fc2`` record into affine (gamma', beta'), as dlib does at load.

    dlib's ``affine_(const bn_&)`` computes, all in float32 (the double eps is converted to float by
    the matrix-plus-scalar expression): gamma' = gamma / sqrt(var + eps), beta' = beta - gamma'·mean.
    """
    if layer.get("kind") not in ("bn_con", "bn_fc"):
        raise ModelError(f"fold_bn needs a bn_con2/bn_fc2 record, got {layer.get('type')!r}")
    eps = np.float32(layer["eps"])
    var = np.asarray(layer["running_var"], dtype=np.float32)
    mean = np.asarray(layer["running_mean"], dtype=np.float32)
    gamma = np.asarray(layer["gamma"], dtype=np.float32) / np.sqrt(var + eps)
    beta = np.asarray(layer["beta"], dtype=np.float32) - gamma * mean
    return gamma.astype(np.float32), beta.astype(np.float32)


# -- records ------------------------------------------------------------------------------------


def _read_loss(r: DlibReader) -> dict[str, Any]:
    tag = r.string()
    if tag == "loss_metric_2":
        return {"type": tag, "margin": r.float(), "dist_thresh": r.float()}
    if tag == "loss_metric_":
        return {"type": tag, "margin": 0.1, "dist_thresh": 0.75}
    if tag == "loss_mmod_":
        return {"type": tag, "options": _read_mmod_options(r)}
    if tag in _TAG_ONLY_LOSSES:
        return {"type": tag}
    raise r.fail(f"unsupported loss layer {tag!r}")


def _read_mmod_options(r: DlibReader) -> dict[str, Any]:
    version = r.int()
    if not 1 <= version <= 4:
        raise r.fail(f"mmod_options version {version}, expected 1..4")
    windows: list[tuple[int, int]] = []
    labels: list[str] = []
    if version == 1:
        windows.append((r.uint(), r.uint()))
        labels.append("")
    else:
        for _ in range(r.uint()):
            wv = r.int()
            if wv not in (1, 2):
                raise r.fail(f"detector window version {wv}, expected 1 or 2")
            windows.append((r.uint(), r.uint()))
            labels.append(r.string() if wv == 2 else "")
    opts: dict[str, Any] = {
        "version": version,
        "detector_windows": windows,  # (width, height) in pixels
        "detector_window_labels": labels,
        "loss_per_false_alarm": r.float(),
        "loss_per_missed_target": r.float(),
        "truth_match_iou_threshold": r.float(),
        "overlaps_nms": (r.float(), r.float()),  # (iou_thresh, percent_covered_thresh)
        "overlaps_ignore": (r.float(), r.float()),
        "assume_image_pyramid": True,
        "use_bounding_box_regression": False,
        "bbr_lambda": 100.0,
    }
    if version >= 3:
        opts["assume_image_pyramid"] = r.byte() != 0
    if version >= 4:
        opts["use_bounding_box_regression"] = r.bool()
        opts["bbr_lambda"] = r.float()
    return opts


def _f32(v: float) -> float:
    """A C++ float field: the value as float32 (exact round trip of dlib's encoding)."""
    return float(np.float32(v))


def _read_input(r: DlibReader) -> dict[str, Any]:
    tag = r.string()
    if not tag.startswith("input_rgb_image"):
        raise r.fail(f"unsupported input layer {tag!r}")
    rec: dict[str, Any] = {"type": tag, "avg_rgb": (_f32(r.float()), _f32(r.float()), _f32(r.float()))}
    if tag == "input_rgb_image_sized":
        rec["nr"], rec["nc"] = r.uint(), r.uint()
    elif tag == "input_rgb_image_pyramid":
        rec["pyramid_padding"], rec["pyramid_outer_padding"] = 10, 11  # implied by the old tag
    elif tag == "input_rgb_image_pyramid2":
        rec["pyramid_padding"], rec["pyramid_outer_padding"] = r.uint(), r.uint()
    elif tag not in ("input_rgb_image", "input_rgb_image_pair"):
        raise r.fail(f"unsupported input layer {tag!r}")
    return rec


def _split_params(r: DlibReader, params: np.ndarray, sizes: list[int], what: str) -> list[np.ndarray]:
    flat = params.reshape(-1)
    if flat.size != sum(sizes):
        raise r.fail(f"{what} holds {flat.size} parameters, expected {sum(sizes)}")
    out, start = [], 0
    for n in sizes:
        out.append(flat[start : start + n])
        start += n
    return out


def _read_layer(r: DlibReader) -> dict[str, Any]:
    tag = r.string()
    if tag in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        num_filters, nr, nc = r.int(), r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        filters = r.alias_tensor()
        biases = r.alias_tensor()
        for _ in range(4):  # lr / wd multipliers
            r.float()
        use_bias = r.bool() if tag in ("con_5", "con_6") else True
        use_relu = r.bool() if tag == "con_6" else False
        if filters[0] != num_filters or filters[2:] != (nr, nc):
            raise r.fail(f"{tag} filter shape {filters} disagrees with {num_filters}x{nr}x{nc}")
        n_w = int(np.prod(filters))
        # con_4 always stores biases; later versions drop them when use_bias is false
        n_b = num_filters if (use_bias or params.size == n_w + num_filters) else 0
        weight, bias = _split_params(r, params, [n_w, n_b], tag)
        return {
            "type": tag,
            "kind": "con",
            "num_filters": num_filters,
            "weight": weight.reshape(filters),
            "bias": bias.copy() if n_b and use_bias else None,
            "stride": stride,
            "padding": padding,
            "bias_alias": biases,
            "use_relu": use_relu,
        }
    if tag in ("fc_2", "fc_3"):
        num_outputs, num_inputs = r.uint(), r.uint()
        params = r.tensor()
        r.alias_tensor()
        r.alias_tensor()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        use_bias = r.bool() if tag == "fc_3" else True
        has_bias = bias_mode == 0 and use_bias
        # bias_mode 0 stores biases (fc_3 with use_bias false may keep them, unused)
        n_b = num_outputs if bias_mode == 0 and params.size == (num_inputs + 1) * num_outputs else 0
        weight, bias = _split_params(r, params, [num_inputs * num_outputs, n_b], tag)
        return {
            "type": tag,
            "kind": "fc",
            "num_inputs": num_inputs,
            "num_outputs": num_outputs,
            "weight": weight.reshape(num_inputs, num_outputs),
            "bias": bias.copy() if has_bias else None,
        }
    if tag in ("bn_con2", "bn_fc2"):
        params = r.tensor()
        g_shape = r.alias_tensor()
        b_shape = r.alias_tensor()
        r.tensor()  # means of the last training batch (unused at inference)
        r.tensor()  # invstds of the last training batch
        running_mean = r.tensor().reshape(-1)
        running_var = r.tensor().reshape(-1)
        num_updates, window = r.uint(), r.uint()
        for _ in range(4):
            r.float()
        eps = r.float()
        gamma, beta = _split_params(r, params, [int(np.prod(g_shape)), int(np.prod(b_shape))], tag)
        if running_mean.size != gamma.size or running_var.size != gamma.size:
            raise r.fail(f"{tag} running statistics do not match {gamma.size} channels")
        return {
            "type": tag,
            "kind": "bn_con" if tag == "bn_con2" else "bn_fc",
            "gamma": gamma,
            "beta": beta,
            "running_mean": running_mean,
            "running_var": running_var,
            "eps": eps,
            "num_updates": num_updates,
            "window": window,
        }
    if tag in ("affine_", "affine_2"):
        params = r.tensor()
        g_shape = r.alias_tensor()
        b_shape = r.alias_tensor()
        mode = r.int()
        disabled = r.bool() if tag == "affine_2" else False
        gamma, beta = _split_params(r, params, [int(np.prod(g_shape)), int(np.prod(b_shape))], tag)
        return {
            "type": tag, "kind": "affine", "gamma": gamma, "beta": beta, "mode": mode, "disabled": disabled
        }  # fmt: skip
    if tag in ("relu_", "relu_2"):
        return {"type": tag, "kind": "relu", "disabled": r.bool() if tag == "relu_2" else False}
    if tag in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        kind = "max_pool" if tag == "max_pool_2" else "avg_pool"
        return {"type": tag, "kind": kind, "nr": nr, "nc": nc, "stride": stride, "padding": padding}
    if tag == "add_prev_":
        return {"type": tag, "kind": "add_prev"}
    raise r.fail(f"unsupported layer type {tag!r}")


def _read_trailer(r: DlibReader, version: int, over_input: bool) -> None:
    """add_layer bookkeeping after a layer record: 3 bools and gradient/cache tensors (unused)."""
    for _ in range(3):
        r.bool()
    r.tensor()  # x_grad
    r.tensor()  # cached_output
    if over_input:
        r.tensor()  # grad_final
        if version >= 3:
            r.uint()  # sample_expansion_factor
    elif version == 2:
        r.tensor()  # params_grad


# -- file ---------------------------------------------------------------------------------------


def read_dnn(path: str | Path) -> DnnFile:
    """Parse a dlib DNN ``.dat`` file. Raises ModelError unless it parses exactly to EOF."""
    path = Path(path)
    try:
        r = DlibReader.open(path)
    except FileNotFoundError as exc:
        raise ModelError(f"dlib model file not found: {path}") from exc
    return _parse(r)


def _parse(r: DlibReader) -> DnnFile:
    if r.int() != 1:
        r.pos = 0
        raise r.fail("not a dlib DNN file (expected loss-layer version 1 at the start)")
    loss = _read_loss(r)
    wrappers: list[int] = []
    while not r.looks_like_string("input"):
        if len(wrappers) > 100_000:
            raise r.fail("no input layer found")
        v = r.int()
        if v not in (1, 2, 3):
            raise r.fail(f"unexpected layer-wrapper version {v}")
        wrappers.append(v)
    if not wrappers or wrappers[-1] not in (2, 3):
        # a tag directly over the input would be a different record; no known model does this
        raise r.fail("expected an add_layer directly over the input layer")
    inp = _read_input(r)
    layers: list[dict[str, Any]] = []
    innermost = len(wrappers) - 1
    for i in range(innermost, -1, -1):  # unwind: innermost (input side) record first
        v = wrappers[i]
        if v == 1 and i != innermost:
            continue  # tag or skip: nothing after the wrapped network
        layers.append(_read_layer(r))
        _read_trailer(r, v, over_input=i == innermost)
    if not r.at_end:
        raise r.fail(f"{len(r.data) - r.pos} unexpected trailing bytes after the network")
    return DnnFile(loss=loss, input=inp, layers=layers, wrappers=wrappers)
