"""``python -m anyner.train CONFIG [--resume] [--until-step N]``: ``anyner train`` under another name,
for launchers that run a module: ``torchrun --nproc_per_node 2 -m anyner.train CONFIG``."""

import sys

from anyner.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
