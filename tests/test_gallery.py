"""The persistent gallery on real faces: enrol, identify, edit, export/import, re-embed, refuse."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import FacePipeline, Gallery, GalleryError, ModelMismatchError, UnknownPersonError
from faceprint.cli import app
from faceprint.decide import KnownFaces, identify_embeddings
from faceprint.gallery.store import NewSample, open_store

CELEB = "5-celebrity-faces"
PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
runner = CliRunner()


def photos(data_dir: Path, split: str, person: str, n: int) -> list[Path]:
    return sorted((data_dir / CELEB / split / person).glob("*.jpg"))[:n]


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    # the gallery's mechanics, checked with dlib's model: 128-d vectors and its 0.6 threshold
    return FacePipeline(model="dlib-resnet-v1")


def where(g: Gallery) -> Path | str:
    """What opens the same gallery again: its file, or its PostgreSQL URL (the test server has no password)."""
    return g.path if g.path is not None else g.location


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The gallery's contract holds on both backends: each test below runs on each."""
    return request.param


@pytest.fixture(scope="module")
def enrolled(
    tmp_path_factory: pytest.TempPathFactory, pipe: FacePipeline, data_dir: Path, backend: str, request: pytest.FixtureRequest
) -> tuple[Path | str, list]:
    """A gallery of the 5 celebrities (2 training photos each) plus two unusable files; built once."""
    if backend == "postgres":
        db: Path | str = request.getfixturevalue("pg").new_database()
    else:
        db = tmp_path_factory.mktemp("gallery") / "celeb.db"
    items = [(p, f) for p in PEOPLE for f in photos(data_dir, "train", p, 2)]
    items += [("nobody", data_dir / "misc" / "blank_white.png"), ("broken", data_dir / "misc" / "invalid" / "truncated.jpg")]
    heard = []
    with Gallery(db, pipeline=pipe) as g:
        report = g.enrol(items, on_result=heard.append, batch_size=4)
    assert heard == report.results
    return db, report.results


@pytest.fixture
def gallery(enrolled: tuple[Path | str, list], tmp_path: Path, pipe: FacePipeline, request: pytest.FixtureRequest) -> Gallery:
    """A private copy of the enrolled gallery (tests may change it): a copied file, or a database
    created from the enrolled one as its template."""
    if isinstance(enrolled[0], str):
        db: Path | str = request.getfixturevalue("pg").new_database(template=enrolled[0])
    else:
        db = tmp_path / "g.db"
        shutil.copy(enrolled[0], db)
    with Gallery(db, pipeline=pipe) as g:
        yield g


def test_enrol_reports_each_photo(enrolled: tuple[Path, list]) -> None:
    _, results = enrolled
    status = {r.person: r.status for r in results}
    assert [r.status for r in results].count("enrolled") == 10
    assert status["nobody"] == "failed" and status["broken"] == "failed"
    assert all(r.sample_id is not None for r in results if r.status == "enrolled")


def test_people_samples_and_provenance(gallery: Gallery) -> None:
    assert gallery.people() == [(p, 2) for p in PEOPLE]  # unusable photos add nobody
    s = gallery.samples("madonna")[0]
    assert s.source.endswith(".jpg") and len(s.sha256) == 64 and len(s.box) == 4
    assert np.shape(s.landmarks) == (5, 2) and 0 < s.quality <= 1 and s.added > 1.6e9
    with pytest.raises(UnknownPersonError, match="no person named 'zed'"):
        gallery.samples("zed")


def test_identify_val_and_agree_with_decide(gallery: Gallery, pipe: FacePipeline, data_dir: Path) -> None:
    for person in PEOPLE:
        (face, ranked), = gallery.identify(photos(data_dir, "val", person, 1)[0], top_k=3)
        assert ranked[0].identity == person and ranked[0].distance < 0.6
        assert len(ranked) == 3 and len({m.identity for m in ranked}) == 3
    # same decisions and distances as the in-memory path (decide.identify_embeddings)
    ids, vecs = gallery.store.vectors()
    names = [s.person for s in gallery.samples()]
    known = KnownFaces(tuple(names), vecs)
    probe = pipe.face(photos(data_dir, "val", "elton_john", 1)[0]).embedding.vector
    mine = gallery.identify_vectors(probe[None], top_k=5)[0]
    ref = identify_embeddings(probe[None], known, 0.6, top_k=5)[0]
    assert [m.identity for m in mine] == [m.identity for m in ref]
    np.testing.assert_allclose([m.distance for m in mine], [m.distance for m in ref], atol=1e-5)


def test_skip_by_content_hash(gallery: Gallery, data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "renamed.jpg"  # same bytes, other name and person: still the same photo
    shutil.copy(photos(data_dir, "train", "madonna", 1)[0], copy)
    r = gallery.enrol([("someone", copy)]).results[0]
    assert r.status == "duplicate" and "madonna" in r.message and len(gallery) == 10


def test_threshold_per_gallery_and_unknown(gallery: Gallery, data_dir: Path) -> None:
    probe = photos(data_dir, "val", "madonna", 1)[0]
    gallery.set_threshold(0.05)
    assert gallery.threshold == 0.05 and gallery.info()["threshold_source"] == "gallery"
    assert gallery.identify(probe)[0][1][0].identity is None  # nobody that close: unknown
    gallery.set_threshold(None)
    assert gallery.threshold == 0.6 and gallery.identify(probe)[0][1][0].identity == "madonna"
    with pytest.raises(GalleryError, match="positive"):
        gallery.set_threshold(-1)


def test_edit_people(gallery: Gallery) -> None:
    vec = gallery.store.vectors()[1][0]
    gallery.rename("ben_afflek", "ben")
    with pytest.raises(GalleryError, match="merge"):
        gallery.rename("ben", "madonna")  # refused, nothing changed
    assert gallery.merge("ben", "madonna") == 2
    assert dict(gallery.people())["madonna"] == 4 and "ben" not in dict(gallery.people())
    assert gallery.identify_vectors(vec[None])[0][0].identity == "madonna"  # index follows the store
    assert gallery.remove("madonna") == 4
    sid = gallery.samples("elton_john")[0].id
    assert gallery.remove_samples([sid]) == 1 and dict(gallery.people())["elton_john"] == 1
    with pytest.raises(UnknownPersonError):
        gallery.remove("madonna")
    assert gallery.check() == "ok"


def test_two_handles_see_each_others_writes(gallery: Gallery, pipe: FacePipeline) -> None:
    vec = gallery.store.vectors()[1][0]
    assert gallery.identify_vectors(vec[None])[0][0].identity == "ben_afflek"  # index built
    with Gallery(where(gallery), pipeline=pipe) as other:
        other.add_embeddings(["twin"], (vec + 1e-4)[None])
        other.remove("ben_afflek")
    assert gallery.identify_vectors(vec[None])[0][0].identity == "twin"  # the other's writes, at once


def test_export_import_round_trip(gallery: Gallery, pipe: FacePipeline, tmp_path: Path) -> None:
    gallery.set_threshold(0.5)
    gallery.add_embeddings(["synthetic"], np.full((1, 128), 0.05, np.float32))  # no photo hash
    out = tmp_path / "export.npz"
    assert gallery.export(out) == 11
    with Gallery(tmp_path / "copy.db", pipeline=pipe) as g:
        assert g.import_file(out) == {"added": 11, "duplicates": 0}
        assert g.import_file(out) == {"added": 0, "duplicates": 11}  # photos by hash, descriptors by value
        assert g.people() == gallery.people()
        np.testing.assert_array_equal(g.store.vectors()[1], gallery.store.vectors()[1])
        assert [s.sha256 for s in g.samples()] == [s.sha256 for s in gallery.samples()]
    (tmp_path / "junk.npz").write_bytes(b"not an export")
    with pytest.raises(GalleryError, match="not a faceprint gallery export"):
        gallery.import_file(tmp_path / "junk.npz")


def test_other_model_is_refused(gallery: Gallery, pipe: FacePipeline) -> None:
    other = dataclasses.replace(pipe.spec, name="other-model")
    gallery.close()
    with pytest.raises(ModelMismatchError, match="made with model 'dlib-resnet-v1'.*reembed"):
        Gallery(where(gallery), model=other)
    store = open_store(where(gallery))
    with store.write():
        store.set_meta("weights_sha256", "beef")  # other weights, same name
    store.close()
    with pytest.raises(ModelMismatchError, match="weights sha256 beef"):
        Gallery(where(gallery), pipeline=pipe)
    g = Gallery(where(gallery))  # without a model: opens with its own, data intact
    assert len(g) == 10 and g.check() == "ok"
    g.close()


def test_bad_inputs_change_nothing(gallery: Gallery, tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match=r"shape \(3,\)"):  # the good first sample is rolled back too
        gallery.store.add([NewSample("a", np.zeros(128)), NewSample("b", np.zeros(3))])
    with pytest.raises(GalleryError, match="one name per row"):
        gallery.add_embeddings(["a"], np.zeros((2, 128)))
    with pytest.raises(GalleryError, match="empty"):
        gallery.enrol([(" padded ", tmp_path / "x.jpg")])
    with pytest.raises(GalleryError, match="128"):
        gallery.identify_vectors(np.zeros((1, 64)))
    assert len(gallery) == 10 and gallery.check() == "ok"
    (tmp_path / "junk.db").write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(GalleryError, match="not a faceprint gallery"):
        Gallery(tmp_path / "junk.db")
    with pytest.raises(GalleryError, match="is a folder"):
        Gallery(tmp_path)
    with pytest.raises(GalleryError, match="no gallery at"):
        Gallery(tmp_path / "absent.db", create=False)


def test_reembed_all_or_nothing(pipe: FacePipeline, data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "m.jpg"
    shutil.copy(photos(data_dir, "train", "mindy_kaling", 1)[0], src)
    with Gallery(tmp_path / "r.db", pipeline=pipe) as g:
        g.enrol([("mindy", src), ("jerry", photos(data_dir, "train", "jerry_seinfeld", 1)[0])])
        before = g.store.vectors()[1]
        src.write_bytes(b"changed")
        with pytest.raises(GalleryError, match="1 sample.*changed since.*nothing was changed"):
            g.reembed(pipe)
        np.testing.assert_array_equal(g.store.vectors()[1], before)
        r = g.reembed(pipe, drop_missing=True)
        assert r == {"model": "dlib-resnet-v1", "reembedded": 1, "dropped": 1}
        assert g.people() == [("jerry", 1), ("mindy", 0)]
        np.testing.assert_allclose(g.store.vectors()[1], before[1:], atol=1e-5)  # same model, same vector
        assert g.store.get_meta("epoch") == "1"


def test_ivf_index_saved_and_reused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 128)).astype(np.float32) / np.sqrt(128)
    db = tmp_path / "big.db"
    with Gallery(db, model="dlib-resnet-v1", index="ivf") as g:
        g.add_embeddings([f"p{i}" for i in range(len(x))], x)
        assert g.identify_vectors(x[:3])[0][0].identity == "p0"
    assert (tmp_path / "big.db.index").is_file()
    mtime = (tmp_path / "big.db.index").stat().st_mtime_ns
    with Gallery(db, model="dlib-resnet-v1", index="ivf") as g:
        g.remove("p0")
        m = g.identify_vectors(x[:2], top_k=2)
        assert m[0][0].identity != "p0" and m[1][0].identity == "p1"
        assert g._index is not None and g._index.trained_on == 3000  # loaded, not retrained
    assert (tmp_path / "big.db.index").stat().st_mtime_ns != mtime  # saved again with the removal
    (tmp_path / "big.db.index").write_bytes(b"garbage")
    with Gallery(db, model="dlib-resnet-v1", index="ivf") as g:
        assert g.identify_vectors(x[1:2])[0][0].identity == "p1"  # damaged index file: rebuilt


def test_cli_gallery(gallery: Gallery, data_dir: Path, tmp_path: Path) -> None:
    db: Path | str = where(gallery)
    native = "exact" if gallery.path is not None else "pgvector-hnsw"

    def run(*args: str) -> tuple[int, object]:
        res = runner.invoke(app, ["gallery", "--db", str(db), *args])
        out = res.stdout.strip()
        return res.exit_code, (json.loads(out) if out.startswith(("{", "[")) else res.output)

    code, out = run("list", "--json")
    assert code == 0 and out == [{"name": p, "samples": 2} for p in PEOPLE]
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(photos(data_dir, "train", "madonna", 3)[2], new / "madge.jpg")
    extra = photos(data_dir, "train", "elton_john", 3)[2]
    code, out = run("enrol", str(new), str(extra), "--name", "elton_john", str(data_dir / "misc" / "blank_white.png"),
                    "--name", "blank", "--json")
    assert code == 1  # one unusable photo: reported, not fatal
    assert [e["person"] for e in out["enrolled"]] == ["madge", "elton_john"]
    assert out["failed"][0]["image"].endswith("blank_white.png") and "no face" in out["failed"][0]["error"]
    code, out = run("enrol", str(new), "--json")
    assert code == 0 and len(out["duplicates"]) == 1 and not out["enrolled"]
    code, out = run("identify", str(photos(data_dir, "val", "madonna", 1)[0]), "--json")
    assert code == 0 and out[0]["faces"][0]["identity"] in ("madonna", "madge")
    assert set(out[0]["faces"][0]) == {"box", "identity", "distance", "decision", "too_poor", "quality"}
    assert run("rename", "madge", "madonna_2")[0] == 0
    assert run("merge", "madonna_2", "madonna")[0] == 0
    assert run("remove", "ben_afflek")[0] == 0
    code, out = run("remove", "ben_afflek")
    assert code == 2 and "no person named" in out
    code, out = run("list", "--json")
    assert {p["name"]: p["samples"] for p in out}["madonna"] == 3 and len(out) == 4
    code, out = run("info", "--json")
    assert code == 0 and out["index"] == native
    code, _ = run("export", str(tmp_path / "e.npz"))
    assert code == 0
    db = tmp_path / "imported.db"  # exported from either backend, imported into SQLite
    assert run("import", str(tmp_path / "e.npz"))[0] == 0
    code, out = run("list", "--json")
    assert sum(p["samples"] for p in out) == 10
    code, out = run("info", "--check", "--json")
    assert code == 0 and out["integrity"] == "ok" and out["index"] == "exact" and out["model"] == "dlib-resnet-v1"
    code, out = run("--model", "nope", "list")
    assert code == 2 and "unknown model" in out


def test_cli_identify_against_an_empty_gallery_prints_strict_json(gallery: Gallery, data_dir: Path) -> None:
    for name, _ in gallery.people():
        gallery.remove(name)
    res = runner.invoke(app, ["gallery", "--db", str(where(gallery)), "identify", str(photos(data_dir, "val", "madonna", 1)[0]), "--json"])
    assert res.exit_code == 0 and "Infinity" not in res.stdout
    face = json.loads(res.stdout)[0]["faces"][0]  # json.loads would accept Infinity; the check above would not
    assert face["identity"] is None and face["distance"] is None


def test_people_by_id_and_faces_from_the_pipeline(gallery: Gallery, pipe: FacePipeline, data_dir: Path) -> None:
    """The API the HTTP service builds on: stable person ids, faces added without re-running models."""
    ids = gallery.person_ids()
    assert sorted(ids.values()) == sorted(PEOPLE)
    pid, created = gallery.add_person("kian")
    assert created and gallery.person_ids()[pid] == "kian" and ("kian", 0) in gallery.people()
    assert gallery.add_person("kian") == (pid, False)
    photo = photos(data_dir, "val", "madonna", 1)[0]
    face = pipe.face(photo)
    sid = gallery.add_face("kian", face, source=str(photo), sha256="f" * 64)
    assert sid is not None and gallery.add_face("kian", face, sha256="f" * 64) is None  # same photo twice
    assert gallery.owner_of("f" * 64) == "kian" and gallery.owner_of("0" * 64) is None
    found, vectors = gallery.sample_vectors([sid, 10**9])  # an unknown id is left out
    assert found.tolist() == [sid]
    np.testing.assert_allclose(vectors[0], face.embedding.vector, atol=1e-6)
    assert gallery.identify_vectors(face.embedding.vector[None])[0][0].identity == "kian"
    assert gallery.samples("kian")[0].quality == pytest.approx(face.detection.quality)
    gallery.rename("kian", "kian_2")
    assert gallery.person_ids()[pid] == "kian_2"  # the id survives a rename
    other = dataclasses.replace(face, embedding=dataclasses.replace(face.embedding, model_id="facenet"))
    with pytest.raises(ModelMismatchError):
        gallery.add_face("kian_2", other)


def test_adding_by_id_follows_renames_and_never_revives(gallery: Gallery, pipe: FacePipeline) -> None:
    """A writer that looked a person up before another process renamed or removed them: the add is
    checked in its own write transaction, by stable id (issue 14, item 1)."""
    vec = gallery.store.vectors()[1][0]
    pid = {n: i for i, n in gallery.person_ids().items()}["madonna"]
    with Gallery(where(gallery), pipeline=pipe) as other:
        other.rename("madonna", "madonna_c")
    sid = gallery.store.add([NewSample("madonna", vec + 0.01, person_id=pid)])[0]
    assert sid is not None and dict(gallery.people())["madonna_c"] == 3 and "madonna" not in dict(gallery.people())
    with Gallery(where(gallery), pipeline=pipe) as other:
        other.remove("madonna_c")
    with pytest.raises(UnknownPersonError, match="was removed"):
        gallery.store.add([NewSample("madonna_c", vec + 0.02, person_id=pid)])
    assert "madonna_c" not in dict(gallery.people()) and len(gallery) == 8 and gallery.check() == "ok"


def test_one_large_batch_skips_repeats_and_stored_photos(gallery: Gallery) -> None:
    """A 101-sample insert (PostgreSQL loads it by COPY): photos stored before or earlier in the
    batch are skipped, the rest round-trip exactly, and a bad row leaves nothing behind."""
    known = gallery.samples("madonna")[0].sha256
    v = np.random.default_rng(3).standard_normal((100, 128)).astype(np.float32)
    items = [NewSample(f"batch{i % 7}", v[i], sha256=f"{i % 80:064x}") for i in range(100)]
    items.append(NewSample("batch0", v[0] + 1, sha256=known))
    ids = gallery.store.add(items)
    assert all(i is not None for i in ids[:80]) and ids[80:] == [None] * 21 and len(set(ids[:80])) == 80
    found, vecs = gallery.store.vectors(np.array(ids[:80]))
    np.testing.assert_array_equal(vecs[np.argsort(found)], v[:80][np.argsort(ids[:80])])
    assert dict(gallery.people())["batch3"] == len(range(3, 80, 7)) and len(gallery) == 90
    bad = [NewSample("late", v[i], sha256=f"{1000 + i:064x}") for i in range(99)] + [NewSample("late", np.zeros(5))]
    with pytest.raises(GalleryError, match="shape"):
        gallery.store.add(bad)
    assert "late" not in dict(gallery.people()) and len(gallery) == 90 and gallery.check() == "ok"
