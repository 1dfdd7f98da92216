"""The gRPC face of Silo: grpclib service (service.py), raw-bytes codec (codec.py), the status
table (status.py) and the server runner (app.py). Python does no per-job work here.

Nothing is imported eagerly, so `silo.client` can use status.py without loading the server.
"""
