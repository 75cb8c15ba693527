"""``python -m classifiers.experiments``: print the comparison report."""

import sys

from classifiers.experiments import main

sys.exit(main())
