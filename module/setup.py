"""pip's way in: the package usdtmon, its C core built for the Python that
runs the build by scripts/build-module.sh (the markers of probes.d and the
marker C of markers/, beside this directory in the checkout), as make
install-module builds it.  An in-tree build: pip install
--no-build-isolation --no-index ./module from the checkout."""

import os
import subprocess
import sys

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_MODULE = os.path.join(os.path.dirname(HERE), "scripts", "build-module.sh")


class BuildWithCore(build_py):
    """The package as build-module.sh makes it: its .py files and
    _core<EXT_SUFFIX>, into the build's library directory."""

    def run(self):
        if not os.path.exists(BUILD_MODULE):
            sys.exit("usdtmon builds from a python-systemtap checkout only (%s is missing)"
                     % BUILD_MODULE)
        os.makedirs(self.build_lib, exist_ok=True)
        subprocess.run([BUILD_MODULE, sys.executable, os.path.abspath(self.build_lib)],
                       check=True)


class WithCore(Distribution):
    """A wheel for this Python and platform: the package holds a C core."""

    def has_ext_modules(self):
        return True


setup(packages=["usdtmon"], cmdclass={"build_py": BuildWithCore}, distclass=WithCore)
