"""Tasks defined by a spec file and data, no code: `spec` reads and checks the spec, `task` is
the `Task` it declares, `dataset` imports the user's examples and splits them."""

from trm_core.tasks.defined.spec import Layout, SpecError, TaskSpec, load_spec, spec_from_dict
from trm_core.tasks.defined.task import DataSymmetry, DataTask

__all__ = ["DataSymmetry", "DataTask", "Layout", "SpecError", "TaskSpec", "load_spec",
           "spec_from_dict"]
