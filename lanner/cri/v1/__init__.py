# Generated protobuf package: regenerate with `make protos`, never edit.
