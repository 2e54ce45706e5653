"""``python -m attn_rtl.gen.cli``: the same as the ``attn-rtl`` command."""

import sys

from . import main

sys.exit(main())
