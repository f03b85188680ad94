"""Plugin module of mars-icepatch.

This package is an installable skeleton: it is loaded by mars-core and registers nothing
yet. Its task will be added by a later issue; until then `mars-core run icepatch` says so.
"""
