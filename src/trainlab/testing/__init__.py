"""Tools for testing trainlab and runs made with it: generated data sets in the built-in layouts (synthetic),
two runs compared bit for bit (compare), and SIGKILL-and-resume fault injection (fault_injection)."""
