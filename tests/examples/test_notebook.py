"""Executes examples/colab_tpu.ipynb top to bottom on the CPU with a 3-step budget."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("ipykernel.kernelspec")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from tests.helpers import REPO  # noqa: E402

ROOT = REPO
NOTEBOOK = ROOT / "examples" / "colab_tpu.ipynb"


def _kernel_manager(kernels_dir: Path) -> KernelManager:
    """A kernel running this interpreter (the venv's), whatever kernelspecs the machine has.

    A "python3" kernelspec found on the Jupyter path (e.g. in ~/.local/share/jupyter) may point
    at another Python without this package or JAX; a spec written here names sys.executable.
    """
    kernelspec.write_kernel_spec(kernels_dir / "python3")
    specs = KernelSpecManager(kernel_dirs=[str(kernels_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def test_colab_notebook_executes_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXSEG_NOTEBOOK_STEPS", "3")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The kernel imports the repository's package even where it is not installed, so the
    # notebook's install cell is skipped (the test machine may be offline).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path / "kernels"),
        kernel_name="python3",
        timeout=300,
        # The kernel starts in the notebook's folder, as Jupyter and Colab start it.
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output["output_type"] == "error"]
    text = "".join(
        output.get("text", "") for output in outputs if output["output_type"] == "stream"
    )
    assert "training steps: 3" in text
    assert "validation mean IoU" in text
    assert f"repository: {ROOT}" in text
    # The curves and the prediction grid are shown inline.
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2
