import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pairclass.errors import InputError
from pairclass.io import atomic_path, read_classes, read_embeddings, write_table

from conftest import embedding_array


def write(path, **cols):
    pq.write_table(pa.table(cols), path)
    return path


def test_read_embeddings_roundtrip(tmp_path):
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    p = write(tmp_path / "e.parquet", pid=["a", "b", "c", "d"], v=embedding_array(X), lab=["x", "y", "x", "y"])
    data = read_embeddings(p, ["v"], id_col="pid", label_col="lab")
    np.testing.assert_array_equal(data.views["v"], X)
    assert data.ids.tolist() == ["a", "b", "c", "d"]
    assert data.labels.tolist() == ["x", "y", "x", "y"]


@pytest.mark.parametrize(
    "values,problem",
    [
        ([[1.0, 0.0], [1.0]], "ragged embeddings: row 1 has length 1, row 0 has 2"),
        ([[1.0, 0.0], [float("nan"), 1.0]], "1 row(s) with NaN or infinite values, first at row 1"),
        ([[1.0, 0.0], [float("inf"), 1.0]], "1 row(s) with NaN or infinite values, first at row 1"),
        ([[1.0, 0.0], [0.0, 0.0]], "1 all-zero vector(s), first at row 1"),
        ([[1.0, 0.0], None], "1 missing embedding(s), first at row 1"),
    ],
)
def test_bad_embedding_values(tmp_path, values, problem):
    p = write(tmp_path / "e.parquet", product_id=["a", "b"], v=pa.array(values, pa.list_(pa.float32())))
    with pytest.raises(InputError) as e:
        read_embeddings(p, ["v"])
    assert str(e.value) == f"{p}: v: {problem}"


def test_wrong_type_missing_column_missing_file_duplicates(tmp_path):
    p = write(tmp_path / "e.parquet", product_id=["a", "b"], v=["x", "y"])
    with pytest.raises(InputError, match=r"e.parquet: v: expected list<float> embeddings, got string"):
        read_embeddings(p, ["v"])
    with pytest.raises(InputError, match=r"e.parquet: w: column not found \(columns: product_id, v\)"):
        read_embeddings(p, ["w"])
    with pytest.raises(InputError, match=r"nope.parquet: file not found"):
        read_embeddings(tmp_path / "nope.parquet", ["v"])
    q = write(tmp_path / "d.parquet", product_id=["a", "a"], v=embedding_array(np.eye(2)))
    with pytest.raises(InputError, match=r"d.parquet: product_id: 1 duplicate id\(s\), e.g. 'a'"):
        read_embeddings(q, ["v"])


def test_views_with_different_dimensions(tmp_path):
    p = write(tmp_path / "e.parquet", product_id=["a"], v=embedding_array(np.ones((1, 2))),
              w=embedding_array(np.ones((1, 3))))
    with pytest.raises(InputError, match=r"views have different dimensions \(v=2, w=3\)"):
        read_embeddings(p, ["v", "w"])


def test_unreadable_parquet(tmp_path):
    p = tmp_path / "e.parquet"
    p.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"e.parquet: cannot read file"):
        read_embeddings(p, ["v"])


def test_read_classes_formats(tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text("# comment\nShirts\n\n  Jeans \n")
    assert read_classes(txt).names == ["Shirts", "Jeans"]
    csv = tmp_path / "c.csv"
    csv.write_text("name,prompt\nShirts,a shirt\nJeans,denim jeans\n")
    cls = read_classes(csv)
    assert cls.names == ["Shirts", "Jeans"] and cls.prompts == ["a shirt", "denim jeans"]
    pqf = write(tmp_path / "c.parquet", name=["a", "b"], embedding=embedding_array(np.eye(2)))
    np.testing.assert_array_equal(read_classes(pqf).embeddings, np.eye(2))


@pytest.mark.parametrize(
    "text,problem",
    [("Shirts\nJeans\nShirts\n", "duplicate class name 'Shirts'"),
     ("Shirts\n", "need at least 2 classes, got 1"),
     ("\n\n", "need at least 2 classes, got 0")],
)
def test_bad_class_lists(tmp_path, text, problem):
    p = tmp_path / "c.txt"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        read_classes(p)
    assert str(e.value) == f"{p}: {problem}"


def test_class_table_without_name(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("label\nx\ny\n")
    with pytest.raises(InputError, match=r"c.csv: name: column not found \(columns: label\)"):
        read_classes(p)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    write_table(pa.table({"a": [1]}), target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert pq.read_table(target).column("a").to_pylist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_failed_writes_are_one_input_error_and_keep_the_old_file(tmp_path):
    target = tmp_path / "out.parquet"
    write_table(pa.table({"a": [1]}), target)
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=r"out\.parquet: cannot write: No space left on device$"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    with pytest.raises(InputError, match=r"file/out\.parquet: cannot write: a parent folder is a file$"):
        write_table(pa.table({"a": [2]}), tmp_path / "file" / "out.parquet")
    with pytest.raises(InputError, match=r"folder: cannot write: Is a directory$"):
        write_table(pa.table({"a": [2]}), tmp_path / "folder")
    assert pq.read_table(target).column("a").to_pylist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder", "out.parquet"]


def test_write_csv(tmp_path):
    target = tmp_path / "out.csv"
    write_table(pa.table({"a": [1, 2]}), target)
    assert target.read_text().splitlines() == ['"a"', "1", "2"]
