from __future__ import annotations

import json

from photorad.provenance import hash_files, sha256_file, write_run_info


def test_hash_files_order_independent_and_change_sensitive(tmp_path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("two")
    h1 = hash_files([a, b], root=tmp_path)
    assert h1 == hash_files([b, a], root=tmp_path)
    b.write_text("two!")
    assert hash_files([a, b], root=tmp_path) != h1
    assert sha256_file(a) == "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"


def test_write_run_info(tmp_path) -> None:
    path = write_run_info(tmp_path, {"lr": 1e-3, "path": tmp_path}, data_hashes={"x": "abc"})
    info = json.loads(path.read_text())
    assert info["config"]["lr"] == 1e-3 and info["data_hashes"] == {"x": "abc"}
    assert info["packages"]["numpy"]
    assert (tmp_path / "config.resolved.yaml").exists()
