"""Gallery benchmarks (issue 4): correctness on real faces, index choice, and scale to 1M faces.

    nice python benchmarks/bench_gallery.py correctness   # Must-show 1: 5-celebrity + LFW open set
    nice python benchmarks/bench_gallery.py choose        # backends at 100k: faiss IVF/HNSW, usearch, hnswlib
    nice python benchmarks/bench_gallery.py scale         # 10k / 100k / 1M: latency, recall@1, build, memory
    nice python benchmarks/bench_gallery.py e2e           # the whole Gallery at 1M faces: SQLite + IVF, PostgreSQL + HNSW

Data: real LFW descriptors (faceprint.evaluate.lfw.embed_images, cached on disk), grown to 100k/1M
with synthetic faces drawn from a Gaussian fitted to them ("lfw"), and random unit vectors ("unit").
Queries are genuine probes: held-out LFW images of enrolled people ("lfw"), or stored vectors plus
noise at a genuine-pair distance ("unit"); recall@1 = the index's nearest id equals the exact one's.
Latency: one query at a time (a camera frame), 2 threads. Results: benchmarks/results/gallery-*.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, save, table  # noqa: E402

THREADS = 2
N_QUERIES = 500


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def lfw_vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All LFW descriptors (cached after the first run), person of each, role of each."""
    from faceprint.evaluate.identification import lfw_identification_split
    from faceprint.evaluate.lfw import embed_images
    from faceprint.pipeline import FacePipeline

    pipe = FacePipeline(model="dlib-resnet-v1", threads=THREADS)  # 128-d: the recipe of the recorded runs
    fallback = FacePipeline(detector="mmod-up1")
    fallback.embedder = pipe.embedder
    paths, names, roles = lfw_identification_split(data_root() / "lfw" / "lfw-deepfunneled")
    vectors, _ = embed_images(pipe, paths, fallback=fallback, progress=True)
    return vectors, np.array(names), np.array(roles)


def dataset(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(database (n, 128) float32, queries (N_QUERIES, 128) float32)."""
    rng = np.random.default_rng(seed)
    if kind == "unit":
        x = rng.standard_normal((n, 128)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        pick = rng.choice(n, N_QUERIES, replace=False)
        noise = rng.standard_normal((N_QUERIES, 128)).astype(np.float32)
        q = x[pick] + 0.4 * noise / np.linalg.norm(noise, axis=1, keepdims=True)  # a genuine pair at 0.4
        return x, q.astype(np.float32)
    vectors, _, roles = lfw_vectors()
    probes = vectors[roles == "probe"]
    base = vectors[roles != "probe"]
    q = probes[rng.choice(len(probes), N_QUERIES, replace=False)]
    if n <= len(base):
        return base[:n].copy(), q
    mu, cov = base.mean(0), np.cov(base, rowvar=False)
    fake = rng.multivariate_normal(mu, cov, size=n - len(base), method="cholesky").astype(np.float32)
    return np.concatenate([base, fake]), q


def latency(search, queries: np.ndarray) -> tuple[float, float, np.ndarray]:  # noqa: ANN001
    """p50, p99 in ms of one-query searches, and the top ids (Q,)."""
    times, top = [], []
    for q in queries:
        t = time.perf_counter()
        top.append(search(q[None]))
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), np.array(top)


def bench_scale(args: argparse.Namespace) -> dict:
    import faiss

    from faceprint.gallery.index import ExactIndex, IVFIndex

    faiss.omp_set_num_threads(THREADS)
    rows, out = [], []
    for kind in args.kinds:
        for n in args.sizes:
            x, q = dataset(kind, n)
            ids = np.arange(n, dtype=np.int64)
            exact = ExactIndex(128)
            exact.add(x, ids)
            truth = exact.search(q, 1)[1][:, 0]
            e50, e99, _ = latency(lambda v: exact.search(v, 1)[1][0, 0], q[:100])
            del exact
            gc.collect()
            r0 = rss_mb()
            t = time.perf_counter()
            idx = IVFIndex(128, nlist=IVFIndex.auto_nlist(n), threads=THREADS)
            idx.add(x, ids)
            build = time.perf_counter() - t
            gc.collect()
            rss = rss_mb() - r0
            for nprobe in args.nprobes:
                idx._index.nprobe = min(nprobe, idx.nlist)
                p50, p99, top = latency(lambda v: idx.search(v, 1)[1][0, 0], q)
                rec = float((top == truth).mean())
                rec_row = {
                    "data": kind, "faces": n, "index": f"ivf{idx.nlist},fp16", "nprobe": idx._index.nprobe,
                    "p50_ms": p50, "p99_ms": p99, "recall@1": rec, "build_s": build,
                    "bytes_per_face": idx.memory_bytes() / n, "index_mb": idx.memory_bytes() / 1e6,
                    "rss_delta_mb": rss, "exact_p50_ms": e50, "exact_p99_ms": e99,
                }
                out.append(rec_row)
                rows.append([kind, n, rec_row["index"], rec_row["nprobe"], p50, p99, rec, build,
                             rec_row["bytes_per_face"], rec_row["index_mb"], e50, e99])
                print(table(["data", "faces", "index", "nprobe", "p50 ms", "p99 ms", "recall@1", "build s",
                             "B/face", "index MB", "exact p50", "exact p99"], rows[-1:]), flush=True)
            del idx, x
            gc.collect()
    print(table(["data", "faces", "index", "nprobe", "p50 ms", "p99 ms", "recall@1", "build s", "B/face",
                 "index MB", "exact p50", "exact p99"], rows))
    return {"rows": out, "threads": THREADS, "queries": N_QUERIES}


def bench_choose(args: argparse.Namespace) -> dict:
    """The same 100k faces and probes through every library that installs here."""
    n = args.choose_n
    x, q = dataset("lfw", n)
    ids = np.arange(n, dtype=np.int64)
    from faceprint.gallery.index import ExactIndex

    exact = ExactIndex(128)
    exact.add(x, ids)
    truth = exact.search(q, 1)[1][:, 0]
    builders = {}
    import faiss

    faiss.omp_set_num_threads(THREADS)

    def faiss_ivf() -> object:
        from faceprint.gallery.index import IVFIndex

        idx = IVFIndex(128, nlist=IVFIndex.auto_nlist(n), threads=THREADS)
        idx.add(x, ids)
        return lambda v: idx.search(v, 1)[1][0, 0]

    def faiss_hnsw() -> object:
        idx = faiss.IndexHNSWFlat(128, 16)
        idx.hnsw.efConstruction = 128
        idx.add(x)
        idx.hnsw.efSearch = 64
        return lambda v: idx.search(v, 1)[1][0, 0]

    builders["faiss IVF fp16"] = faiss_ivf
    builders["faiss HNSW16 (no removal)"] = faiss_hnsw
    try:
        from usearch.index import Index

        def usearch_f16() -> object:
            idx = Index(ndim=128, metric="l2sq", dtype="f16", connectivity=16, expansion_add=128, expansion_search=64)
            idx.add(ids, x, threads=THREADS)
            return lambda v: int(idx.search(v, 1).keys[0])

        builders["usearch HNSW16 f16"] = usearch_f16
    except ImportError:
        pass
    try:
        import hnswlib

        def hnsw_lib() -> object:
            idx = hnswlib.Index(space="l2", dim=128)
            idx.init_index(max_elements=n, M=16, ef_construction=128)
            idx.set_num_threads(THREADS)
            idx.add_items(x, ids)
            idx.set_ef(64)
            return lambda v: int(idx.knn_query(v, 1)[0][0, 0])

        builders["hnswlib M16"] = hnsw_lib
    except ImportError:
        pass
    rows, out = [], []
    for name, build in builders.items():
        gc.collect()
        r0 = rss_mb()
        t = time.perf_counter()
        search = build()
        bt = time.perf_counter() - t
        mem = rss_mb() - r0
        p50, p99, top = latency(search, q)
        rec = float((top == truth).mean())
        out.append({"backend": name, "faces": n, "build_s": bt, "rss_delta_mb": mem, "p50_ms": p50, "p99_ms": p99,
                    "recall@1": rec})
        rows.append([name, n, bt, mem, p50, p99, rec])
        print(table(["backend", "faces", "build s", "RSS MB", "p50 ms", "p99 ms", "recall@1"], rows[-1:]), flush=True)
        del search
    print(table(["backend", "faces", "build s", "RSS MB", "p50 ms", "p99 ms", "recall@1"], rows))
    return {"rows": out}


E2E_CHILD = r"""
import sys, time, json, os, numpy as np
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6
import faceprint
from faceprint import Gallery
base = rss()
q = np.load(sys.argv[2])
t = time.perf_counter()
g = Gallery(sys.argv[1], threads=int(sys.argv[3]))
g.identify_vectors(q[:1])
opened = time.perf_counter() - t
times, top = [], []
for v in q:
    t = time.perf_counter(); m = g.identify_vectors(v[None], threshold=1e9); times.append(time.perf_counter() - t)
    top.append(m[0][0].identity)
ms = np.array(times) * 1e3
print(json.dumps({"open_and_sync_s": opened, "p50_ms": float(np.percentile(ms, 50)),
    "p99_ms": float(np.percentile(ms, 99)), "rss_mb_over_import": rss() - base, "top": top,
    "index": g.info()["index"]}))
"""


def exact_top_names(x: np.ndarray, q: np.ndarray, names: list[str]) -> list[str]:
    """The owner of each query's exact nearest face (Euclidean), by blocked brute force."""
    best = np.full(len(q), np.inf)
    arg = np.zeros(len(q), np.int64)
    qq = (q.astype(np.float64) ** 2).sum(1)
    for a in range(0, len(x), 100_000):
        blk = x[a : a + 100_000].astype(np.float64)
        d = qq[:, None] - 2 * q.astype(np.float64) @ blk.T + (blk**2).sum(1)[None]
        i = d.argmin(1)
        better = d[np.arange(len(q)), i] < best
        best[better], arg[better] = d[np.arange(len(q)), i][better], a + i[better]
    return [names[i] for i in arg]


def bench_e2e(args: argparse.Namespace) -> dict:
    """1M faces (200k people x 5) in a real gallery on each backend, side by side: build (insert and
    index), first open, search latency one query at a time, identity recall@1 against exact search,
    client and server memory. SQLite: the file and its saved faiss IVF index. PostgreSQL: pgvector's
    HNSW in the server, at each ``--ef-search``."""
    from common import postgres_database, tree_rss_mb

    from faceprint import Gallery

    n = args.e2e_n
    x, q = dataset("lfw", n)
    names = [f"person{i // 5:06d}" for i in range(n)]
    truth = exact_top_names(x, q, names)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gallery-bench-"))
    np.save(workdir / "q.npy", q)

    def child(db: str, label: str, env: dict[str, str] | None = None, threads: int = THREADS) -> dict:
        res = subprocess.run([sys.executable, "-c", E2E_CHILD, db, str(workdir / "q.npy"), str(threads)], capture_output=True,
                             text=True, check=True, env={**os.environ, **(env or {})})  # fmt: skip
        r = json.loads(res.stdout.strip().splitlines()[-1])
        r["recall@1"] = float(np.mean([a == b for a, b in zip(r.pop("top"), truth)]))
        r["run"] = label
        print(json.dumps(r), flush=True)
        return r

    def fill(db: str | Path) -> float:
        t = time.perf_counter()
        with Gallery(db, model="dlib-resnet-v1") as g, g.store.bulk():  # PostgreSQL: HNSW built at the end
            for a in range(0, n, 50_000):  # one transaction per 50k faces
                g.add_embeddings(names[a : a + 50_000], x[a : a + 50_000])
        return time.perf_counter() - t

    out: dict = {"faces": n, "people": n // 5, "queries": len(q), "backends": {}}
    rows = []
    if "sqlite" in args.backends:
        db = workdir / "big.db"
        for p in (db, workdir / "big.db.index"):
            p.unlink(missing_ok=True)
        build = fill(db)
        runs = [child(str(db), "first open (rebuild from SQLite, save index)")]
        runs += [child(str(db), f"reopen (saved index), {t} thread(s)", threads=t) for t in args.search_threads]
        out["backends"]["sqlite"] = {"build_s": build, "insert_faces_per_s": n / build, "db_mb": db.stat().st_size / 1e6,
                                     "index_file_mb": (workdir / "big.db.index").stat().st_size / 1e6, "runs": runs}  # fmt: skip
        rows += [["SQLite + faiss IVF", r["run"], build, r["open_and_sync_s"], r["p50_ms"], r["p99_ms"], r["recall@1"],
                  r["rss_mb_over_import"], "-"] for r in runs]  # fmt: skip
    if "pg" in args.backends:
        for spec in args.hnsw:
            m, efc = (int(v) for v in spec.split(","))
            os.environ.update({"FACEPRINT_PG_HNSW_M": str(m), "FACEPRINT_PG_EF_CONSTRUCTION": str(efc)})
            pg_conf = dict(kv.split("=", 1) for kv in args.pg_setting)
            with postgres_database(f"fp_bench_{os.getpid()}", pg_conf) as (url, pids):
                build = fill(url)
                server_mb = tree_rss_mb(pids[0]) if pids else float("nan")
                runs = []
                for ef in args.ef_search:
                    r = child(url, f"m {m}, ef_construction {efc}, ef_search {ef}", {"FACEPRINT_PG_EF_SEARCH": str(ef)})
                    r["server_rss_mb"] = tree_rss_mb(pids[0]) if pids else float("nan")
                    runs.append(r)
                import psycopg

                with psycopg.connect(url) as conn:
                    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6
                    index = conn.execute("SELECT pg_relation_size('embeddings_hnsw')").fetchone()[0] / 1e6
            out["backends"][f"pg m{m} efc{efc}"] = {
                "build_s": build, "insert_faces_per_s": n / build, "db_mb": size, "hnsw_mb": index,
                "server_rss_mb_after_build": server_mb, "server_settings": pg_conf, "runs": runs,
            }
            rows += [["PostgreSQL + pgvector HNSW", r["run"], build, r["open_and_sync_s"], r["p50_ms"], r["p99_ms"],
                      r["recall@1"], r["rss_mb_over_import"], r["server_rss_mb"]] for r in runs]  # fmt: skip
    print(table(["backend", "run", "build s", "open s", "p50 ms", "p99 ms", "recall@1", "client RSS MB", "server RSS MB"], rows))
    return out


def bench_correctness(args: argparse.Namespace) -> dict:
    """Must-show 1: 5-celebrity train enrolled / val identified; LFW open set through a gallery."""
    from faceprint import Gallery
    from faceprint.evaluate.identification import identification_metrics
    from faceprint.pipeline import FacePipeline, iter_known_dir

    pipe = FacePipeline(threads=THREADS)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        celeb = data_root() / "5-celebrity-faces"
        with Gallery(Path(tmp) / "celeb.db", pipeline=pipe) as g:
            t = time.perf_counter()
            rep = g.enrol_folder(celeb / "train")
            dt = time.perf_counter() - t
            right = total = 0
            wrong = []
            for person, path in iter_known_dir(celeb / "val"):
                faces = g.identify(path)
                total += 1
                got = faces[0][1][0].identity if faces else None
                right += got == person
                if got != person:
                    wrong.append((str(path), got))
        out["celebrity"] = {"enrolled": len(rep.enrolled), "failed": len(rep.failed), "correct": right,
                            "total": total, "wrong": wrong, "enrol_photos_per_s": len(rep.results) / dt}
        print(f"5-celebrity: enrolled {len(rep.enrolled)} train photos ({len(rep.failed)} unusable) at "
              f"{len(rep.results) / dt:.1f} photos/s; val identified {right}/{total}", flush=True)

        vectors, names, roles = lfw_vectors()  # the probes' descriptors, same pipeline settings (cached)
        root = data_root() / "lfw" / "lfw-deepfunneled"
        from faceprint.evaluate.identification import lfw_identification_split

        paths, _, _ = lfw_identification_split(root)
        gal = roles == "gallery"
        with Gallery(Path(tmp) / "lfw.db", pipeline=pipe) as g:
            t = time.perf_counter()
            rep = g.enrol([(n, p) for n, p, r in zip(names, paths, roles) if r == "gallery"])
            dt = time.perf_counter() - t
            thr = g.threshold
            prb, stg = roles == "probe", roles == "stranger"
            m_probe = g.identify_vectors(vectors[prb], top_k=1, threshold=np.inf)  # closed-set rank-1
            m_strange = g.identify_vectors(vectors[stg], top_k=1)
            ok = np.array([m[0].identity == who for m, who in zip(m_probe, names[prb])])
            near = np.array([m[0].distance for m in m_probe])
            far = float(np.mean([m[0].identity is not None for m in m_strange]))
        ref = identification_metrics(vectors[gal], names[gal], vectors[prb], names[prb], vectors[stg], threshold=thr)
        lfw = {
            "gallery_people": int(gal.sum()), "enrolled": len(rep.enrolled), "failed": len(rep.failed),
            "probes": int(prb.sum()), "strangers": int(stg.sum()), "threshold": thr,
            "rank1": float(ok.mean()), "rank1_at_threshold": float((ok & (near <= thr)).mean()),
            "false_accept_rate": far, "enrol_photos_per_s": len(rep.results) / dt,
            "reference_rank1": ref["rank1"], "reference_far": ref["at_threshold"]["false_accept_rate"],
            "dir_at_far": ref["dir_at_far"],
        }
        out["lfw_open_set"] = lfw
        print(f"LFW open set via gallery: {lfw['gallery_people']} people enrolled ({lfw['failed']} unusable) at "
              f"{lfw['enrol_photos_per_s']:.1f} photos/s; rank-1 {100 * lfw['rank1']:.2f}% on {lfw['probes']} probes, "
              f"at threshold {thr}: rank-1 {100 * lfw['rank1_at_threshold']:.2f}%, false accepts "
              f"{100 * far:.2f}% of {lfw['strangers']} strangers "
              f"(in-memory reference: rank-1 {100 * ref['rank1']:.2f}%, FAR {100 * lfw['reference_far']:.2f}%)")
        for k, v in ref["dir_at_far"].items():
            print(f"  threshold for FAR={k}: {v['threshold']:.3f} -> DIR {100 * v['dir']:.2f}%")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=["correctness", "choose", "scale", "e2e"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--kinds", nargs="+", default=["lfw", "unit"])
    ap.add_argument("--nprobes", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--choose-n", type=int, default=100_000)
    ap.add_argument("--e2e-n", type=int, default=1_000_000)
    ap.add_argument("--tag", default="", help="Suffix of the result file name (runs with other settings).")
    ap.add_argument("--workdir", help="Where the e2e gallery file goes (default: a temporary folder).")
    ap.add_argument("--backends", nargs="+", default=["sqlite", "pg"], help="e2e: sqlite, pg (PostgreSQL + pgvector)")
    ap.add_argument("--ef-search", type=int, nargs="+", default=[100, 200, 400], help="e2e: pgvector HNSW ef_search values")
    ap.add_argument("--hnsw", nargs="+", default=["32,128"], help="e2e: pgvector HNSW builds to measure, m,ef_construction each")
    ap.add_argument("--pg-setting", nargs="*", default=["shared_buffers=4GB"],
                    help="e2e: KEY=VALUE server settings of the PostgreSQL started for the run (as sized for the data)")
    ap.add_argument("--search-threads", type=int, nargs="+", default=[1, 2], help="e2e: faiss threads of the SQLite gallery")
    args = ap.parse_args()
    result = {"correctness": bench_correctness, "choose": bench_choose, "scale": bench_scale, "e2e": bench_e2e}[
        args.section
    ](args)
    print("saved", save(f"gallery-{args.section}{'-' + args.tag if args.tag else ''}", result))


if __name__ == "__main__":
    main()
