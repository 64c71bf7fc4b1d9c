"""Object storage (S3 API) targets: blocks as objects named by digest, points as manifests."""
