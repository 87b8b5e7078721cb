"""`python -m hf_fma.demo DIR`: the same as `hf-fma make-demo DIR`."""

import sys

from hf_fma.demo import main

sys.exit(main())
