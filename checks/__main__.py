"""``python -m cnn_gradcheck ...`` is the ``cnn-gradcheck`` command."""
import sys

from .cli import main

sys.exit(main())
