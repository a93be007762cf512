"""``rharm data fetch lalonde`` against a local HTTP server: conversion, truncation, checksum."""

import hashlib
import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from rharm_lib.cli import main
from rharm_lib.data.fetch import convert_lalonde, download, fetch_lalonde, lalonde_split
from rharm_lib.data.photos import load_photos
from rharm_lib.errors import RharmInputError

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "lalonde"

REAL = ["image_100005", "image_100042", "image_100049", "image_100012"]
FAKE = ["image_000003"]

XML = (
    "<image>\n<filename>{id}.jpg</filename>\n<size><width>256</width><height>256</height></size>\n"
    "<generated>{gen}</generated>\n</image>\n<file><filename>{id}.xml</filename></file>\n"
    "<object>\n<objectId>1</objectId>\n<name>{name}</name>\n<masks>\n"
    "<filename>masks/{id}.mat</filename>\n</masks>\n</object>\n"
)


def _archive() -> bytes:
    rng = np.random.default_rng(0)
    base = "Image-Harmonization-Dataset-iHarmony4-HEAD/Lalonde and Efros/onlineDb/"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, pid in enumerate(REAL + FAKE):
            gen = 1 if pid in FAKE else 0
            zf.writestr(base + f"Annotation/{pid}.xml", XML.format(id=pid, gen=gen, name=f"obj{i}"))
            img = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
            b = io.BytesIO()
            Image.fromarray(img).save(b, format="JPEG", quality=90)
            zf.writestr(base + f"Images/{pid}.jpg", b.getvalue())
            m = np.zeros((256, 256), np.uint8)
            m[20 + 10 * i : 120, 30 : 140 + 10 * i] = 1
            mb = io.BytesIO()
            savemat(mb, {"objMask": m})
            zf.writestr(base + f"Annotation/masks/{pid}.mat", mb.getvalue())
        zf.writestr(base + "Annotation/masks/", b"")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server():
    payload = _archive()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/ok.zip":
                body, length = payload, len(payload)
            elif self.path == "/truncated.zip":
                body, length = payload[: len(payload) // 2], len(payload)
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, hashlib.sha256(payload).hexdigest()
    httpd.shutdown()
    httpd.server_close()


def test_fetch_and_convert(tmp_path, server):
    base, digest = server
    out = fetch_lalonde(tmp_path / "lalonde", url=f"{base}/ok.zip", sha256=digest)
    assert sorted(p.stem for p in (out / "images").glob("*.jpg")) == sorted(REAL)
    ids = {s: (out / f"{s}.txt").read_text().split() for s in ("train", "test")}
    assert sorted(ids["train"] + ids["test"]) == sorted(REAL)
    assert all(lalonde_split(i) == s for s in ids for i in ids[s])
    index = (out / "index.csv").read_text().splitlines()
    assert index[0] == "id,object_name,mask_area,split" and len(index) == 1 + len(REAL)
    ps = load_photos(out, "train")
    assert ps.images.shape[1:] == (3, 256, 256) and ps.masks.max() == 1
    assert os.listdir(tmp_path) == ["lalonde"]  # the archive and temporaries are gone


def test_truncated_download_keeps_nothing(tmp_path, server):
    base, _ = server
    with pytest.raises(RharmInputError, match="truncated|failed after"):
        fetch_lalonde(tmp_path / "lalonde", url=f"{base}/truncated.zip")
    assert os.listdir(tmp_path) == []


def test_checksum_mismatch_keeps_nothing(tmp_path, server):
    base, _ = server
    with pytest.raises(RharmInputError, match="checksum mismatch"):
        fetch_lalonde(tmp_path / "lalonde", url=f"{base}/ok.zip", sha256="0" * 64)
    assert os.listdir(tmp_path) == []


def test_http_error_and_bad_archive(tmp_path, server):
    base, _ = server
    with pytest.raises(RharmInputError, match="failed"):
        download(f"{base}/missing.zip", tmp_path / "x.zip")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK not really")
    with pytest.raises(RharmInputError, match="not a ZIP"):
        convert_lalonde(junk, tmp_path / "out")
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("README", "nothing here")
    with pytest.raises(RharmInputError, match="onlineDb"):
        convert_lalonde(empty, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["empty.zip", "junk.zip"]


def test_expected_count(tmp_path, server):
    base, digest = server
    with pytest.raises(RharmInputError, match="expected 99 real"):
        fetch_lalonde(tmp_path / "l", url=f"{base}/ok.zip", expect_count=99)
    assert os.listdir(tmp_path) == []


def test_cli_fetch(tmp_path, server, capsys):
    base, digest = server
    argv = ["data", "fetch", "lalonde", "--url", f"{base}/ok.zip", "--sha256", digest]
    assert main([*argv, "--out", str(tmp_path / "l"), "--quiet"]) == 0
    assert "train +" in capsys.readouterr().out
    bad = ["data", "fetch", "lalonde", "--url", f"{base}/truncated.zip"]
    assert main([*bad, "--out", str(tmp_path / "m"), "--quiet"]) == 2


@pytest.mark.skipif(not (SHARED / "test.txt").is_file(), reason="shared lalonde data absent")
def test_split_rule_reproduces_shared_split():
    for split in ("train", "test"):
        ids = (SHARED / f"{split}.txt").read_text().split()
        assert all(lalonde_split(i) == split for i in ids)
