"""BuildKit's Control API (and containerd's content service) over gRPC.

`control_pb2*` and `content_pb2*` are generated from protos/ by
scripts/gen-protos.sh (do not edit them); `connect` is the client,
`history` turns history records into what the pipeline reads. Importing
this package imports nothing: grpc is loaded only by the commands that talk
to a builder.
"""
