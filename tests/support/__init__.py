"""Shared test helpers: plain functions and classes that tests import (fixtures stay in conftest.py).

Test modules import only from here (``from tests.support.services import wait_until``), never from
``conftest`` or from another test module, so moving or deleting a test file never breaks a neighbour.
"""
