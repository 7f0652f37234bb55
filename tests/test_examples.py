"""The notebooks in examples/ run end to end in a real Jupyter kernel (nbclient), with few steps, so they cannot
rot; their outputs are stripped in git. The first runs in the default suite, the rest are marked slow."""

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _needs(name: str, split: str = "test"):
    from counterfeit.data import load_data
    from counterfeit.errors import UserError

    try:
        load_data(name, split)
    except UserError as e:
        pytest.skip(f"needs {name} ({e})")


@pytest.mark.parametrize("name", [
    "01-gan2014.ipynb",
    pytest.param("02-dcgan-tutorial.ipynb", marks=pytest.mark.slow),
    pytest.param("03-conditional-and-evaluation.ipynb", marks=pytest.mark.slow),
    pytest.param("04-image-to-image.ipynb", marks=pytest.mark.slow),
])
def test_a_notebook_runs_end_to_end_in_a_kernel(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the notebook extra: pip install -e '.[notebook]'")
    nbclient = pytest.importorskip("nbclient", reason="the notebook extra: pip install -e '.[notebook]'")
    pytest.importorskip("ipykernel", reason="the notebook extra: pip install -e '.[notebook]'")
    if name.startswith("03"):
        _needs("mnist")
    if name.startswith("04"):
        _needs("fashion-mnist")
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "outputs are stripped in git"
    monkeypatch.setenv("COUNTERFEIT_EXAMPLE_STEPS", "40")
    monkeypatch.setenv("COUNTERFEIT_NO_TENSORBOARD", "1")
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {}) or "image/gif" in o.get("data", {})]
    assert images, "a notebook that shows no picture"
    assert (tmp_path / "runs").is_dir()


def test_every_notebook_in_examples_is_executed_by_a_test():
    import re

    listed = set(re.findall(r'"(\d\d-[\w-]+\.ipynb)"', Path(__file__).read_text()))
    assert listed == {p.name for p in EXAMPLES.glob("*.ipynb")}
