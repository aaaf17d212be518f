"""The HTTP API against a real `faceprint serve` on loopback: every endpoint, bad inputs, auth, load."""

from __future__ import annotations

import base64
import io
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="the service's test extra is not installed: pip install -e '.[test]'")
pytest.importorskip("fastapi", reason="the service extra is not installed: pip install -e '.[service]'")

from PIL import Image  # noqa: E402

from faceprint.service import Settings, exposure_warning  # noqa: E402
from faceprint.service.photos import strip_metadata  # noqa: E402
from faceprint.service.testing import running_server  # noqa: E402
from faceprint.models import DEFAULT_MODEL, get_model_spec

CELEB = "5-celebrity-faces"
READ, ADMIN = "read-key-123", "admin-key-456"
MAX_UPLOAD = 2_000_000
MAX_PIXELS = 20_000_000

SPEC = get_model_spec(DEFAULT_MODEL)


def photo(data_dir: Path, split: str, person: str, i: int = 0) -> Path:
    return sorted((data_dir / CELEB / split / person).glob("*.jpg"))[i]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> str:
    """One server for the module: keys on, CORS for one origin, small limits so 'huge' is cheap."""
    db = tmp_path_factory.mktemp("service") / "gallery.db"
    env = {
        "FACEPRINT_API_KEY": READ, "FACEPRINT_ADMIN_KEY": ADMIN, "FACEPRINT_CORS_ORIGINS": "http://example.test",
        "FACEPRINT_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "FACEPRINT_MAX_PIXELS": str(MAX_PIXELS),
    }
    with running_server(db, env) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> httpx.Client:
    with httpx.Client(base_url=server, headers={"X-API-Key": ADMIN}, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def people(client: httpx.Client, data_dir: Path) -> dict[str, int]:
    """madonna and mindy_kaling enrolled from one training photo each: name -> id."""
    ids = {}
    for name in ("madonna", "mindy_kaling"):
        r = client.post("/v1/people", json={"name": name})
        assert r.status_code == 201 and r.json() == {"id": r.json()["id"], "name": name, "samples": 0}
        ids[name] = r.json()["id"]
        r = client.post(f"/v1/people/{ids[name]}/faces", files={"image": photo(data_dir, "train", name).read_bytes()})
        assert r.status_code == 201, r.text
        assert r.json()["person"] == name and r.json()["location"]["width"] > 20
    return ids


def error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]["message"]


# -- system ----------------------------------------------------------------------------------------
def test_healthz_openapi_and_page(client: httpx.Client) -> None:
    h = httpx.get(f"{client.base_url}/healthz").json()  # no key needed
    assert h["status"] == "ok" and h["model"] == DEFAULT_MODEL and h["detector"] == get_model_spec(DEFAULT_MODEL).detector + "-upright"
    spec = client.get("/openapi.json").json()
    for path in ("/v1/detect", "/v1/verify", "/v1/identify", "/v1/embed", "/v1/people", "/v1/people/{person_id}",
                 "/v1/people/{person_id}/faces", "/v1/people/{person_id}/faces/{face_id}", "/healthz", "/metrics"):
        assert path in spec["paths"], path
    body = spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert "image_base64" in body["application/json"]["schema"]["properties"]
    page = httpx.get(f"{client.base_url}/")
    assert page.status_code == 200 and 'id="canvas"' in page.text
    assert httpx.get(f"{client.base_url}/static/app.js").status_code == 200


def test_api_docs_work_offline(client: httpx.Client) -> None:
    """/docs must not need a CDN: every script and style it loads comes from this server."""
    import re

    docs = httpx.get(f"{client.base_url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", docs.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert httpx.get(f"{client.base_url}{asset}").status_code == 200, asset


# -- detect / embed --------------------------------------------------------------------------------
def test_detect_wire_shape_and_base64(client: httpx.Client, data_dir: Path) -> None:
    raw = photo(data_dir, "train", "madonna").read_bytes()
    r = client.post("/v1/detect", files={"image": ("m.jpg", raw, "image/jpeg")})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["face_num"] == len(out["face_list"]) == 1
    face = out["face_list"][0]
    assert set(face) == {"face_token", "location", "landmarks", "angle", "face_probability", "quality"}
    assert 0.5 < face["quality"] <= 1  # a clear portrait: well above the default floor
    assert set(face["location"]) == {"left", "top", "width", "height"} and set(face["angle"]) == {"yaw", "pitch", "roll"}
    w, h = Image.open(io.BytesIO(raw)).size
    loc = face["location"]
    assert 0 <= loc["left"] < w and 0 <= loc["top"] < h and 20 < loc["width"] <= w
    assert np.shape(face["landmarks"]) == (5, 2) and 0.9 < face["face_probability"] <= 1
    assert all(abs(a) < 45 for a in face["angle"].values())  # a portrait, roughly frontal
    b64 = base64.b64encode(raw).decode()
    for value in (b64, "data:image/jpeg;base64," + b64):
        assert client.post("/v1/detect", json={"image_base64": value}).json() == out  # same photo, same token


def test_detect_several_and_no_face(client: httpx.Client, data_dir: Path) -> None:
    out = client.post("/v1/detect", files={"image": (data_dir / "misc" / "longoria_cooper.jpg").read_bytes()}).json()
    assert out["face_num"] == 2 and len({f["face_token"] for f in out["face_list"]}) == 2
    for name in ("landscape_pilatus.jpg", "blank_white.png"):
        r = client.post("/v1/detect", files={"image": (data_dir / "misc" / name).read_bytes()})
        assert r.json() == {"face_num": 0, "face_list": []}


def test_embed(client: httpx.Client, data_dir: Path) -> None:
    out = client.post("/v1/embed", files={"image": photo(data_dir, "train", "madonna").read_bytes()}).json()
    assert out["model"] == DEFAULT_MODEL and out["metric"] == SPEC.metric and out["face_num"] == 1
    vec = np.array(out["face_list"][0]["embedding"])
    assert vec.shape == (SPEC.embedding_size,) and np.isfinite(vec).all() and 0.2 < np.linalg.norm(vec) < 2


# -- identify / verify ------------------------------------------------------------------------------
def test_identify_known_and_unknown(client: httpx.Client, people: dict[str, int], data_dir: Path) -> None:
    for name, i in (("madonna", 2), ("mindy_kaling", 1)):
        out = client.post("/v1/identify?top_k=2", files={"image": photo(data_dir, "val", name, i).read_bytes()}).json()
        face = max(out["face_list"], key=lambda f: f["location"]["width"])
        assert face["name"] == name and not face["unknown"] and face["distance"] < out["threshold"] == SPEC.threshold
        assert [c["name"] for c in face["candidates"]][0] == name and len(face["candidates"]) == 2
        assert face["candidates"][0]["distance"] <= face["candidates"][1]["distance"]
    out = client.post("/v1/identify", files={"image": photo(data_dir, "val", "elton_john").read_bytes()}).json()
    face = out["face_list"][0]
    assert face["unknown"] and face["name"] is None and face["distance"] > SPEC.threshold
    assert {c["name"] for c in face["candidates"]} == set(people)  # still ranked, for display
    none = client.post("/v1/identify", files={"image": (data_dir / "misc" / "blank_white.png").read_bytes()}).json()
    assert none == {"face_num": 0, "threshold": SPEC.threshold, "face_list": []}
    strict = client.post("/v1/identify?threshold=0.1", files={"image": photo(data_dir, "val", "madonna", 2).read_bytes()})
    assert all(f["unknown"] for f in strict.json()["face_list"]) and strict.json()["threshold"] == 0.1


def test_verify_two_images_and_person(client: httpx.Client, people: dict[str, int], data_dir: Path) -> None:
    m1, m2 = photo(data_dir, "train", "mindy_kaling", 1).read_bytes(), photo(data_dir, "val", "mindy_kaling", 1).read_bytes()
    e1 = photo(data_dir, "val", "elton_john", 1).read_bytes()
    same = client.post("/v1/verify", files={"image": m1, "image2": m2}).json()
    assert same["same"] and same["distance"] < same["threshold"] == SPEC.threshold and same["person"] is None
    differ = client.post("/v1/verify", json={"image_base64": base64.b64encode(m1).decode(),
                                              "image2_base64": base64.b64encode(e1).decode()}).json()
    assert not differ["same"] and differ["distance"] > SPEC.threshold
    by_id = client.post("/v1/verify", files={"image": photo(data_dir, "val", "madonna", 2).read_bytes()},
                        data={"person_id": str(people["madonna"])}).json()
    assert by_id["same"] and by_id["person"] == {"id": people["madonna"], "name": "madonna", "samples": 1}
    by_name = client.post("/v1/verify", files={"image": e1}, data={"person": "madonna"}).json()
    assert not by_name["same"] and by_name["person"]["name"] == "madonna"
    error(client.post("/v1/verify", files={"image": m1}), 400, "missing_image")
    error(client.post("/v1/verify", files={"image": m1}, data={"person": "nobody"}), 404, "person_not_found")
    error(client.post("/v1/verify", files={"image": m1}, data={"person_id": "x1"}), 422, "invalid_request")
    blank = (data_dir / "misc" / "blank_white.png").read_bytes()
    assert "image2" in error(client.post("/v1/verify", files={"image": m1, "image2": blank}), 422, "no_face")


# -- people -------------------------------------------------------------------------------------------
def test_people_lifecycle(client: httpx.Client, people: dict[str, int], data_dir: Path) -> None:
    listed = client.get("/v1/people").json()["people"]
    page = client.get("/v1/people?limit=1&offset=1").json()  # pages, by name
    assert page["total"] == len(listed) >= 2 and page["people"] == listed[1:2]
    error(client.get("/v1/people?limit=0"), 422, "invalid_request")
    assert {(p["name"], p["samples"]) for p in listed} >= {("madonna", 1), ("mindy_kaling", 1)}
    error(client.post("/v1/people", json={"name": "madonna"}), 409, "person_exists")
    pid = client.post("/v1/people", json={"name": "ben"}).json()["id"]
    raw = photo(data_dir, "train", "ben_afflek").read_bytes()
    sid = client.post(f"/v1/people/{pid}/faces", files={"image": raw}).json()["id"]
    assert "ben" in error(client.post(f"/v1/people/{pid}/faces", files={"image": raw}), 409, "duplicate_photo")
    detail = client.get(f"/v1/people/{pid}").json()
    assert detail["name"] == "ben" and [f["id"] for f in detail["faces"]] == [sid]
    kept = client.get(detail["faces"][0]["image_url"])
    # the photo as kept: its metadata segments dropped (no EXIF GPS or comments), the scan untouched
    assert kept.status_code == 200 and kept.content == strip_metadata(raw)[0] and len(kept.content) <= len(raw)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(kept.content))), np.asarray(Image.open(io.BytesIO(raw))))
    # rename: identify follows, the id stays
    assert client.patch(f"/v1/people/{pid}", json={"name": "ben_affleck"}).json() == {"id": pid, "name": "ben_affleck", "samples": 1}
    out = client.post("/v1/identify", files={"image": photo(data_dir, "val", "ben_afflek").read_bytes()}).json()
    assert out["face_list"][0]["name"] == "ben_affleck"
    error(client.patch(f"/v1/people/{pid}", json={"name": "madonna"}), 409, "gallery_conflict")
    # delete the sample, then the person
    assert client.delete(f"/v1/people/{pid}/faces/{sid}").json() == {"id": sid, "deleted": True, "samples_removed": 1}
    error(client.delete(f"/v1/people/{pid}/faces/{sid}"), 404, "sample_not_found")
    error(client.get(detail["faces"][0]["image_url"]), 404, "photo_not_found")
    assert client.get(f"/v1/people/{pid}").json()["faces"] == []
    assert client.delete(f"/v1/people/{pid}").json()["id"] == pid
    error(client.get(f"/v1/people/{pid}"), 404, "person_not_found")
    error(client.delete(f"/v1/people/{pid}"), 404, "person_not_found")
    error(client.post(f"/v1/people/{pid}/faces", files={"image": raw}), 404, "person_not_found")
    error(client.get("/v1/people/99999999999999999999"), 422, "invalid_request")
    error(client.post("/v1/people", json={"name": ""}), 422, "invalid_request")
    error(client.post("/v1/people", json={"name": " padded "}), 422, "invalid_name")
    error(client.post("/v1/people", json={"nom": "x"}), 422, "invalid_request")


def test_enrol_needs_a_face(client: httpx.Client, people: dict[str, int], data_dir: Path) -> None:
    pid = people["mindy_kaling"]
    error(client.post(f"/v1/people/{pid}/faces", files={"image": (data_dir / "misc" / "landscape_pilatus.jpg").read_bytes()}),
          422, "no_face")
    assert client.get(f"/v1/people/{pid}").json()["samples"] == 1


# -- bad inputs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["/v1/detect", "/v1/identify", "/v1/embed"])
def test_bad_images(client: httpx.Client, data_dir: Path, route: str) -> None:
    invalid = data_dir / "misc" / "invalid"
    cases = {
        "not an image": b"hello, I am text, not a photo",
        "empty": b"",
        "empty.png": (invalid / "empty.png").read_bytes(),
        "corrupted": (invalid / "corrupted.png").read_bytes(),
        "truncated": (invalid / "truncated.jpg").read_bytes(),
        "half a photo": photo(data_dir, "train", "madonna").read_bytes()[:800],
    }
    for what, raw in cases.items():
        msg = error(client.post(route, files={"image": ("x.jpg", raw, "image/jpeg")}), 400, "invalid_image")
        assert "image" in msg, what
    assert "truncated" in error(client.post(route, files={"image": cases["truncated"]}), 400, "invalid_image")
    error(client.post(route, json={"image_base64": "%%% not base64"}), 400, "invalid_base64")
    error(client.post(route, json={"image_base64": 12}), 400, "invalid_base64")
    error(client.post(route, json={"image": "x"}), 400, "missing_image")
    error(client.post(route, files={"photo": b"x"}), 400, "missing_image")
    error(client.post(route, data={"image": "text, not a file"}, files={"other": b""}), 400, "invalid_image")
    error(client.post(route, data={"image": "form-encoded"}), 415, "unsupported_media_type")
    error(client.post(route, content=b"{not json", headers={"content-type": "application/json"}), 400, "invalid_json")
    error(client.post(route, json=[1, 2]), 400, "invalid_json")
    error(client.post(route, content=b"raw bytes", headers={"content-type": "image/jpeg"}), 415, "unsupported_media_type")


def test_huge_inputs(client: httpx.Client, data_dir: Path) -> None:
    big_body = os.urandom(MAX_UPLOAD + 1000)
    error(client.post("/v1/detect", files={"image": big_body}), 413, "payload_too_large")

    def chunked():  # no Content-Length: the limit must hold while streaming
        for _ in range(4):
            yield os.urandom(MAX_UPLOAD // 2)

    error(client.post("/v1/detect", content=chunked(), headers={"content-type": "application/json"}), 413,
          "payload_too_large")
    # 6988x4664 = 32.6 MP in a 1.6 MB file: refused from its header (limit 20 MP here)
    msg = error(client.post("/v1/detect", files={"image": (data_dir / "misc" / "compreface_003_A_6988x4664.jpg").read_bytes()}),
                413, "image_too_large")
    assert "6988x4664" in msg
    # a decompression bomb: 10000x10000 claimed by a tiny PNG
    buf = io.BytesIO()
    Image.new("L", (10000, 10000)).save(buf, "PNG")
    assert len(buf.getvalue()) < 200_000
    error(client.post("/v1/detect", files={"image": buf.getvalue()}), 413, "image_too_large")
    assert client.get("/healthz").status_code == 200  # and the server is fine


# -- auth, CORS, metrics --------------------------------------------------------------------------------
def test_api_keys(server: str, data_dir: Path) -> None:
    raw = photo(data_dir, "train", "madonna").read_bytes()
    with httpx.Client(base_url=server, timeout=60) as c:
        error(c.get("/v1/people"), 401, "unauthorized")
        error(c.post("/v1/detect", files={"image": raw}), 401, "unauthorized")
        error(c.get("/v1/people", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert c.get("/v1/people", headers={"X-API-Key": READ}).status_code == 200
        assert c.get("/v1/people", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
        assert c.post("/v1/detect", files={"image": raw}, headers={"X-API-Key": READ}).status_code == 200
        error(c.post("/v1/people", json={"name": "x"}, headers={"X-API-Key": READ}), 403, "forbidden")
        error(c.post("/v1/people", json={"name": "x"}), 401, "unauthorized")
        error(c.delete("/v1/people/1", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200


def test_exposure_warning() -> None:
    assert exposure_warning(Settings(host="127.0.0.1")) is None
    assert exposure_warning(Settings(host="localhost")) is None
    assert exposure_warning(Settings(host="::1")) is None
    assert "without API keys" in exposure_warning(Settings(host="0.0.0.0"))
    assert exposure_warning(Settings(host="0.0.0.0", api_key="k")) is None
    # an admin key alone protects changes, not reads: names, faces and kept photos stay open
    assert "only an admin key" in exposure_warning(Settings(host="0.0.0.0", admin_key="k"))
    assert exposure_warning(Settings(host="127.0.0.1", admin_key="k")) is None
    s = Settings.from_env({"FACEPRINT_PORT": "9000", "FACEPRINT_GALLERY": "/tmp/x.db", "FACEPRINT_CORS_ORIGINS": "a, b"}, port=9001)
    assert (s.port, str(s.db), s.cors_origins, s.photos_dir.name) == (9001, "/tmp/x.db", ("a", "b"), "x.db.photos")
    with pytest.raises(ValueError, match="FACEPRINT_PORT"):
        Settings.from_env({"FACEPRINT_PORT": "eighty"})


def test_cors(server: str) -> None:
    pre = httpx.options(f"{server}/v1/detect", headers={"Origin": "http://example.test", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://example.test"
    other = httpx.options(f"{server}/v1/detect", headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in other.headers


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert found, name
    return float(found.group(1))


def test_concurrent_requests_batched_and_bounded(client: httpx.Client, people: dict[str, int], data_dir: Path) -> None:
    """24 requests at once (identify, detect, verify): all answered, batched together, memory bounded."""
    files = [photo(data_dir, "val", p, i) for p in ("madonna", "elton_john", "mindy_kaling") for i in range(2, 4)]
    before = client.get("/metrics").text

    def call(i: int) -> int:
        raw = files[i % len(files)].read_bytes()
        if i % 3 == 0:
            return client.post("/v1/detect", files={"image": raw}).status_code
        if i % 3 == 1:
            return client.post("/v1/verify", files={"image": raw, "image2": raw}).status_code
        return client.post("/v1/identify", files={"image": raw}).status_code

    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(call, range(24)))
    assert codes == [200] * 24
    after = client.get("/metrics").text
    images = metric(after, "faceprint_batch_images_sum") - metric(before, "faceprint_batch_images_sum")
    batches = metric(after, "faceprint_batch_images_count") - metric(before, "faceprint_batch_images_count")
    assert images == 32 and batches < images  # several images per network call
    rss_growth = metric(after, "process_resident_memory_bytes") - metric(before, "process_resident_memory_bytes")
    assert rss_growth < 400e6
    assert 'faceprint_http_requests_total{method="POST",route="/v1/identify",status="200"}' in after
    assert metric(after, "faceprint_batch_queue") == 0 and metric(after, "faceprint_images_in_flight") == 0


def test_deeply_nested_json_is_a_client_error(client: httpx.Client) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for path, field in (("/v1/detect", "image_base64"), ("/v1/people", "name")):
        r = client.post(path, content=f'{{"{field}": {deep}}}', headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] in ("invalid_json", "bad_request"), r.text
