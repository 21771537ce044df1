"""Rebuild the CSVs in this folder from the scikit-learn data files: python datasets/convert.py SOURCE_DIR.

Values are copied as text, unchanged; only headers are added and class numbers replaced by names.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

WINE = (
    "alcohol malic_acid ash alcalinity_of_ash magnesium total_phenols flavanoids nonflavanoid_phenols "
    "proanthocyanins color_intensity hue od280_od315 proline"
).split()
_CANCER = (
    "radius texture perimeter area smoothness compactness concavity concave_points symmetry fractal_dimension"
).split()
BREAST_CANCER = [f"mean_{n}" for n in _CANCER] + [f"{n}_error" for n in _CANCER] + [f"worst_{n}" for n in _CANCER]
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DIABETES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def labelled(source: Path, features: list[str], target: str) -> list[list[str]]:
    """sklearn layout (first line 'N,F,name0,name1,...', class index last) -> rows with a header and names."""
    first, *rows = list(csv.reader(source.read_text().splitlines()))
    n, f, names = int(first[0]), int(first[1]), first[2:]
    assert len(rows) == n and f == len(features), source
    return [features + [target]] + [row[:f] + [names[int(row[f])]] for row in rows]


def write(rows: list[list[str]], name: str) -> None:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    if name.endswith(".gz"):
        # mtime=0 so that rebuilding gives a byte-identical file.
        with open(HERE / name, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(text.getvalue().encode())
    else:
        (HERE / name).write_text(text.getvalue())


def main(src: Path) -> None:
    write(labelled(src / "iris.csv", IRIS, "species"), "iris.csv")
    write(labelled(src / "wine_data.csv", WINE, "class"), "wine.csv")
    write(labelled(src / "breast_cancer.csv", BREAST_CANCER, "diagnosis"), "breast_cancer.csv")

    digits = list(csv.reader(gzip.open(src / "digits.csv.gz", "rt").read().splitlines()))
    assert len(digits) == 1797 and all(len(r) == 65 for r in digits)
    write([[f"pixel_{i}" for i in range(64)] + ["digit"]] + digits, "digits.csv.gz")

    data = [line.split() for line in gzip.open(src / "diabetes_data_raw.csv.gz", "rt").read().splitlines()]
    target = [line.strip() for line in gzip.open(src / "diabetes_target.csv.gz", "rt").read().splitlines()]
    assert len(data) == len(target) == 442 and all(len(r) == 10 for r in data)
    # The target file holds e.g. 1.510000000000000000e+02; write it as 151.0.
    write(
        [DIABETES + ["progression"]] + [r + [repr(float(t))] for r, t in zip(data, target, strict=True)], "diabetes.csv"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
