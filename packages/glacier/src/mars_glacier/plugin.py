"""Plugin module of mars-glacier.

This package is an installable skeleton: it is loaded by mars-core and registers nothing
yet. Its task will be added by a later issue; until then `mars-core run glacier` says so.
"""
