"""Suite-wide settings: tiny models run fastest on one thread, and one thread per test process
keeps the suite steady when other work shares the machine."""

import torch

torch.set_num_threads(1)
