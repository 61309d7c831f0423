import os
import sys

# The tests import harness.py and markers.py from this directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
