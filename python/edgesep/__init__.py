"""edgesep: compile pre-trained CNNs into compact bundles and run them fast on embedded CPUs.

Device side: ``edgesep.load("model.esb").run(x)``. Compiling needs ``pip install edgesep[compile]``:
``edgesep.compiler.compile_onnx("model.onnx", "model.esb")`` or ``edgesep compile`` on the command line.
"""
from . import runtime
from .bundle import BundleError
from .runtime import MemoryLimitError, Model, TensorInfo, available_isas, load

__version__ = "0.1.0"
__all__ = ["BundleError", "MemoryLimitError", "Model", "TensorInfo", "available_isas", "load", "runtime", "__version__"]
