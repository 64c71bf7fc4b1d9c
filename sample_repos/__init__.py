"""Ferry's samples: the sample job files (`jobs/`), the generator of the sample source
repository and its copy jobs' past (`generate`), and the VM-like disk data it, the tests
and the benches use (`vmdata`). Shipped with the package, so an installed Ferry builds
them with `ferry samples`; the engine never imports them."""
