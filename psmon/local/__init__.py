"""`psmon up`'s runtime: the whole pipeline in one process (`runtime.run_up`), the small services
it runs beside the Faust agents (`services`) and its terminal view (`liveview`).

The command line (`psmon/cli`) calls into this package; nothing here imports the command line.
"""
