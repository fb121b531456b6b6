"""pytest plugin (entry point ``pytest11``): fuzz a kernel from your own test suite (to be written).

Loaded into every pytest session of anyone who installs lowbit, so it must stay import-light: no
torch, triton or kernels at module level.
"""
