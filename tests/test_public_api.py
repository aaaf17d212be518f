"""The public API is explicit: __all__ is sorted, complete and importable."""

import faceprint


def test_all_sorted_and_importable() -> None:
    assert faceprint.__all__ == sorted(faceprint.__all__)
    for name in faceprint.__all__:
        assert hasattr(faceprint, name), name


def test_public_names_are_exported() -> None:
    public = {n for n in vars(faceprint) if not n.startswith("_")}
    modules = {n for n, v in vars(faceprint).items() if type(v).__name__ == "module"}
    assert public - modules - {"annotations"} <= set(faceprint.__all__)


def test_errors_subclass_builtins() -> None:
    assert issubclass(faceprint.InvalidImageError, ValueError)
    assert issubclass(faceprint.NoFaceError, ValueError)
    assert issubclass(faceprint.WeightsNotFoundError, FileNotFoundError)
    assert issubclass(faceprint.UnknownNameError, KeyError)
    for name in faceprint.__all__:
        obj = getattr(faceprint, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, faceprint.FaceprintError)
