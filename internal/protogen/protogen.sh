#!/bin/sh
# Regenerates <name>.pb.go and <name>_grpc.pb.go next to each given .proto,
# with the generators pinned in go.mod (tool directives) and /usr/bin/protoc
# (Debian protobuf-compiler 3.21.12). Called by the //go:generate lines of
# api/v1 and sdk/internal/wire/v1, from the proto's directory.
set -eu
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
protoc \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	"$@"
