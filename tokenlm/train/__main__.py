"""``python -m tokenlm.train recipe=NAME ...`` (the form torchrun launches)."""

import sys

from tokenlm.train.main import main

sys.exit(main())
