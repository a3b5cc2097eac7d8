"""trm_core: the Tiny Recursive Model, its tasks, trainer, inference engine and checkpoint format.

Pure: imports the standard library, torch, numpy and safetensors only.
"""

__version__ = "0.1.0"
