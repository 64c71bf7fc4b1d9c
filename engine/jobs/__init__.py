"""Job files (CONTRACT "Job files (TOML)"): the spec, loading, saving, the text side.

`schema` declares every setting once (the spec), `load` turns a file into a spec with
one-line `file:line: key: problem` errors, `save` writes files back, `text` finds the
line of a key. Nothing is imported here, so `engine.jobs.text` stays cheap on its own.
"""
