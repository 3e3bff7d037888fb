from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from photorad.data.bus_bra import author_folds, grouped_folds, load_records, train_val_test_split


def test_sample_records(sample_root) -> None:
    recs = load_records(sample_root)
    assert len(recs) == 20
    assert Counter(r.label for r in recs) == {0: 10, 1: 10}
    assert len({r.group for r in recs}) == 20
    assert all(r.path.is_file() for r in recs)
    assert (sample_root / "LICENSE.txt").is_file()


@pytest.mark.full_data
def test_full_dataset_composition(bus_bra_root) -> None:
    recs = load_records(bus_bra_root)
    assert len(recs) == 1875
    assert Counter(r.label for r in recs) == {0: 1268, 1: 607}
    assert len({r.group for r in recs}) == 1064


@pytest.mark.full_data
def test_wrong_heights_are_the_documented_four(bus_bra_root) -> None:
    import csv

    rows = {r["ID"]: r for r in csv.DictReader((bus_bra_root / "bus_data.csv").open())}
    wrong = []
    for rid, row in rows.items():
        with Image.open(bus_bra_root / "Images" / f"{rid}.png") as im:
            if im.size != (int(row["Width"]), int(row["Height"])):
                wrong.append(rid)
    assert sorted(wrong) == ["bus_0856-l", "bus_0857-r", "bus_0912-l", "bus_0990-l"]


@pytest.mark.full_data
def test_grouped_splits_never_leak_patients(bus_bra_root) -> None:
    recs = load_records(bus_bra_root)
    groups = np.array([r.group for r in recs])
    labels = np.array([r.label for r in recs])
    for tr, te in grouped_folds(recs, n_splits=5, seed=1):
        assert not set(groups[tr]) & set(groups[te])
        assert abs(labels[te].mean() - labels.mean()) < 0.05
    tr, va, te = train_val_test_split(recs, seed=0)
    assert len(tr) + len(va) + len(te) == len(recs)
    assert not (set(groups[tr]) & set(groups[te])) and not (set(groups[va]) & set(groups[te]))
    folds = author_folds(bus_bra_root, k=5)
    by_patient: dict[str, set[int]] = {}
    for r in recs:
        by_patient.setdefault(r.group, set()).add(folds[r.id])
    assert all(len(v) == 1 for v in by_patient.values()), "authors' folds are patient-grouped"
