"""The evaluation notebook runs top to bottom (nbclient), so it cannot rot."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "experiments" / "notebooks" / "policy_evaluation.ipynb"


def _kernel_name() -> str:
    """``python3`` is ipykernel's native kernel for the running interpreter (jupyter_client offers it
    without any installed kernel spec), so a fresh venv needs no ``ipykernel install``."""
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if NATIVE_KERNEL_NAME not in specs:
        pytest.skip(f"no {NATIVE_KERNEL_NAME!r} kernel spec; found {sorted(specs)}")
    return NATIVE_KERNEL_NAME


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name=_kernel_name(),
                                     resources={"metadata": {"path": str(tmp_path)}})  # cwd: not the repo
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert text.count("PSNR") == 3 and "IQA calls" in text  # one line per restored image
    pngs = [o["data"]["image/png"] for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 1
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    tables = [o["data"]["text/markdown"] for c in code for o in c.outputs if "text/markdown" in o.get("data", {})]
    assert sum("| step | region |" in t for t in tables) == 3  # one schedule table per image
    assert not list(tmp_path.iterdir())  # the notebook writes nothing into its working folder
